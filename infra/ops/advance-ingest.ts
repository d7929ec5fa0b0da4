/**
 * `lanemap ops advance-ingest-stream`: the repair for an ingest stream that was deleted and
 * recreated (shared/view/ingest-clock.ts): it sets LANEMAP_TILES' first sequence past every sequence
 * lanemap recorded, so the next tile published gets a sequence no view, catalogue entry, live result
 * or tombstone has seen, and the roles that refused to start (INGEST_STREAM_BEHIND) start again.
 *
 * How: a purge with `{ seq: N }` of the EMPTY stream, which on nats-server 2.9.10 sets its first
 * sequence to N and its last to N - 1 (and moves its consumers' ack floors to N - 1); checked in
 * test/integration/ingest-stream-recreated.test.ts. The speed consumer is made first (with the
 * deployment's settings, as a speed worker would), so its ack floor, the next batch watermark, moves
 * with the stream: a consumer created after the purge starts at ack floor 0. nats-server 2.10's
 * `first_seq` stream setting only applies when a stream is created, and the stream usually exists
 * again by the time an operator runs this (any lanemap role or producer recreates it), so the purge,
 * which both versions take, is the one way.
 *
 * N is one past the highest sequence lanemap recorded anywhere it can be read: every published
 * view's watermark, every tombstone, every catalogue entry's ingestSeq and every live result's (more
 * than the start-up check reads, which stays cheap). A stream that already holds messages is
 * refused unless `discardStored`: the purge would delete them (their producers must send them again).
 * Idempotent: a stream at or past the record is left alone.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  INGEST_STREAM,
  advanceIngestStream,
  ensureSpeedConsumer,
  ensureStreams,
  ingestStreamRange,
  type LiveEntry,
} from "../../shared/adapters/nats/index.js";
import {
  LanemapError,
  highestRecorded,
  type Config,
  type IngestStreamRange,
  type RecordedSeq,
  type TileArchive,
} from "../../shared/index.js";
import { recordedIngestSeqs, type IngestRecordSources } from "../platform/ingest-clock.js";

/** Options of {@link advanceIngest}. */
export interface AdvanceIngestOptions {
  readonly nc: NatsConnection;
  /** Stream limits, speed consumer settings and replicas, as a speed worker would create them. */
  readonly config: Pick<Config, "stream" | "speed" | "storage">;
  readonly views: IngestRecordSources["views"];
  readonly archive: Pick<TileArchive, "removals" | "entries">;
  /** The live view's entries (absent: not read, e.g. no live bucket yet). */
  readonly liveEntries?: readonly LiveEntry[];
  readonly dryRun: boolean;
  /** Purge the messages the stream already holds (their producers must send them again). */
  readonly discardStored: boolean;
  readonly logger: Logger;
}

/** What the advance found and did. */
export interface AdvanceIngestReport {
  readonly stream: string;
  readonly dryRun: boolean;
  /** The stream before (null: it did not exist; the advance creates it). */
  readonly before: IngestStreamRange | null;
  /** The highest sequence lanemap recorded and where, or null when nothing is recorded. */
  readonly recorded: RecordedSeq | null;
  /**
   * `advanced`: the first sequence is now `nextSeq`; `would-advance`: the dry run's answer;
   * `not-behind`: the stream is at or past the record already (nothing done).
   */
  readonly outcome: "advanced" | "would-advance" | "not-behind";
  /** The sequence the next publish gets after the advance. */
  readonly nextSeq: number | null;
  /** Messages the purge deleted (with `discardStored`, or published while it ran). */
  readonly purged: number;
  /** The stream after (absent on a dry run or when nothing was done). */
  readonly after?: IngestStreamRange;
}

/** The stream holds messages stored since it was recreated: the purge would delete them. */
export class IngestStreamNotEmptyError extends LanemapError {
  constructor(range: IngestStreamRange, recorded: RecordedSeq) {
    super(
      "INGEST_STREAM_BEHIND",
      `INGEST_STREAM_BEHIND: ${INGEST_STREAM} holds ${range.messages} message(s) (sequences ${range.firstSeq}..${range.lastSeq}) ` +
        `stored since it was recreated, below lanemap's record ${recorded.seq} (${recorded.source}); advancing it would delete them. ` +
        `Keep their tiles (the producers' files, or \`lanemap ops replay --from-seq ${range.firstSeq} --dry-run\` lists them), ` +
        `then run \`lanemap ops advance-ingest-stream --discard-stored\` and publish them again (\`lanemap ingest FILE...\`)`,
    );
  }
}

