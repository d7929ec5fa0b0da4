/**
 * What the per-pixel composite adds to answers: a cell's sources with the pixels each gives (for
 * /v1/tiles/{id}) and the "age" product, days from each pixel's acquisition to the request, as a
 * palette PNG. Age is the per-pixel freshness of the composite: a cloud block filled from last
 * month's clear scene shows older than the fresh pixels around it.
 */
import { encode as encodePng } from "fast-png";
import type { CompositeBreakdownBody, TileDetailBody } from "../api/schemas.js";
import { pixelSources } from "../view/pixel-composite.js";
import type { ServedResult } from "../view/served-result.js";
import type { SnapshotLease } from "../view/snapshot.js";
import { DAY_MS } from "./present.js";
import { resolveTarget, tileDetail } from "./tiles.js";

/** Ages at or beyond this many days share the last colour of the ramp. */
export const AGE_RAMP_DAYS = 64;

/**
 * The age palette: index 0 transparent (no valid source), index 1 + d for d whole days (0..254),
 * ramped from bright yellow (fresh) through green and blue to dark purple at AGE_RAMP_DAYS and
 * beyond: a perceptually ordered ramp in the manner of viridis, reversed so fresh is bright.
 */
export const AGE_PALETTE: readonly (readonly [number, number, number, number])[] = (() => {
  const stops: readonly [number, number, number][] = [
    [253, 231, 37],
    [94, 201, 98],
    [33, 145, 140],
    [59, 82, 139],
    [68, 1, 84],
  ];
  const out: [number, number, number, number][] = [[0, 0, 0, 0]];
  for (let d = 0; d < 255; d++) {
    const t = Math.min(1, d / AGE_RAMP_DAYS) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(t));
    const f = t - i;
    const a = stops[i] as [number, number, number];
    const b = stops[i + 1] as [number, number, number];
    out.push([
      Math.round(a[0] + (b[0] - a[0]) * f),
      Math.round(a[1] + (b[1] - a[1]) * f),
      Math.round(a[2] + (b[2] - a[2]) * f),
      255,
    ]);
  }
  return out;
})();

/**
 * The age raster of a drawn result at `now`: per pixel 1 + whole days since its source's
 * acquisition (clamped to 255), 0 where no source is valid.
 */
export async function ageRaster(
  r: ServedResult,
  now: number,
): Promise<{ width: number; height: number; data: Uint8Array }> {
  const c = await pixelSources(r);
  const codes = c.sources.map(
    (s) => 1 + Math.min(254, Math.max(0, Math.floor((now - s.acquiredMs) / DAY_MS))),
  );
  const n = c.source.length;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const s = c.source[i] as number;
    data[i] = s < codes.length ? (codes[s] as number) : 0;
  }
  return { width: r.summary.width, height: r.summary.height, data };
}

/** The age product of a drawn result as a palette PNG (AGE_PALETTE; no source transparent). */
export async function agePng(r: ServedResult, now: number): Promise<Uint8Array> {
  const a = await ageRaster(r, now);
  return encodePng({
    width: a.width,
    height: a.height,
    data: a.data,
    depth: 8,
    channels: 1,
    palette: AGE_PALETTE.map((p) => [...p]),
  });
}

/**
 * A drawn result's sources newest first with the pixels each gives, the pixels none gives, and the
 * composite's tally (validPixels; pixels and m² per class id): the figures stats and listings use
 * for the cell, where the detail's `winner` carries the newest tile's own.
 */
export async function compositeBreakdown(r: ServedResult): Promise<CompositeBreakdownBody> {
  const c = await pixelSources(r);
  const given = c.contributions.reduce((a, b) => a + b, 0);
  const s = r.summary;
  const b = r.bounds;
  return {
    // The grid the listing, Arrow and classes.tif give the cell (the union grid of a composite).
    grid: {
      width: s.width,
      height: s.height,
      geoTransform: [...s.geoTransform],
      epsg: s.epsg,
      proj4: s.proj4,
      bbox: b ? [b.minX, b.minY, b.maxX, b.maxY] : null,
    },
    sources: c.sources.map((s, i) => ({
      tileId: s.tileId,
      lane: s.lane,
      acquired: s.acquired,
      modelVersion: s.summary.modelVersion,
      pixels: c.contributions[i] ?? 0,
    })),
    noSourcePixels: c.source.length - given,
    gridClipped: c.gridClipped,
    validPixels: c.validPixels,
    counts: [...c.counts],
    areasM2: [...c.areasM2],
  };
}

/**
 * tileDetail plus the cell's composite breakdown (null when the cell has no winner): the cell's,
 * whether the id is its cell key or one of its tile ids, as `winner` is the cell's newest tile.
 */
export async function tileDetailWithComposite(
  lease: SnapshotLease,
  id: string,
  base: string,
): Promise<TileDetailBody> {
  const detail = tileDetail(lease, id, base);
  const cell = resolveTarget(lease, id).merged;
  if (!cell.winner) return { ...detail, composite: null };
  const composite = await compositeBreakdown(cell.winner);
  // A newest scene shown alone (fully valid, on the covering grid) had its union clipped too when an
  // older scene of the cell lies beyond the bound: the batch run logs it, so the detail says it.
  const gridClipped = composite.gridClipped ?? lease.snapshot.index.unionClipped(cell.cell);
  return { ...detail, composite: { ...composite, gridClipped } };
}
