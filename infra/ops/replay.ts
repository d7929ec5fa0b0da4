/**
 * `lanemap ops replay`: re-drives stored ingest messages through the speed lane, for example after
 * the live view lost results (a bucket restored from an old backup, results expired by mistake) or
 * after a consumer was recreated past messages it never handled.
 *
 * How: the stored messages of LANEMAP_TILES from sequence N to M are read without a consumer, by
 * sequence with the stream's own API (`readIngestMessages`: STREAM.MSG.GET `{ seq, next_by_subj }`,
 * a few in flight, each step retried and logged; it acknowledges nothing and leaves the durable
 * `lanemap-speed` alone) and published again to their own subjects, payload and producer headers
 * unchanged, under a fresh Nats-Msg-Id `<tileId>-replay-<origSeq>-<run stamp>` so the stream's
 * duplicate window does not drop them, and with `Lanemap-Replay-Of: <origSeq>`. The running speed
 * workers then take them from the durable consumer like any fresh tile.
 *
 * Why republish rather than a temporary consumer starting at N: a consumer only delivers; something
 * would still have to classify what it delivers, i.e. a second kind of speed worker bound to another
 * consumer, and a consumer cannot stop at M. Resetting the shared durable (delete and re-create at
 * N; nats-server 2.9 has no consumer reset) would re-deliver everything after N as well, lose the
 * ack state of tiles in flight, and break the ack floor the batch watermark is taken from.
 * Republishing is bounded (exactly N..M), needs nothing but the workers already running, and keeps
 * the durable's ack floor, hence the batch watermark, moving forwards only.
 *
 * Why not an ordered consumer, as it once read: that is an ephemeral R1 consumer, which nats-server
 * before 2.12 (Debian ships 2.9) may place on an offline peer (nats-server PR #7165); with one node
 * of three killed, 2 of 6 replays in a row failed with a bare "timeout"
 * (test/integration/ops-replay-node-down.test.ts), and one whose fetch had come back empty would
 * have ended the range early without a word.
 *
 * What a replayed tile becomes (speed/README.md, "Exactly one result"):
 * - it gets a new stream sequence, but the catalogue keeps the tile's first entry (first write
 *   wins), so the archive is not duplicated and the result carries the ORIGINAL ingest sequence:
 *   a replayed tile already absorbed by the batch view stays absorbed and never outranks it;
 * - the live view key is `<cell>.<tileId>`: a result is rewritten in place, never added twice;
 * - a tile whose live result is still there with the same content is acknowledged as a duplicate
 *   without being classified again; only missing results are recomputed, with the current model;
 * - a tile that failed before fails again and keeps its one dead letter (one per tile, bytes and
 *   code: dead-letters.ts); a tile whose bytes were in the object store (`Lanemap-Object`) needs its
 *   object, which expires with the stream's age limit;
 * - a message of a tile `lanemap archive remove` took out after the stream stored it (the archive's
 *   tombstone) is skipped and counted as removed: republished, it would be a new message to the
 *   speed lane, which would register the tile again.
 */
import { jetstream, jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  HEADERS,
  INGEST_STREAM,
  brokerError,
  readIngestMessages,
  retryTransient,
  type StoredIngestMessage,
  isStreamNotFound,
} from "../../shared/adapters/nats/index.js";
import { LanemapError, originalIngestSeq, removedBy, type Removal } from "../../shared/index.js";

/** Header a replayed copy carries: the stream sequence of the message it copies. */
export const REPLAY_OF_HEADER = HEADERS.replayOf;

/** The range cannot be replayed (no stream, or nothing stored in it). */
export class ReplayRangeError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("REPLAY_RANGE", message, options);
  }
}

