/**
 * The per-pixel merge rule, pure: within one cell, the candidates are ordered newest first exactly
 * as the per-cell rule orders them (merge.ts `compareCandidates`: acquisition, then ingest sequence;
 * live results only above the watermark), and each pixel takes the class of the first candidate in
 * which it is valid. A pixel is valid when its class is not 0: class 0 ("not classified") is what
 * nodata and quality-masked pixels (shared/features/quality.ts) become, so a cloud in a fresh scene
 * shows the older clear pixel under it instead of a hole. Every pixel has exactly one source (or
 * none), so nothing is counted twice. This is Earth Engine's `ImageCollection.mosaic()` over a
 * collection sorted by time, newest on top.
 *
 * A composite can itself be a layer: the batch view stores, per cell, the composite of its archived
 * acquisitions with a per-pixel source index, and serving lays the live results above the watermark
 * over it. `overlayComposite` does that without the batch tiles' rasters and gives exactly what the
 * rule gives over all of them (every batch acquisition before a pixel's batch source is invalid
 * there; every one after it is irrelevant).
 */
import { LanemapError } from "../errors.js";
import { compareCandidates, type MergeCandidate } from "./merge.js";
import { pixelArea } from "../classifier/area.js";
import type { GeoTransform } from "../raster/types.js";
import type { LayerGrid } from "./resample.js";

/** The source index of a pixel no candidate has valid. */
export const NO_SOURCE = 255;
/** Most candidates one composite can name (source indices are uint8; NO_SOURCE is reserved). */
export const MAX_COMPOSITE_SOURCES = 255;

/** One candidate's class raster as the rule reads it. */
export interface PixelLayer {
  /** Class per pixel; 0 = not valid here (nodata or masked). */
  readonly classes: Uint8Array;
  /** Winning votes per pixel (confidence = votes / k). */
  readonly votes: Uint8Array;
}

/** A composite raster: classes and votes per pixel and, per pixel, which source gave them. */
export interface PixelComposite extends PixelLayer {
  /** Index of the pixel's source in the composite's source list (newest first); NO_SOURCE = none. */
  readonly source: Uint8Array;
  /** Pixels each source contributes, by source index. */
  readonly contributions: readonly number[];
}

function checkLayer(l: PixelLayer, n: number, what: string): void {
  if (l.classes.length !== n || l.votes.length !== n)
    throw new LanemapError("RASTER", `${what} has ${l.classes.length} pixels, the composite ${n}`);
}

/**
 * The per-pixel composite of `layers`, ordered newest first: pixel i takes the first layer whose
 * class at i is not 0, and `source[i]` is that layer's index.
 * @throws LanemapError RASTER when a layer's size is not `n` or there are more than 255 layers.
 */
export function compositePixels(layers: readonly PixelLayer[], n: number): PixelComposite {
  return overlayComposite(
    undefined,
    [],
    layers,
    layers.map((_, i) => i),
    n,
  );
}

/**
 * Lays `layers` over an existing composite `base`, all sources placed in one newest-first order:
 * `baseRanks[s]` is the rank of the base's source s, `layerRanks[j]` the rank of layer j (ranks are
 * distinct and 0 = newest). Pixel i takes, among the layers ranked before its base source, the first
 * in which it is valid, else the base's pixel. The result's `source` indexes the merged order (rank).
 * @throws LanemapError RASTER on a size mismatch, unsorted layer ranks or more than 255 sources.
 */
export function overlayComposite(
  base: PixelComposite | undefined,
  baseRanks: readonly number[],
  layers: readonly PixelLayer[],
  layerRanks: readonly number[],
  n: number,
): PixelComposite {
  const total = baseRanks.length + layers.length;
  if (total > MAX_COMPOSITE_SOURCES)
    throw new LanemapError(
      "RASTER",
      `a composite names at most ${MAX_COMPOSITE_SOURCES} sources, got ${total}`,
    );
  if (layerRanks.length !== layers.length)
    throw new LanemapError("RASTER", "every layer needs a rank in the merged order");
  for (let j = 1; j < layerRanks.length; j++)
    if ((layerRanks[j] as number) <= (layerRanks[j - 1] as number))
      throw new LanemapError("RASTER", "layers must be given newest first (increasing ranks)");
  if (base) checkLayer(base, n, "the base composite");
  layers.forEach((l, j) => checkLayer(l, n, `layer ${j}`));

  const classes = new Uint8Array(n);
  const votes = new Uint8Array(n);
  const source = new Uint8Array(n).fill(NO_SOURCE);
  const contributions = new Array<number>(total).fill(0);
  // Base source index -> merged rank, as a table the pixel loop reads (NO_SOURCE -> past every layer).
  const baseRank = new Int32Array(256).fill(total);
  baseRanks.forEach((r, s) => (baseRank[s] = r));
  const ranks = Int32Array.from(layerRanks);
  const m = layers.length;
  const layerClasses = layers.map((l) => l.classes);
  for (let i = 0; i < n; i++) {
    const bs = base ? (base.source[i] as number) : NO_SOURCE;
    const limit = baseRank[bs] as number;
    let taken = false;
    for (let j = 0; j < m; j++) {
      const r = ranks[j] as number;
      if (r >= limit) break;
      const c = (layerClasses[j] as Uint8Array)[i] as number;
      if (c !== 0) {
        classes[i] = c;
        votes[i] = (layers[j] as PixelLayer).votes[i] as number;
        source[i] = r;
        contributions[r] = (contributions[r] as number) + 1;
        taken = true;
        break;
      }
    }
    if (!taken && base && bs !== NO_SOURCE) {
      classes[i] = base.classes[i] as number;
      votes[i] = base.votes[i] as number;
      source[i] = limit;
      contributions[limit] = (contributions[limit] as number) + 1;
    }
  }
  return { classes, votes, source, contributions };
}

