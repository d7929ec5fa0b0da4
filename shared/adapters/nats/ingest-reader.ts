/**
 * Reading back what the ingest stream stored, for a replay that classifies nothing itself (the
 * batch lane's kappa mode, `lanemap batch run --from-stream`): the stream's stored range, its
 * messages from one sequence to another through an ordered consumer (ephemeral, flow-controlled,
 * acknowledges nothing, so the speed lane's durable consumer and its ack floor are left alone), and
 * the tile object store the large tiles' bytes are in.
 *
 * Messages are fetched a few at a time and handed out only after their fetch has completed: a slow
 * caller (registering a large tile takes a while) never holds a pull request open, and what is held
 * at once is one fetch, at most `batch` messages of at most max_payload bytes each.
 */
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { IngestMessage, TileObjects } from "../../pipeline/ingest-message.js";
import { DeadLetterQueue } from "./dead-letters.js";
import { boundedObjects } from "./object-reads.js";
import { INGEST_STREAM, TILE_OBJECT_BUCKET } from "./names.js";

/** The ingest stream's stored range. An empty stream has `messages` 0 and firstSeq = lastSeq + 1. */
export interface IngestStreamRange {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly messages: number;
}

/** A stored ingest message and when the stream stored it. */
export interface StoredIngestMessage extends IngestMessage {
  readonly storedAt: Date;
}

function notFound(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.NoMessageFound)
  );
}

/** The ingest stream's stored range, or null when the stream does not exist (nothing was ingested). */
export async function ingestStreamRange(nc: NatsConnection): Promise<IngestStreamRange | null> {
  const jsm = await jetstreamManager(nc);
  try {
    const { state } = await jsm.streams.info(INGEST_STREAM);
    return { firstSeq: state.first_seq, lastSeq: state.last_seq, messages: state.messages };
  } catch (err) {
    if (notFound(err)) return null;
    throw err;
  }
}

/** Options of {@link readIngestMessages}. */
export interface ReadIngestOptions {
  /** First sequence (inclusive); a sequence removed by limits is skipped to the next stored one. */
  readonly fromSeq: number;
  /** Last sequence (inclusive). */
  readonly toSeq: number;
  /** Messages per fetch (default 8): the bound on what is held at once. */
  readonly batch?: number;
  readonly signal?: AbortSignal;
}

function stored(m: JsMsg): StoredIngestMessage {
  return {
    subject: m.subject,
    headers: m.headers,
    data: m.data,
    streamSeq: m.seq,
    storedAt: new Date(m.info.timestampNanos / 1e6),
  };
}

/**
 * The stored messages of the ingest stream from `fromSeq` to `toSeq`, in sequence order. Ends at
 * `toSeq`, or earlier when the stream holds nothing more (a fetch that comes back empty).
 */
export async function* readIngestMessages(
  nc: NatsConnection,
  options: ReadIngestOptions,
): AsyncGenerator<StoredIngestMessage> {
  if (options.fromSeq > options.toSeq) return;
  const reader = await jetstream(nc).consumers.get(INGEST_STREAM, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: options.fromSeq,
  });
  try {
    for (let done = false; !done;) {
      options.signal?.throwIfAborted();
      const held: StoredIngestMessage[] = [];
      const fetched = await reader.fetch({ max_messages: Math.max(1, options.batch ?? 8), expires: 2_000 });
      let got = 0;
      for await (const m of fetched) {
        got++;
        if (m.seq > options.toSeq) {
          done = true;
          break;
        }
        held.push(stored(m));
        if (m.seq >= options.toSeq) {
          // Leaving the loop stops the fetch, which would otherwise wait out its expiry.
          done = true;
          break;
        }
      }
      if (got === 0) done = true;
      yield* held;
    }
  } finally {
    await reader.delete().catch(() => undefined);
  }
}

/**
 * The tile object store for reading (`lanemap-tiles`, where tiles over max_payload are): a missing
 * bucket reads as no object, which the caller reports as OBJECT_MISSING. No consumer
 * (object-reads.ts); a read that still fails is STORAGE, transient.
 */
export async function tileObjectsReader(nc: NatsConnection): Promise<TileObjects> {
  return boundedObjects(nc, TILE_OBJECT_BUCKET, "tile object");
}

/**
 * The dead letters of the ingest stream's messages: original stream sequence -> sequence of its
 * dead letter in LANEMAP_DLQ (headers only are read). Empty when there is no dead-letter stream.
 */
export async function deadLetterSeqs(nc: NatsConnection): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  try {
    for (const letter of await (await DeadLetterQueue.open(nc)).list())
      if (letter.originalSeq > 0) out.set(letter.originalSeq, letter.seq);
  } catch (err) {
    if (!notFound(err)) throw err;
  }
  return out;
}