/** Options of {@link replayIngest}. */
export interface ReplayOptions {
  readonly nc: NatsConnection;
  /** First stream sequence to replay (inclusive). */
  readonly fromSeq: number;
  /** Last one (inclusive); default the stream's last sequence when the replay starts. */
  readonly toSeq?: number;
  readonly dryRun: boolean;
  readonly logger: Logger;
  /** Messages read per step, the bound on what is held at once (default 8, `readIngestMessages`'s). */
  readonly batch?: number;
  readonly signal?: AbortSignal;
  /**
   * The archive's tombstones (`TileArchive.removals`): a message of a tile removed after the stream
   * stored it is left out, not republished (the speed lane would register the tile again).
   */
  readonly removals?: Iterable<Removal>;
}

/** One message of the range. */
export interface ReplayedMessage {
  readonly origSeq: number;
  readonly subject: string;
  readonly tileId: string | null;
  /** The copy's stream sequence; null on a dry run or when skipped. */
  readonly newSeq: number | null;
  /** The copy's Nats-Msg-Id; null when skipped. */
  readonly msgId: string | null;
  /** Why it was not republished, or null. */
  readonly skipped: string | null;
}

/** What a replay read and republished. */
export interface ReplayReport {
  readonly stream: string;
  readonly dryRun: boolean;
  /** The range asked for and the part of it the stream still holds. */
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly firstStoredSeq: number;
  readonly lastStoredSeq: number;
  /** Messages read from the range (sequences deleted by limits are gaps, not counted). */
  readonly read: number;
  readonly republished: number;
  readonly skipped: number;
  /** Of the skipped: messages of tiles `lanemap archive remove` took out after they were stored. */
  readonly removed: number;
  readonly messages: readonly ReplayedMessage[];
}

/** The producer's headers without JetStream's own (`Nats-*`), which belong to the original message. */
function replayHeaders(from: MsgHdrs | undefined, origSeq: number): MsgHdrs {
  const h = natsHeaders();
  for (const [k, values] of from ?? []) {
    if (k.toLowerCase().startsWith("nats-") || k === REPLAY_OF_HEADER) continue;
    for (const v of values) h.append(k, v);
  }
  h.set(REPLAY_OF_HEADER, String(origSeq));
  return h;
}

/** A Nats-Msg-Id is one token of printable characters; tile ids already are (TILE_ID_PATTERN). */
function replayMsgId(tileId: string | null, origSeq: number, stamp: string): string {
  return `${tileId ?? "seq"}-replay-${origSeq}-${stamp}`;
}

/**
 * Republishes (or, on a dry run, lists) the stored ingest messages from `fromSeq` to `toSeq`.
 * A message that is itself a replayed copy of a message inside the range is skipped: its original
 * is being replayed, and copying copies would only multiply the work.
 * @throws ReplayRangeError when the ingest stream does not exist or the range is past its end.
 * @throws LanemapError STORAGE when reading a step of the range still fails after its retries (the
 *   stream without a leader for that long); what was republished before stays published (each
 *   copy names its original in Lanemap-Replay-Of).
 */
