/**
 * The per-message work of a speed worker (its lifecycle is worker.ts): turn one JetStream message
 * into a live result, all before acknowledging it:
 *
 *   fetch bytes (inline, or from the object store) -> register in the master archive (ingest
 *   sequence = stream sequence) -> decode + classify with the tile's model in one job of the
 *   TilePool (one thread, the tile's deadline: shared/pipeline/deadline.ts) -> LiveView.put (durable) -> `tiles.classified.<cell>` event -> ack
 *
 * and what to do when that fails: a tile that can never be classified is dead-lettered and
 * terminated, a transient failure is nak'd with a growing delay (speed/README.md).
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { TileArchive } from "../shared/index.js";
import {
  HEADERS,
  TILE_OBJECT_BUCKET,
  boundedObjects,
  classifiedSubject,
  type DeadLetterQueue,
  type LiveView,
} from "../shared/adapters/nats/index.js";
import {
  cellOfSubject,
  describeError,
  errorCode,
  ingestDescribeOptions,
  ingestTileBytes,
  ingestTileMeta,
  isPermanent,
  originalIngestSeq,
  registerTile,
  removedBy,
  tileDeadline,
  type ErrorCode,
  type CatalogueEntry,
  type Config,
  type TilePool,
  type TileResult,
} from "../shared/index.js";
import type { LoadedModel } from "./active-model.js";
import type { EventHub, SpeedEvent } from "./events.js";
import type { SpeedMetrics } from "./metrics.js";

/** Test and operator hooks into a worker's pipeline. */
export interface SpeedWorkerHooks {
  /**
   * Runs after a tile is registered and before it is decoded and classified, with heartbeats going.
   * The CLI wires LANEMAP_TEST_TILE_DELAY_MS to a sleep here, so fault tests can kill a worker
   * mid-tile.
   */
  readonly beforeClassify?: (tile: { tileId: string; cell: string; streamSeq: number }) => Promise<void>;
}

/** The JSON summary published on `tiles.classified.<cell>` (core NATS, no payload beyond this). */
export interface ClassifiedEvent {
  readonly tileId: string;
  readonly cell: string;
  readonly acquired: string;
  readonly ingestSeq: number;
  readonly modelVersion: string;
  readonly counts: readonly number[];
  readonly dominantClass: number;
  readonly meanConfidence: number;
  readonly processedAt: string;
}

/**
 * The code of a failure, and whether retrying could help: the error table's `permanent` flag (a
 * permanent failure is a property of the tile, with this model: dead-letter it).
 */
function classify(err: unknown): { code: ErrorCode; permanent: boolean } {
  return { code: errorCode(err), permanent: isPermanent(err) };
}

/** Redelivery delay after the n-th failed delivery: 0.5 s, 1 s, 2 s, ... up to 30 s. */
function retryDelayMs(deliveries: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, deliveries - 1));
}

/** What the handler has learnt about a tile so far, for its dead letter and events. */
export interface TileContext {
  tileId: string | null;
  cell: string | null;
  /** Set once the tile is registered: its bad-tile record names the content the batch lane quarantines. */
  contentHash?: string;
}

/** The map cell of an ingest subject (moved to shared/pipeline with the rest of the derivation). */
export { cellOfSubject } from "../shared/index.js";

/** A message as the dead-letter path needs it (a live JsMsg or the stream's stored copy). */
export interface OriginalMessage {
  readonly seq: number;
  readonly subject: string;
  readonly headers: JsMsg["headers"];
  readonly data: Uint8Array;
  readonly deliveries: number;
}

/** What the pipeline works with (opened by the worker's lifecycle). */
export interface PipelineDeps {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  readonly metrics: SpeedMetrics;
  readonly events: EventHub<SpeedEvent>;
  readonly archive: TileArchive;
  /** Tile threads: decode + classify, with the deadline. */
  readonly pool: TilePool;
  readonly live: LiveView;
  readonly tiles: ObjectStore;
  readonly dlq: DeadLetterQueue;
  readonly hooks: SpeedWorkerHooks;
}

/** The per-message work of a worker, and what to do when it fails. */
export class TilePipeline {
  constructor(
    private readonly config: Config,
    private readonly d: PipelineDeps,
  ) {}

