/**
 * `lanemap ops expire`: drops the live results the current batch view has absorbed (ingest sequence
 * <= its watermark W). Serving already ignores them (shared/view/merge.ts), so removing them changes
 * no answer; it only keeps the live view, and every serving process's in-memory copy of it, small.
 *
 * Safe while speed workers run:
 * - W is read once, from the manifest of the version CURRENT names when the command starts. A tile's
 *   live result always carries the ingest sequence of the tile's first catalogue entry (first write
 *   wins), so a key at or below W stays at or below W whatever a worker rewrites meanwhile; results
 *   above W (tiles still flowing in) are never touched.
 * - The one unsafe change is the watermark moving backwards: an operator rolling CURRENT back to a
 *   version with a lower watermark while we delete would make serving need results we are removing.
 *   CURRENT is re-read before every chunk of deletions and the command stops at once when the
 *   version it names has a lower watermark than the one it started with.
 * - Idempotent: a second run finds nothing at or below W. A worker that rewrites an absorbed result
 *   after we removed it (a replay) only leaves work for the next run.
 *
 * CURRENT and W are read through the deployment's `PublishedViews` (files, or NATS with
 * LANEMAP_STORAGE=nats), the same store at the start and at every check: on a machine of a cluster
 * the local data directory holds no view, or a stale one.
 *
 * After its removals it reclaims the live view's spilled rasters: every raster bucket of a past
 * period (and the legacy unperiodised one) that no live entry names is dropped whole
 * (LiveView.reclaimRasterBuckets, STREAM.DELETE, never a purge). The buckets the entries named when
 * this run started are kept too, so a result it removes keeps its raster until the next run: a
 * serving request that took its snapshot before it heard the removal can still read it.
 */
import type { Logger } from "pino";
import type { LiveView, RasterReclaim } from "../../shared/adapters/nats/index.js";
import { LanemapError, type PublishedViews } from "../../shared/index.js";
import { readCurrentView } from "./current-view.js";

/** CURRENT now names a version with a lower watermark than the one expiry started from. */
export class WatermarkMovedBackError extends LanemapError {
  readonly removed: number;
  constructor(
    from: { name: string; watermark: number },
    to: { name: string; watermark: number } | null,
    removed: number,
  ) {
    super(
      "WATERMARK_BACK",
      `stopped after removing ${removed} result(s): CURRENT moved from ${from.name} (watermark ${from.watermark}) to ` +
        (to ? `${to.name} (watermark ${to.watermark})` : "nothing") +
        "; the remaining absorbed results are kept, run `lanemap ops expire` again against the new view",
    );
    this.removed = removed;
  }
}

/** One absorbed live result. */
export interface ExpiredResult {
  readonly cell: string;
  readonly tileId: string;
  readonly ingestSeq: number;
}

/** What expiry found and did. */
export interface ExpireReport {
  /** The version whose watermark was used, or null when nothing is published (nothing expires). */
  readonly version: string | null;
  readonly watermark: number | null;
  readonly dryRun: boolean;
  /** Live results read. */
  readonly scanned: number;
  /** Of those, at or below the watermark. */
  readonly absorbed: number;
  /** Removed (0 on a dry run). */
  readonly removed: number;
  /** Left in the live view (above the watermark). */
  readonly kept: number;
  /** The absorbed results (removed, or that would be on a dry run), in ingest order. */
  readonly results: readonly ExpiredResult[];
  /**
   * The live raster buckets dropped (on a dry run: that would be) and kept; null when the live
   * view given cannot reclaim them.
   */
  readonly rasterBuckets: RasterReclaim | null;
}

/** Options of {@link expireAbsorbed}. */
export interface ExpireOptions {
  /** The deployment's published views (infra/platform openPublishedViews): CURRENT and W are read there. */
  readonly views: Pick<PublishedViews, "current" | "list">;
  /**
   * The live view: reading it whole and removing results, and (when it can) dropping the raster
   * buckets no entry names any more.
   */
  readonly live: Pick<LiveView, "list" | "remove"> & Partial<Pick<LiveView, "reclaimRasterBuckets">>;
  readonly dryRun: boolean;
  readonly logger: Logger;
  /** Deletions between two checks of CURRENT (default 64). */
  readonly chunk?: number;
  readonly signal?: AbortSignal;
}