/** The highest of lanemap's records: views, tombstones, catalogue and live view. */
async function highestOfAll(options: AdvanceIngestOptions): Promise<RecordedSeq | undefined> {
  const records = await recordedIngestSeqs(options);
  let catalogueTop: RecordedSeq | undefined;
  for await (const e of options.archive.entries())
    if (catalogueTop === undefined || e.ingestSeq > catalogueTop.seq)
      catalogueTop = { seq: e.ingestSeq, source: `catalogue entry ${e.tileId}` };
  if (catalogueTop) records.push(catalogueTop);
  let liveTop: RecordedSeq | undefined;
  for (const e of options.liveEntries ?? [])
    if (liveTop === undefined || e.result.ingestSeq > liveTop.seq)
      liveTop = { seq: e.result.ingestSeq, source: `live result of tile ${e.result.tileId}` };
  if (liveTop) records.push(liveTop);
  return highestRecorded(records);
}

/**
 * Sets LANEMAP_TILES' first sequence past every sequence lanemap recorded (see the module header).
 * @throws IngestStreamNotEmptyError (INGEST_STREAM_BEHIND) when the stream holds messages and
 *   `discardStored` is not set (a dry run too: the real run would be refused); LanemapError
 *   INGEST_STREAM_BEHIND when messages published while it ran were deleted by the purge.
 */
export async function advanceIngest(options: AdvanceIngestOptions): Promise<AdvanceIngestReport> {
  const { nc, config, logger, dryRun } = options;
  const recorded = (await highestOfAll(options)) ?? null;
  const before = await ingestStreamRange(nc);
  const base = { stream: INGEST_STREAM, dryRun, before, recorded, purged: 0 };
  if (recorded === null || (before?.lastSeq ?? 0) >= recorded.seq)
    return { ...base, outcome: "not-behind", nextSeq: null };
  const nextSeq = recorded.seq + 1;
  if (before !== null && before.messages > 0 && !options.discardStored)
    throw new IngestStreamNotEmptyError(before, recorded);
  if (dryRun) return { ...base, outcome: "would-advance", nextSeq };

  const jsm = await jetstreamManager(nc);
  // The stream as a speed worker makes it, then its consumer, so the purge moves its ack floor.
  await ensureStreams(jsm, config.stream, config.storage.replicas);
  await ensureSpeedConsumer(jsm, config.speed);
  const purged = await advanceIngestStream(jsm, nextSeq);
  const after = await ingestStreamRange(nc);
  logger.info({ stream: INGEST_STREAM, nextSeq, purged, recorded }, "ingest stream advanced");
  const expected = options.discardStored ? (before?.messages ?? 0) : 0;
  if (purged > expected)
    throw new LanemapError(
      "INGEST_STREAM_BEHIND",
      `INGEST_STREAM_BEHIND: ${INGEST_STREAM} advanced to first sequence ${nextSeq}, but ${purged - expected} message(s) published while it ran were deleted with it: publish them again`,
    );
  return { ...base, outcome: "advanced", nextSeq, purged, ...(after ? { after } : {}) };
}

/** The report as text. */
export function formatAdvanceIngest(r: AdvanceIngestReport): string {
  const was = r.before
    ? `last sequence ${r.before.lastSeq}, ${r.before.messages} message(s)`
    : "absent (it will be created)";
  const record = r.recorded ? `${r.recorded.seq} (${r.recorded.source})` : "none";
  const lines = [`${r.stream}: ${was}; lanemap's highest recorded sequence: ${record}`];
  if (r.outcome === "not-behind")
    lines.push(
      r.recorded
        ? `not behind: nothing to do (the stream is at or past sequence ${r.recorded.seq})`
        : "nothing recorded: nothing to do",
    );
  else if (r.outcome === "would-advance")
    lines.push(
      `dry run: would set its first sequence to ${r.nextSeq}${r.before && r.before.messages > 0 ? ` and delete its ${r.before.messages} message(s)` : ""}`,
    );
  else
    lines.push(
      `advanced: the next message gets sequence ${r.nextSeq} (first ${r.after?.firstSeq ?? r.nextSeq}, last ${r.after?.lastSeq ?? "?"})` +
        (r.purged > 0 ? `; ${r.purged} message(s) deleted: publish their tiles again` : ""),
    );
  return lines.join("\n");
}