  /** Handles one message to its end: ack, term (dead-lettered) or nak (retry later). Never throws. */
  async handle(m: JsMsg, model: LoadedModel): Promise<void> {
    const { metrics } = this.d;
    const started = performance.now();
    const ctx: TileContext = { tileId: null, cell: null };
    metrics.inFlight.inc();
    // Heartbeats keep a slow tile (a big decode, the test delay hook) from being redelivered.
    const beat = setInterval(() => m.working(), Math.max(200, this.config.speed.ackWaitMs / 3));
    try {
      await this.process(m, model, ctx, started);
      m.ack();
    } catch (err) {
      await this.failed(m, err, ctx);
    } finally {
      clearInterval(beat);
      metrics.inFlight.dec();
      metrics.processing.observe((performance.now() - started) / 1000);
    }
  }

  private async process(m: JsMsg, model: LoadedModel, ctx: TileContext, started: number): Promise<void> {
    const { archive, live, pool, metrics, events, hooks } = this.d;
    const h = m.headers;
    const streamSeq = m.info.streamSequence;
    ctx.tileId = h?.get(HEADERS.tileId) || null;
    ctx.cell = (h?.get(HEADERS.cell) || undefined) ?? cellOfSubject(m.subject);
    // The derivation `lanemap batch run --from-stream` replays too (shared/pipeline).
    const meta = ingestTileMeta({ subject: m.subject, headers: h, streamSeq });
    // No consumer (shared/adapters/nats/object-reads.ts); a read that fails is STORAGE, the tile nak'ed.
    const bytes = await ingestTileBytes(m, boundedObjects(this.d.nc, TILE_OBJECT_BUCKET, "tile object"));
    const { entry, created } = await registerTile(
      archive,
      bytes,
      meta,
      ingestDescribeOptions(this.config.maxPixels),
    );
    ctx.tileId = entry.tileId;
    ctx.cell = entry.cell;
    ctx.contentHash = entry.contentHash;
    if (created && (await this.removedAfter(m, entry))) return;
    if (!created) {
      // Seen before (a re-sent tile, or a redelivery after a crash): if its result is written, done.
      const existing = await live.get(entry.cell, entry.tileId);
      if (
        existing &&
        existing.result.contentHash === entry.contentHash &&
        existing.result.ingestSeq === entry.ingestSeq
      ) {
        metrics.tiles.inc({ outcome: "duplicate" });
        events.emit({
          type: "tile-duplicate",
          tileId: entry.tileId,
          cell: entry.cell,
          ingestSeq: entry.ingestSeq,
          streamSeq,
        });
        return;
      }
    }
    await hooks.beforeClassify?.({ tileId: entry.tileId, cell: entry.cell, streamSeq });
    // Decoded and classified in one job in one thread: the raster never crosses a thread boundary.
    const out = await pool.classify(
      { lane: "live", source: entry, bytes: { kind: "inline", bytes }, maxPixels: this.config.maxPixels },
      model.version,
      // Scaled to the work the tile's header announces: a big valid tile is not a hostile one.
      { deadline: tileDeadline(this.config, entry) },
    );
    const revision = await live.put({ result: out.result, k: out.k, raster: out.raster });
    // A re-sent tile (`lanemap dlq retry` after a fix) may carry the bad-tile record of its dead
    // letter, which keeps it out of batch runs: classified now, it is no longer bad.
    if (!created)
      await archive
        .clearBad(entry.tileId)
        .catch((err: unknown) =>
          this.d.logger.warn(
            { err: describeError(err), tileId: entry.tileId },
            "cannot clear the bad-tile record of a classified tile; `lanemap archive remove --bad` clears it",
          ),
        );
    this.announce(entry, out.result);
    const latencyMs = Date.now() - m.info.timestampNanos / 1e6;
    metrics.tiles.inc({ outcome: "classified" });
    metrics.latency.observe(Math.max(0, latencyMs) / 1000);
    events.emit({
      type: "tile-classified",
      tileId: entry.tileId,
      cell: entry.cell,
      ingestSeq: entry.ingestSeq,
      streamSeq,
      modelVersion: out.result.modelVersion,
      latencyMs,
      processMs: performance.now() - started,
      liveRevision: revision,
    });
  }

