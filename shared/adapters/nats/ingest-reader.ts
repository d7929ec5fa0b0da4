/**
 * Reading back what the ingest stream stored, for a replay that classifies nothing itself (the
 * batch lane's kappa mode, `lanemap batch run --from-stream`): the stream's stored range, its
 * messages from one sequence to another, and the tile object store the large tiles' bytes are in.
 *
 * The messages are read without a consumer, with the stream's own API (STREAM.MSG.GET `{ seq,
 * next_by_subj }`, answered by the stream's leader), as object-reads.ts reads objects: an ordered
 * consumer is an ephemeral R1 consumer, which nats-server before 2.12 (Debian ships 2.9) may place
 * on an offline peer (nats-server PR #7165). With one node of three killed, 6 of 12 replays in a row
 * failed that way after 5 s with a bare "timeout" (test/integration/ingest-reader-node-down.test.ts).
 * Nothing is acknowledged either way, so the speed lane's durable consumer and its ack floor are
 * left alone.
 *
 * Messages are read a few at a time and handed out only after their read has completed: a slow
 * caller (registering a large tile takes a while) never holds a request open, and what is held at
 * once is one step, at most `batch` messages of at most max_payload bytes each. Each step has its
 * own request timeout and is retried (a leader election after a node died), each retry logged.
 */
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  type JetStreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import type { MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { IngestMessage, TileObjects } from "../../pipeline/ingest-message.js";
import type { IngestStreamRange } from "../../view/ingest-clock.js";
import { isStreamNotFound } from "./jetstream-errors.js";
import { DeadLetterQueue } from "./dead-letters.js";
import { READ_RETRIES, guarded } from "./guarded.js";
import { boundedObjects, nextBySubject } from "./object-reads.js";
import { INGEST_STREAM, INGEST_SUBJECT_PREFIX, TILE_OBJECT_BUCKET } from "./names.js";

export type { IngestStreamRange };

/** A stored ingest message and when the stream stored it. */
export interface StoredIngestMessage extends IngestMessage {
  /** All its headers, as NATS keeps them (`ops replay` copies the producer's onto its copy). */
  readonly headers: MsgHdrs | undefined;
  readonly storedAt: Date;
}

function notFound(err: unknown): boolean {
  return (
    isStreamNotFound(err) ||
    (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound)
  );
}

/** The ingest stream's stored range, or null when the stream does not exist (nothing was ingested). */
export async function ingestStreamRange(nc: NatsConnection): Promise<IngestStreamRange | null> {
  const jsm = await jetstreamManager(nc);
  try {
    const { state } = await jsm.streams.info(INGEST_STREAM);
    const firstStoredAt = state.messages > 0 ? new Date(state.first_ts) : undefined;
    return {
      firstSeq: state.first_seq,
      lastSeq: state.last_seq,
      messages: state.messages,
      ...(firstStoredAt && !Number.isNaN(firstStoredAt.getTime()) ? { firstStoredAt } : {}),
    };
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
  /** Messages per step (default 8): the bound on what is held at once. */
  readonly batch?: number;
  /** Hears each retried step (warn). */
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

/** How long one STREAM.MSG.GET of a replay may wait for its answer (ms) before the step is retried. */
export const INGEST_READ_TIMEOUT_MS = 5_000;

/** Every message of the ingest stream is on a subject under this filter. */
const INGEST_FILTER = `${INGEST_SUBJECT_PREFIX}.>`;

function stored(m: StoredMsg): StoredIngestMessage {
  return {
    subject: m.subject,
    headers: m.header,
    data: m.data, // a getter that decodes base64 on each use: once
    streamSeq: m.seq,
    storedAt: m.time,
  };
}

/**
 * Up to `want` stored messages from sequence `from` to `toSeq`, in order: each the next message
 * after the previous one (a sequence removed by limits is skipped). Pipelined: the stream's
 * messages are usually consecutive, so the requests for the next sequences go out before their
 * answers are needed; one answered past a gap is dropped and asked again where the gap ended.
 * `end` is true when the stream holds nothing more up to `toSeq`.
 */
async function messagesFrom(
  jsm: JetStreamManager,
  from: number,
  toSeq: number,
  want: number,
): Promise<{ messages: StoredIngestMessage[]; end: boolean }> {
  const { asked, ask } = nextBySubject(jsm, INGEST_STREAM, INGEST_FILTER);
  const messages: StoredIngestMessage[] = [];
  let next = from;
  for (let i = 0; i < want && from + i <= toSeq; i++) ask(from + i);
  while (messages.length < want) {
    if (next > toSeq) return { messages, end: true };
    const m = await ask(next);
    if (!m || m.seq > toSeq) return { messages, end: true };
    messages.push(stored(m));
    next = m.seq + 1;
    for (const seq of asked.keys()) if (seq < next) asked.delete(seq);
    for (let i = 0; i < want - messages.length && next + i <= toSeq; i++) ask(next + i);
  }
  return { messages, end: next > toSeq };
}

/**
 * The stored messages of the ingest stream from `fromSeq` to `toSeq`, in sequence order. Ends at
 * `toSeq`, or earlier when the stream holds nothing more.
 * @throws LanemapError STORAGE when a step still fails after READ_RETRIES retries (the stream
 *   without a leader for that long, or gone).
 */
export async function* readIngestMessages(
  nc: NatsConnection,
  options: ReadIngestOptions,
): AsyncGenerator<StoredIngestMessage> {
  const want = Math.max(1, options.batch ?? 8);
  const jsm = () => jetstreamManager(nc, { checkAPI: false, timeout: INGEST_READ_TIMEOUT_MS });
  for (let next = options.fromSeq; next <= options.toSeq;) {
    options.signal?.throwIfAborted();
    const from = next;
    // Idempotent (a read): retried whole, so a step never hands out a message twice.
    const step = await guarded(
      `reading ${INGEST_STREAM} from sequence ${from}`,
      async () => messagesFrom(await jsm(), from, options.toSeq, want),
      READ_RETRIES,
      options.logger,
    );
    yield* step.messages;
    if (step.end || step.messages.length === 0) return;
    next = step.messages.at(-1)!.streamSeq + 1;
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