export async function replayIngest(options: ReplayOptions): Promise<ReplayReport> {
  const { nc, logger, dryRun } = options;
  // No $JS.API.INFO round trip (checkAPI): the meta leader may be the node that just died.
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  let info: StreamInfo;
  try {
    info = await retryTransient(
      `reading the state of ${INGEST_STREAM}`,
      () => jsm.streams.info(INGEST_STREAM),
      {
        logger,
      },
    );
  } catch (cause) {
    if (isStreamNotFound(cause instanceof LanemapError ? cause.cause : cause))
      throw new ReplayRangeError(`the ingest stream ${INGEST_STREAM} does not exist: nothing to replay`, {
        cause,
      });
    throw cause;
  }
  const { first_seq: firstStored, last_seq: lastStored, messages: stored } = info.state;
  if (options.fromSeq > lastStored)
    throw new ReplayRangeError(
      `--from-seq ${options.fromSeq} is past the end of ${INGEST_STREAM} (last sequence ${lastStored})`,
    );
  // Freeze the end now: the copies we publish land after it and must never be read back.
  const toSeq = Math.min(options.toSeq ?? lastStored, lastStored);
  const start = Math.max(options.fromSeq, firstStored);
  const stamp = Date.now().toString(36);
  const messages: ReplayedMessage[] = [];
  let republished = 0;
  let removed = 0;
  const tombstones = new Map<string, Removal>();
  for (const r of options.removals ?? []) tombstones.set(r.tileId, r);
  const report = (): ReplayReport => ({
    stream: INGEST_STREAM,
    dryRun,
    fromSeq: options.fromSeq,
    toSeq,
    firstStoredSeq: firstStored,
    lastStoredSeq: lastStored,
    read: messages.length,
    republished,
    skipped: messages.filter((m) => m.skipped !== null).length,
    removed,
    messages,
  });
  if (stored === 0 || start > toSeq) {
    logger.info({ fromSeq: options.fromSeq, toSeq, firstStored }, "nothing stored in the replay range");
    return report();
  }

  const js = jetstream(nc);
  const handle = async (m: StoredIngestMessage): Promise<void> => {
    const seq = m.streamSeq;
    const tileId = m.headers?.get(HEADERS.tileId) || null;
    const skip = (reason: string) =>
      messages.push({ origSeq: seq, subject: m.subject, tileId, newSeq: null, msgId: null, skipped: reason });
    const copyOf = Number(m.headers?.get(REPLAY_OF_HEADER) || Number.NaN);
    if (Number.isInteger(copyOf) && copyOf >= start && copyOf <= toSeq) {
      skip(`a replayed copy of ${copyOf}, which this range replays`);
      return;
    }
    const tombstone = tileId === null ? undefined : tombstones.get(tileId);
    if (tombstone && removedBy(tombstone, { seq: originalIngestSeq(m), storedAt: m.storedAt })) {
      removed++;
      skip(
        `removed by \`lanemap archive remove\` at ${tombstone.removedAt}` +
          (tombstone.ingestSeq === null ? "" : ` (stream at sequence ${tombstone.ingestSeq})`) +
          ", after this message",
      );
      return;
    }
    const msgId = replayMsgId(tileId, seq, stamp);
    let newSeq: number | null = null;
    if (!dryRun) {
      // Retried through a leader election (an operator's replay ended in a bare "timeout" when the
      // stream's leader was killed, copies published up to there): every attempt carries the same
      // Nats-Msg-Id, so one whose ack was lost with the old leader is kept once by the stream.
      const ack = await retryTransient(
        `republishing ingest message ${seq}`,
        () =>
          js.publish(m.subject, m.data, {
            headers: replayHeaders(m.headers, seq),
            msgID: msgId,
            expect: { streamName: INGEST_STREAM },
          }),
        { logger },
      );
      newSeq = ack.seq;
      republished++;
    }
    messages.push({ origSeq: seq, subject: m.subject, tileId, newSeq, msgId, skipped: null });
  };

  // The end was frozen above, so the copies published meanwhile are never read back; a sequence
  // removed by limits is skipped by the read itself.
  try {
    for await (const m of readIngestMessages(nc, {
      fromSeq: start,
      toSeq,
      ...(options.batch === undefined ? {} : { batch: options.batch }),
      logger,
      ...(options.signal ? { signal: options.signal } : {}),
    }))
      await handle(m);
  } catch (err) {
    // Say how far it got: the copies published so far are in the stream (and the speed lane's).
    if (dryRun || messages.length === 0) throw err;
    const last = messages[messages.length - 1]!.origSeq;
    const e = err instanceof LanemapError ? err : brokerError("replaying", err);
    throw new LanemapError(
      e.code,
      `${e.message} — stopped after sequence ${last} (${republished} message(s) republished, ${messages.length - republished} left out); \`lanemap ops replay --from-seq ${last + 1} --to-seq ${toSeq}\` goes on from there (the range frozen at the start: the copies are after it)`,
      { cause: err },
    );
  }
  const out = report();
  logger.info(
    { fromSeq: out.fromSeq, toSeq, read: out.read, republished, skipped: out.skipped, removed, dryRun },
    dryRun ? "ingest replay listed (dry run)" : "ingest messages replayed",
  );
  return out;
}
