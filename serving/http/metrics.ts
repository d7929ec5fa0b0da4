/**
 * Prometheus metrics of the serving layer, on a registry passed in (never prom-client's global
 * one, so two servers in one process — tests — do not collide): request durations by route, and
 * the snapshot's versions and the raster cache read at scrape time, and batch runs: those this
 * server triggered (counted once each when they end, by status, with their duration and failed
 * tiles) and the published view serving reads (its build time, failed tiles, publish time).
 */
import type { RequestHandler } from "express";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { RunStatus } from "../batch-trigger.js";
import type { ClassRaster } from "../../shared/index.js";
import type { BatchViewSource } from "../view/batch-source.js";
import type { LiveSource } from "../view/live-source.js";
import type { LruCache } from "../view/lru-cache.js";

/** The serving metrics on one registry; `middleware()` times requests. */
export class ServingMetrics {
  readonly registry: Registry;
  private readonly duration: Histogram<"method" | "route" | "status">;
  private readonly runs: Counter<"status">;
  private readonly runDuration: Histogram<"status">;
  private readonly runFailedTiles: Counter;
  private lastRunFailedTiles: number | null = null;

  /**
   * `refreshRuns` asks about the batch runs still open before a scrape reads the run metrics (they
   * are counted through `batchRunFinished`).
   */
  constructor(
    registry: Registry,
    sources: {
      batch: BatchViewSource;
      live: LiveSource | null;
      cache: LruCache<ClassRaster>;
      refreshRuns?: () => Promise<void>;
    },
  ) {
    this.registry = registry;
    const fresh = <T>(name: string, make: () => T): T => {
      // A registry handed to a second server (tests) must not fail on the names the first registered.
      registry.removeSingleMetric(name);
      return make();
    };
    this.duration = fresh(
      "lanemap_http_request_duration_seconds",
      () =>
        new Histogram({
          name: "lanemap_http_request_duration_seconds",
          help: "HTTP request duration by route and status",
          labelNames: ["method", "route", "status"] as const,
          buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
          registers: [registry],
        }),
    );
    const gauge = (name: string, help: string, read: () => number | null): void => {
      fresh(
        name,
        () =>
          new Gauge({
            name,
            help,
            registers: [registry],
            collect() {
              const v = read();
              if (v === null) this.reset();
              else this.set(v);
            },
          }),
      );
    };
    const { batch, live, cache } = sources;
    const refreshRuns = sources.refreshRuns ?? (() => Promise.resolve());
    this.runs = fresh(
      "lanemap_batch_runs_total",
      () =>
        new Counter({
          name: "lanemap_batch_runs_total",
          help: "Batch runs this server triggered that ended, by final status",
          labelNames: ["status"] as const,
          registers: [registry],
          async collect() {
            await refreshRuns();
          },
        }),
    );
    for (const status of ["succeeded", "failed", "cancelled"]) this.runs.inc({ status }, 0);
    this.runDuration = fresh(
      "lanemap_batch_run_duration_seconds",
      () =>
        new Histogram({
          name: "lanemap_batch_run_duration_seconds",
          help: "Wall time of the batch runs this server triggered, start to end, by final status",
          labelNames: ["status"] as const,
          buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
          registers: [registry],
          async collect() {
            await refreshRuns();
          },
        }),
    );
    this.runFailedTiles = fresh(
      "lanemap_batch_run_failed_tiles_total",
      () =>
        new Counter({
          name: "lanemap_batch_run_failed_tiles_total",
          help: "Tiles that failed to classify in the batch runs this server triggered",
          registers: [registry],
          async collect() {
            await refreshRuns();
          },
        }),
    );
    const lastFailed = () => this.lastRunFailedTiles;
    fresh(
      "lanemap_batch_run_last_failed_tiles",
      () =>
        new Gauge({
          name: "lanemap_batch_run_last_failed_tiles",
          help: "Failed tiles of the last batch run this server triggered that ended (absent: none yet)",
          registers: [registry],
          async collect() {
            await refreshRuns();
            const v = lastFailed();
            if (v === null) this.reset();
            else this.set(v);
          },
        }),
    );
    gauge(
      "lanemap_batch_view_version",
      "Batch view version serving reads (absent: none)",
      () => batch.peek()?.version ?? null,
    );
    gauge(
      "lanemap_batch_view_watermark",
      "Watermark of the batch view serving reads",
      () => batch.peek()?.manifest.watermark ?? null,
    );
    gauge("lanemap_batch_view_age_seconds", "Age of the batch view serving reads", () => {
      const v = batch.peek();
      return v ? (Date.now() - v.finishedMs) / 1000 : null;
    });
    gauge(
      "lanemap_batch_last_publish_timestamp_seconds",
      "When the batch view serving reads was published (its manifest's finishedAt), Unix seconds",
      () => {
        const v = batch.peek();
        return v ? v.finishedMs / 1000 : null;
      },
    );
    gauge(
      "lanemap_batch_view_build_duration_seconds",
      "How long the run that built the batch view serving reads took (manifest finishedAt - startedAt)",
      () => {
        const v = batch.peek();
        return v ? Math.max(0, v.finishedMs - Date.parse(v.manifest.startedAt)) / 1000 : null;
      },
    );
    gauge(
      "lanemap_batch_view_failed_tiles",
      "Tiles that failed to classify in the run that built the batch view serving reads",
      () => batch.peek()?.manifest.tiles.failed ?? null,
    );
    gauge(
      "lanemap_batch_view_held_raster_bytes",
      "Class raster BLOB bytes the batch view serving reads holds in memory (0: read from DuckDB on demand, over the budget)",
      () => batch.peek()?.heldRasterBytes ?? null,
    );
    gauge(
      "lanemap_batch_view_raster_reads",
      "Queries that read class rasters from the DuckDB file of the batch view serving reads, since it opened",
      () => batch.peek()?.rasterReads ?? null,
    );
    gauge(
      "lanemap_live_view_position",
      "Live view position (KV revision) serving has applied",
      () => live?.snapshot()?.position ?? null,
    );
    gauge("lanemap_live_view_size", "Live results serving holds", () => live?.snapshot()?.size ?? null);
    gauge("lanemap_raster_cache_bytes", "Decoded class rasters held in the LRU", () => cache.stats().weight);
    gauge("lanemap_raster_cache_hits", "Raster cache hits since start", () => cache.stats().hits);
    gauge("lanemap_raster_cache_misses", "Raster cache misses since start", () => cache.stats().misses);
  }

  /** Counts a triggered run that ended (called once per run by the run ledger). */
  batchRunFinished(s: RunStatus): void {
    this.runs.inc({ status: s.state });
    const start = s.startedAt === undefined ? NaN : Date.parse(s.startedAt);
    const end = s.finishedAt === undefined ? NaN : Date.parse(s.finishedAt);
    if (Number.isFinite(start) && Number.isFinite(end))
      this.runDuration.observe({ status: s.state }, Math.max(0, end - start) / 1000);
    if (s.failedTiles !== undefined) {
      this.runFailedTiles.inc(s.failedTiles);
      this.lastRunFailedTiles = s.failedTiles;
    }
  }

  /** Times every request under the route label set by the router (or "unmatched"). */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const start = process.hrtime.bigint();
      res.once("finish", () => {
        const route = (res.locals["route"] as string | undefined) ?? "unmatched";
        const s = Number(process.hrtime.bigint() - start) / 1e9;
        this.duration.observe({ method: req.method, route, status: String(res.statusCode) }, s);
      });
      next();
    };
  }
}