/** A layer's own composite: its valid pixels from itself (source 0), the rest from nobody. */
export function singleLayerComposite(layer: PixelLayer): PixelComposite {
  const n = layer.classes.length;
  const source = new Uint8Array(n);
  let valid = 0;
  for (let i = 0; i < n; i++)
    if (layer.classes[i] === 0) source[i] = NO_SOURCE;
    else valid++;
  return { classes: layer.classes, votes: layer.votes, source, contributions: [valid] };
}

/**
 * The candidates of one cell for the per-pixel rule: the batch composite's sources and the live
 * results above the watermark, newest first by `compareCandidates`; live results at or below the
 * watermark are absorbed (the batch run read them) and never compete, as in the per-cell rule.
 */
export function pixelCandidates<T extends MergeCandidate>(
  batchSources: readonly T[],
  live: readonly T[],
  watermark: number,
): { ordered: T[]; absorbed: T[] } {
  const ordered: T[] = [...batchSources];
  const absorbed: T[] = [];
  for (const r of live) (r.ingestSeq > watermark ? ordered : absorbed).push(r);
  ordered.sort(compareCandidates);
  return { ordered, absorbed };
}

/**
 * Pixels and m² per class of a composite on `grid` (the composite's own pixel grid). A composite pixel
 * is a pixel of that grid whatever acquisition its class came from, so its area is the grid's own
 * pixel area at that pixel (shared/classifier/area.ts `pixelArea`: constant for projected CRSs, per
 * row on the WGS 84 ellipsoid for geographic ones) — the figure classSummary gives a tile on that
 * grid, summed in the same order, so a composite of one grid tallies exactly as its tiles do.
 * counts[0] = pixels with no source; areasM2[0] = 0, as a tile's summary has it. Arrays have `slots`
 * entries (class ids 0..slots-1); a grid without a known CRS or geotransform has 0 m² everywhere.
 * `meanConfidence` is the mean over the composite's valid pixels of votes / `k` (the composite raster's
 * k), the per-pixel confidence the composite shows; 0 without a valid pixel, as a tile's summary.
 */
export function compositeTally(
  c: PixelComposite,
  grid: LayerGrid,
  slots: number,
  k: number,
): { validPixels: number; counts: number[]; areasM2: number[]; meanConfidence: number } {
  const n = grid.width * grid.height;
  if (c.classes.length !== n)
    throw new LanemapError("RASTER", `the composite has ${c.classes.length} pixels, its grid ${n}`);
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0] = grid.geoTransform;
  const geoTransform: GeoTransform = [g0, g1, g2, g3, g4, g5];
  const pa = pixelArea({ geoTransform, crs: grid.crs, height: grid.height });
  const counts = new Array<number>(slots).fill(0);
  const areasM2 = new Array<number>(slots).fill(0);
  let validPixels = 0;
  let votes = 0;
  for (let r = 0, i = 0; r < grid.height; r++) {
    const rowArea =
      pa === null ? 0 : pa.kind === "constant" ? pa.m2 : pa.kind === "per-row" ? (pa.m2[r] as number) : 0;
    for (let col = 0; col < grid.width; col++, i++) {
      if (c.source[i] === NO_SOURCE) continue;
      const cls = c.classes[i] as number;
      validPixels++;
      votes += c.votes[i] as number;
      counts[cls] = (counts[cls] ?? 0) + 1;
      areasM2[cls] = (areasM2[cls] ?? 0) + (pa?.kind === "per-pixel" ? pa.m2(col, r) : rowArea);
    }
  }
  counts[0] = n - validPixels;
  areasM2[0] = 0;
  const meanConfidence = validPixels > 0 ? Math.min(1, votes / validPixels / k) : 0;
  return { validPixels, counts, areasM2, meanConfidence };
}
