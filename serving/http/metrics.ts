/**
 * Prometheus metrics of the serving layer, on a registry passed in (never prom-client's global
 * one, so two servers in one process — tests — do not collide): request durations by route, and
 * the snapshot's versions and the raster cache read at scrape time.
 */
import type { RequestHandler } from "express";
import { Gauge, Histogram, type Registry } from "prom-client";
import type { ClassRaster } from "../../shared/index.js";
import type { BatchViewSource } from "../view/batch-source.js";
import type { LiveSource } from "../view/live-source.js";
import type { LruCache } from "../view/lru-cache.js";

/** The serving metrics on one registry; `middleware()` times requests. */
export class ServingMetrics {
  readonly registry: Registry;
  private readonly duration: Histogram<"method" | "route" | "status">;

  constructor(
    registry: Registry,
    sources: { batch: BatchViewSource; live: LiveSource | null; cache: LruCache<ClassRaster> },
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
      "lanemap_live_view_position",
      "Live view position (KV revision) serving has applied",
      () => live?.snapshot()?.position ?? null,
    );
    gauge("lanemap_live_view_size", "Live results serving holds", () => live?.snapshot()?.size ?? null);
    gauge("lanemap_raster_cache_bytes", "Decoded class rasters held in the LRU", () => cache.stats().weight);
    gauge("lanemap_raster_cache_hits", "Raster cache hits since start", () => cache.stats().hits);
    gauge("lanemap_raster_cache_misses", "Raster cache misses since start", () => cache.stats().misses);
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