  /**
   * Whether `lanemap archive remove` took the tile out after the stream stored this message (its
   * tombstone covers the message: `removedBy`); then the entry just registered is removed again and
   * the tile is left out, as `batch run --from-stream` and `ops replay` leave it out. Why: a speed
   * lane behind its stream (a backlog, a redelivery) would otherwise put a removed tile back. Asked
   * only of a tile the catalogue did not hold: one tombstone read per new tile.
   */
  private async removedAfter(m: JsMsg, entry: CatalogueEntry): Promise<boolean> {
    const { archive, metrics, events, logger } = this.d;
    const tombstone = await archive.removal(entry.tileId);
    const message = {
      seq: originalIngestSeq({ headers: m.headers, streamSeq: m.info.streamSequence }),
      storedAt: new Date(m.info.timestampNanos / 1e6),
    };
    if (!tombstone || !removedBy(tombstone, message)) return false;
    await archive.remove(entry.tileId);
    metrics.tiles.inc({ outcome: "removed" });
    logger.info(
      { tileId: entry.tileId, streamSeq: m.info.streamSequence, removedAt: tombstone.removedAt },
      "tile left out: archive remove took it out after this message was stored",
    );
    events.emit({
      type: "tile-removed",
      tileId: entry.tileId,
      cell: entry.cell,
      streamSeq: m.info.streamSequence,
      removedAt: tombstone.removedAt,
    });
    return true;
  }

  private announce(entry: CatalogueEntry, r: TileResult): void {
    const summary: ClassifiedEvent = {
      tileId: r.tileId,
      cell: r.cell,
      acquired: r.acquired,
      ingestSeq: r.ingestSeq,
      modelVersion: r.modelVersion,
      counts: r.counts,
      dominantClass: r.dominantClass,
      meanConfidence: r.meanConfidence,
      processedAt: r.processedAt,
    };
    try {
      this.d.nc.publish(classifiedSubject(entry.cell), JSON.stringify(summary));
    } catch (err) {
      // The event is a notification; the result is already durable in the live view.
      this.d.logger.warn(
        { err: describeError(err), tileId: entry.tileId },
        "cannot publish the classified event",
      );
    }
  }

  private async failed(m: JsMsg, err: unknown, ctx: TileContext): Promise<void> {
    const { code, permanent } = classify(err);
    const deliveries = m.info.deliveryCount;
    const reason = describeError(err);
    const original: OriginalMessage = {
      seq: m.info.streamSequence,
      subject: m.subject,
      headers: m.headers,
      data: m.data,
      deliveries,
    };
    if (permanent || deliveries >= this.config.speed.maxDeliver) {
      const finalCode = permanent ? code : "MAX_DELIVER";
      const finalReason = permanent ? reason : `failed ${deliveries} deliveries; last: ${reason}`;
      if (await this.deadLetter(original, ctx, finalCode, finalReason)) {
        m.term();
        return;
      }
    }
    const delayMs = retryDelayMs(deliveries);
    this.d.logger.warn(
      { err: reason, code, streamSeq: original.seq, deliveries, delayMs },
      "tile failed; will retry",
    );
    this.d.metrics.tiles.inc({ outcome: "retried" });
    this.d.events.emit({
      type: "tile-retry",
      tileId: ctx.tileId,
      streamSeq: original.seq,
      deliveries,
      reason,
      delayMs,
    });
    m.nak(delayMs);
  }

  /** Writes the dead letter (and a bad-tile record); true when it is stored. */
  async deadLetter(
    original: OriginalMessage,
    ctx: TileContext,
    code: ErrorCode,
    reason: string,
  ): Promise<boolean> {
    const { dlq, archive, logger, metrics, events } = this.d;
    let seq: number;
    let repeat: boolean;
    try {
      ({ seq, duplicate: repeat } = await dlq.add({
        originalSeq: original.seq,
        subject: original.subject,
        headers: original.headers,
        data: original.data,
        code,
        reason,
        deliveries: original.deliveries,
      }));
    } catch (err) {
      logger.error(
        { err: describeError(err), streamSeq: original.seq },
        "cannot dead-letter a tile; it will be retried",
      );
      return false;
    }
    await archive
      .recordBad({
        key: ctx.tileId ?? `stream-${original.seq}`,
        source: "stream",
        code,
        reason,
        at: new Date().toISOString(),
        ...(ctx.contentHash ? { contentHash: ctx.contentHash } : {}),
      })
      .catch(() => undefined); // The dead letter is the record that matters; this is a convenience copy.
    metrics.tiles.inc({ outcome: "failed" });
    // A repeat (a replayed copy, a redelivery) keeps the input's one letter: not a new dead letter.
    if (!repeat) metrics.deadLetters.inc();
    logger.warn(
      { code, reason, tileId: ctx.tileId, streamSeq: original.seq, deadLetter: seq },
      repeat ? "tile dead-lettered again: its letter is already there" : "tile dead-lettered",
    );
    events.emit({
      type: "tile-failed",
      tileId: ctx.tileId,
      cell: ctx.cell,
      streamSeq: original.seq,
      code,
      reason,
      deliveries: original.deliveries,
      deadLetterSeq: seq,
    });
    return true;
  }
}
