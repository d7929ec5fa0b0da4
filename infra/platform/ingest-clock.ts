/**
 * The one owner of "is the ingest stream still lanemap's clock?" (shared/view/ingest-clock.ts): every
 * composition root that consumes, publishes to or merges by the ingest stream's sequences calls it at
 * start — `lanemap speed`, `worker`, `serve`, `start`, `ingest`, `dlq retry`, `ops replay`, `archive
 * remove` (which records the stream's sequence in a tombstone) — and every batch run through its
 * watermark provider, so a deleted and recreated LANEMAP_TILES (sequences from 1 again) is refused
 * with one line naming the stream, its last sequence, the record and the repair, instead of hiding
 * new tiles as absorbed or dropping catalogue tiles from the next view.
 *
 * What it compares with is what is cheap and authoritative at every start: the watermark of every
 * published batch view (the store lists them with their manifests) and every tombstone's sequence;
 * a batch run adds the catalogue's highest ingest sequence, which it has just read anyway. The repair
 * (`lanemap ops advance-ingest-stream`, infra/ops/advance-ingest.ts) reads the catalogue and the live
 * view too.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { WatermarkProvider } from "../../batch/index.js";
import {
  INGEST_STREAM,
  ingestStreamRange,
  retryTransient,
  speedLaneStatus,
} from "../../shared/adapters/nats/index.js";
import {
  IngestStreamBehindError,
  ingestStreamBehind,
  type IngestStreamBehind,
  type PublishedViews,
  type RecordedSeq,
  type TileArchive,
} from "../../shared/index.js";

/** Where lanemap's record of the ingest stream's sequences is read. */
export interface IngestRecordSources {
  readonly views: Pick<PublishedViews, "list">;
  readonly archive: Pick<TileArchive, "removals">;
}

/** How long the check's reads are retried through a leader election (a node just died). */
const CHECK_RETRY_MS = 20_000;

/**
 * The sequences lanemap recorded that are cheap to read at any start: each published batch view's
 * watermark W, and each tombstone's `ingestSeq` (LANEMAP_TILES' last sequence at the removal).
 * @throws the stores' errors (LanemapError STORAGE).
 */
export async function recordedIngestSeqs(sources: IngestRecordSources): Promise<RecordedSeq[]> {
  const out: RecordedSeq[] = [];
  for (const v of await sources.views.list())
    out.push({ seq: v.manifest.watermark, source: `the watermark of batch view ${v.name}` });
  for await (const r of sources.archive.removals())
    if (r.ingestSeq !== null)
      out.push({ seq: r.ingestSeq, source: `the tombstone of tile ${r.tileId}, removed ${r.removedAt}` });
  return out;
}

/**
 * Whether LANEMAP_TILES is behind lanemap's record (null: it is not). `extra` adds sequences the
 * caller has already read (a batch run's catalogue maximum). Reads only.
 */
export async function ingestStreamBehindRecord(
  nc: NatsConnection,
  sources: IngestRecordSources,
  extra: readonly RecordedSeq[] = [],
): Promise<IngestStreamBehind | null> {
  const range = await ingestStreamRange(nc);
  return ingestStreamBehind(INGEST_STREAM, range, [...(await recordedIngestSeqs(sources)), ...extra]);
}

/**
 * Refuses to go on when LANEMAP_TILES is behind lanemap's record: a role's start (`what` names it in
 * a retry's log line). Its reads are retried through a leader election.
 * @throws IngestStreamBehindError (INGEST_STREAM_BEHIND, exit 1) naming the stream, its last
 *   sequence, the record and `lanemap ops advance-ingest-stream`; NATS_CONNECT when NATS stays unreadable.
 */
export async function refuseIngestStreamBehind(
  nc: NatsConnection,
  sources: IngestRecordSources,
  options: { readonly what: string; readonly logger?: Logger },
): Promise<void> {
  const behind = await retryTransient(
    `${options.what}: checking ${INGEST_STREAM} against lanemap's record`,
    () => ingestStreamBehindRecord(nc, sources),
    { deadlineMs: CHECK_RETRY_MS, ...(options.logger ? { logger: options.logger } : {}) },
  );
  if (behind) throw new IngestStreamBehindError(behind);
}

/**
 * The batch watermark with NATS: the speed consumer's ack floor — the highest stream sequence below
 * which every message was acknowledged — after checking the ingest stream is not behind lanemap's
 * record (the published views' watermarks, the tombstones and the catalogue's highest sequence the
 * run just read). Without a speed consumer yet (no speed worker ever ran) nothing is pending with the
 * speed lane, so the whole catalogue is the batch lane's. Sequences below the stream's first one no
 * longer exist (discarded by its limits, or skipped by `ops advance-ingest-stream`): nothing there
 * is pending either, so the floor is at least first - 1 (a consumer created after an advance starts
 * with ack floor 0 on nats-server 2.9.10, which would drop every catalogue tile from the view).
 * @throws IngestStreamBehindError before the run classifies anything.
 */
export function ingestClockWatermark(nc: NatsConnection, sources: IngestRecordSources): WatermarkProvider {
  let jsm: Awaited<ReturnType<typeof jetstreamManager>> | undefined;
  return async (context) => {
    jsm ??= await jetstreamManager(nc);
    const s = await speedLaneStatus(jsm);
    const extra: RecordedSeq[] =
      context?.catalogueMaxSeq === undefined
        ? []
        : [{ seq: context.catalogueMaxSeq, source: "the catalogue's highest ingest sequence" }];
    const range = s.ingest
      ? { firstSeq: s.ingest.firstSeq, lastSeq: s.ingest.lastSeq, messages: s.ingest.messages }
      : null;
    const behind = ingestStreamBehind(INGEST_STREAM, range, [
      ...(await recordedIngestSeqs(sources)),
      ...extra,
    ]);
    if (behind) throw new IngestStreamBehindError(behind);
    if (!s.consumer) return Number.MAX_SAFE_INTEGER;
    return Math.max(s.consumer.ackFloorSeq, (s.ingest?.firstSeq ?? 0) - 1);
  };
}
