/**
 * Kappa mode: a run set read from the ingest stream instead of the catalogue
 * (`lanemap batch run --from-stream [--from-seq N]`, issue 14). The stream is the log every live
 * tile went through, so replaying it rebuilds the view from the source of truth, the way Kappa
 * architectures rebuild a table by re-reading the log, with the same scheduler and executors as a
 * catalogue run, and the view equals the catalogue-driven one tile for tile.
 *
 * How each stored message of LANEMAP_TILES from N (default 1) up to the watermark W (the speed
 * lane's ack floor, as for a catalogue run) becomes a run-set entry:
 *   - the speed lane's own derivation (shared/pipeline `ingestTileMeta`, `ingestTileBytes`,
 *     `ingestDescribeOptions`), with "now" for the future-acquisition refusal being the time the
 *     stream stored the message, then `registerTile` into the run's archive: idempotent where the
 *     speed lane already registered it, and it puts the bytes where every executor reads them;
 *   - the catalogue's dedupe rule: a tile id seen again with the same content is kept once (the
 *     first; `registerTile` returns the stored entry), with other content it is refused
 *     (TILE_CONFLICT), as the speed lane refused it;
 *   - a message whose tile cannot be registered (the speed lane dead-lettered it: not a GeoTIFF,
 *     a contradicting header, a missing object, ...) is left out with its code and reason and its
 *     dead letter's sequence, never silently: the run report and the manifest list it;
 *   - a message of a tile `lanemap archive remove` took out after the stream stored it (the
 *     archive's tombstone, shared/storage `removedBy`; an `ops replay` copy counts by the message
 *     it copies) is left out before it is registered and listed as removed: the catalogue has no
 *     such tile, so neither has the view. A message stored after the removal (the tile ingested
 *     again) is replayed as any other.
 * A tile the speed lane registered and later failed to classify is in the run set, as it is in the
 * catalogue: the batch model decides again.
 *
 * Memory: the entries (small records, as a catalogue run holds them) and one fetch of messages at
 * a time; pixels are only ever read by the executors, from the archive.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  HEADERS,
  INGEST_STREAM,
  deadLetterSeqs,
  ingestStreamRange,
  readIngestMessages,
  tileObjectsReader,
} from "../shared/adapters/nats/index.js";
import {
  LanemapError,
  describeError,
  errorCode,
  ingestDescribeOptions,
  ingestTileBytes,
  ingestTileMeta,
  isPermanent,
  originalIngestSeq,
  registerTile,
  removedBy,
  type CatalogueEntry,
  type Removal,
  type StreamReplay,
} from "../shared/index.js";
import { resolveWatermark, setApartQuarantined, type RunSet, type WatermarkProvider } from "./catalogue.js";

/** The ingest stream does not hold the range a replay asks for (code REPLAY_RANGE). */
export class StreamRangeError extends LanemapError {
  constructor(message: string) {
    super("REPLAY_RANGE", message);
  }
}

/** Options of {@link readStreamRunSet}. */
export interface StreamRunSetOptions {
  readonly nc: NatsConnection;
  /** The run's master archive: replayed tiles are registered there (idempotent). */
  readonly archive: Parameters<typeof registerTile>[0];
  /** The speed lane's ack floor; without it W is the stream's last sequence. */
  readonly watermark?: WatermarkProvider;
  /** First stream sequence to replay (default 1: the whole stream). */
  readonly fromSeq?: number;
  /** Decode budget in pixels, as the speed lane applies it. */
  readonly maxPixels: number;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
  /** Messages fetched at once (default 8): the bound on message bytes held. */
  readonly batch?: number;
}

/** A run set replayed from the ingest stream. */
export type StreamRunSet = RunSet & { readonly source: "stream"; readonly stream: StreamReplay };

/**
 * Reads the ingest stream from `fromSeq` (default 1) to the watermark and returns the run set a
 * catalogue run over the same tiles would have (see the module comment).
 * @throws StreamRangeError (REPLAY_RANGE) when the stream does not exist, `fromSeq` is past its last
 *   sequence or no longer stored (its first sequence moved on: the message says which), or the
 *   watermark is below `fromSeq`; LanemapError WATERMARK for a bad provider value; transient NATS
 *   and storage errors as thrown.
 */