/**
 * The version CURRENT names now with its watermark, or null when it names none (or an incomplete
 * one). A published version is immutable, so while CURRENT still names the version expiry started
 * from only the pointer is read; the listing (on NATS, one request per version) only when it moved.
 */
async function watermarkNow(
  views: Pick<PublishedViews, "current" | "list">,
  from: { name: string; watermark: number },
): Promise<{ name: string; watermark: number } | null> {
  const pointer = await views.current();
  if (pointer?.name === from.name) return from;
  const now = await readCurrentView(views);
  return now ? { name: now.name, watermark: now.manifest.watermark } : null;
}

/**
 * Removes (or, on a dry run, lists) the live results absorbed by the current batch view.
 * @throws WatermarkMovedBackError when CURRENT is rolled back to a lower watermark meanwhile;
 *   the store's errors (LanemapError STORAGE when NATS cannot be read).
 */
export async function expireAbsorbed(options: ExpireOptions): Promise<ExpireReport> {
  const { live, logger, dryRun, views } = options;
  const current = await readCurrentView(views);
  const entries = await live.list();
  const reclaim = async (): Promise<RasterReclaim | null> => {
    if (!live.reclaimRasterBuckets) return null;
    options.signal?.throwIfAborted();
    const alsoNamed = entries.flatMap((e) => (e.rasterBucket ? [e.rasterBucket] : []));
    const r = await live.reclaimRasterBuckets({ alsoNamed, dryRun });
    if (r.dropped.length > 0 || r.kept.length > 0)
      logger.info(
        { dropped: r.dropped, kept: r.kept.map((k) => `${k.bucket} (${k.why})`), dryRun },
        dryRun ? "live raster buckets that would be dropped (dry run)" : "live raster buckets reclaimed",
      );
    return r;
  };
  if (!current) {
    logger.info({ scanned: entries.length }, "no batch view published: no live result is absorbed");
    return {
      version: null,
      watermark: null,
      dryRun,
      scanned: entries.length,
      absorbed: 0,
      removed: 0,
      kept: entries.length,
      results: [],
      rasterBuckets: await reclaim(),
    };
  }
  const from = { name: current.name, watermark: current.manifest.watermark };
  const absorbed: ExpiredResult[] = entries
    .filter((e) => e.result.ingestSeq <= from.watermark)
    .map((e) => ({ cell: e.result.cell, tileId: e.result.tileId, ingestSeq: e.result.ingestSeq }))
    .sort((a, b) => a.ingestSeq - b.ingestSeq || (a.tileId < b.tileId ? -1 : 1));
  let removed = 0;
  if (!dryRun) {
    const chunk = Math.max(1, options.chunk ?? 64);
    for (let i = 0; i < absorbed.length; i += chunk) {
      options.signal?.throwIfAborted();
      const now = await watermarkNow(views, from);
      if (!now || now.watermark < from.watermark) throw new WatermarkMovedBackError(from, now, removed);
      for (const r of absorbed.slice(i, i + chunk)) {
        await live.remove(r.cell, r.tileId);
        removed++;
      }
    }
  }
  const report: ExpireReport = {
    version: from.name,
    watermark: from.watermark,
    dryRun,
    scanned: entries.length,
    absorbed: absorbed.length,
    removed,
    kept: entries.length - absorbed.length,
    results: absorbed,
    rasterBuckets: await reclaim(),
  };
  logger.info(
    { version: report.version, watermark: report.watermark, dryRun, absorbed: report.absorbed, removed },
    dryRun ? "absorbed live results listed (dry run)" : "absorbed live results expired",
  );
  return report;
}