export async function readStreamRunSet(options: StreamRunSetOptions): Promise<StreamRunSet> {
  const { nc, logger } = options;
  const fromSeq = options.fromSeq ?? 1;
  if (!Number.isInteger(fromSeq) || fromSeq < 1)
    throw new StreamRangeError(`the first sequence to replay must be a positive integer, got ${fromSeq}`);
  const range = await ingestStreamRange(nc);
  if (!range)
    throw new StreamRangeError(`the ingest stream ${INGEST_STREAM} does not exist: nothing to replay`);
  if (fromSeq > range.lastSeq)
    throw new StreamRangeError(
      `sequence ${fromSeq} is past the end of ${INGEST_STREAM} (last sequence ${range.lastSeq})`,
    );
  if (fromSeq < range.firstSeq)
    throw new StreamRangeError(
      `${INGEST_STREAM} no longer holds sequence ${fromSeq}: its first sequence is ${range.firstSeq} ` +
        `(older messages are gone: aged out by LANEMAP_STREAM_MAX_AGE_S / LANEMAP_STREAM_MAX_BYTES, ` +
        `or removed by \`lanemap ops advance-ingest-stream\` or a purge); ` +
        `--from-seq ${range.firstSeq} replays what is left`,
    );
  const watermark = await resolveWatermark(options.watermark, range.lastSeq);
  if (watermark < fromSeq)
    throw new StreamRangeError(
      `nothing to replay from sequence ${fromSeq}: the speed lane has acknowledged up to ${watermark} only`,
    );
  const deadLetters = await deadLetterSeqs(nc);
  const objects = await tileObjectsReader(nc);
  const tombstones = new Map<string, Removal>();
  for await (const r of options.archive.removals()) tombstones.set(r.tileId, r);
  logger.info(
    { fromSeq, toSeq: watermark, firstSeq: range.firstSeq, lastSeq: range.lastSeq },
    "replaying the ingest stream",
  );

  const entries: CatalogueEntry[] = [];
  const seen = new Set<string>();
  const excluded: StreamReplay["excluded"][number][] = [];
  const removed: NonNullable<StreamReplay["removed"]>[number][] = [];
  let messages = 0;
  let duplicates = 0;
  for await (const m of readIngestMessages(nc, {
    fromSeq,
    toSeq: watermark,
    logger,
    ...(options.batch ? { batch: options.batch } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  })) {
    messages++;
    // A tile removed after the stream stored this message stays removed: registering it here
    // would put it back in the catalogue and in the view (issue 14, 5 removed tiles back).
    const tileId = m.headers?.get(HEADERS.tileId) || null;
    const tombstone = tileId === null ? undefined : tombstones.get(tileId);
    if (tombstone && removedBy(tombstone, { seq: originalIngestSeq(m), storedAt: m.storedAt })) {
      const left = {
        seq: m.streamSeq,
        tileId: tombstone.tileId,
        removedAt: tombstone.removedAt,
        removedAtSeq: tombstone.ingestSeq,
      };
      removed.push(left);
      logger.info(left, "ingest message of a removed tile left out of the replay");
      continue;
    }
    let entry: CatalogueEntry;
    try {
      const meta = ingestTileMeta(m);
      const bytes = await ingestTileBytes(m, objects);
      ({ entry } = await registerTile(
        options.archive,
        bytes,
        meta,
        ingestDescribeOptions(options.maxPixels, m.storedAt),
      ));
    } catch (err) {
      // A fault of the message is the speed lane's dead letter too; anything else (NATS, disk)
      // stops the run, which a later run repeats.
      if (!isPermanent(err)) throw err;
      const left = {
        seq: m.streamSeq,
        tileId: m.headers?.get(HEADERS.tileId) || null,
        code: errorCode(err),
        reason: describeError(err),
        deadLetterSeq: deadLetters.get(m.streamSeq) ?? null,
      };
      excluded.push(left);
      logger.warn(left, "ingest message left out of the replay");
      continue;
    }
    if (seen.has(entry.tileId)) {
      duplicates++;
      continue;
    }
    seen.add(entry.tileId);
    entries.push(entry);
  }
  // A tile the speed lane dead-lettered after cataloguing it is quarantined, as in a catalogue run.
  const { entries: todo, quarantined } = await setApartQuarantined(options.archive, entries);
  logger.info(
    {
      messages,
      tiles: entries.length,
      duplicates,
      excluded: excluded.length,
      removed: removed.length,
      quarantined: quarantined.length,
    },
    "ingest stream replayed",
  );
  return {
    entries: todo,
    quarantined,
    watermark,
    maxSeq: range.lastSeq,
    excluded: range.lastSeq - watermark,
    source: "stream",
    stream: {
      stream: INGEST_STREAM,
      fromSeq,
      toSeq: watermark,
      firstSeq: range.firstSeq,
      lastSeq: range.lastSeq,
      messages,
      duplicates,
      excluded,
      removed,
    },
  };
}
