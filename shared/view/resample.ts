/**
 * Candidates of one cell on different pixel grids (another resolution, another CRS, a shifted
 * footprint): the composite of a cell is on the union grid of its candidates (`unionGrid`: the
 * lattice of the candidate covering the most ground, `coveringGridIndex` — the newest scene whenever
 * all share one extent — extended to hold every candidate's footprint), and every candidate on another grid is sampled at each target pixel's centre by nearest neighbour, as Earth
 * Engine's `mosaic()` reprojects its inputs onto the output grid (nearest neighbour is its default
 * resampling). The centre goes through the same transforms as a point query (shared/crs
 * `projectPoint`, then GDAL's inverted geotransform, floor): the sampled pixel is the one a
 * `/v1/point` at that centre finds in the candidate. A centre outside the candidate's grid, or not
 * mapping at all, samples class 0 (not valid there); masks travel with the classes, since class 0 is
 * what nodata and quality-masked pixels become.
 */
import { invertGeoTransform, toPixel } from "../classifier/rasterize.js";
import { pixelArea } from "../classifier/area.js";
import { CrsError, projectPoint, sameCrs, toWgs84 } from "../crs/crs.js";
import { boundsOf } from "../geotiff/metadata.js";
import { densifiedRing, ringFootprint } from "../lonlat/box.js";
import type { Bounds, Crs } from "../raster/types.js";
import { NO_SOURCE, type PixelComposite, type PixelLayer } from "./composite.js";

/** A candidate's pixel grid: size in pixels, GDAL geotransform, CRS (null = not placeable). */
export interface LayerGrid {
  readonly width: number;
  readonly height: number;
  readonly geoTransform: readonly number[];
  readonly crs: Crs | null;
}

/** True when two grids are the very same pixel grid (size, geotransform and CRS). */
export function sameLayerGrid(a: LayerGrid, b: LayerGrid): boolean {
  if (a.width !== b.width || a.height !== b.height) return false;
  for (let i = 0; i < 6; i++) if (a.geoTransform[i] !== b.geoTransform[i]) return false;
  if (a.crs === null || b.crs === null) return a.crs === b.crs;
  return sameCrs(a.crs, b.crs);
}

/**
 * For each pixel of `target` (row-major, width × height), the index of the pixel of `from` that
 * contains the target pixel's centre, or -1 when none does (outside `from`, a transform that does
 * not map, a degenerate geotransform, a grid without a CRS).
 * @throws CrsError when a CRS has no proj4 definition.
 */
export function samplingIndex(target: LayerGrid, from: LayerGrid): Int32Array {
  const n = target.width * target.height;
  const out = new Int32Array(n).fill(-1);
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0] = from.geoTransform;
  const inv = invertGeoTransform([g0, g1, g2, g3, g4, g5]);
  if (!inv || target.crs === null || from.crs === null) return out;
  const [t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 0] = target.geoTransform;
  const reproject = !sameCrs(target.crs, from.crs);
  for (let r = 0; r < target.height; r++)
    for (let c = 0; c < target.width; c++) {
      const x = t0 + (c + 0.5) * t1 + (r + 0.5) * t2;
      const y = t3 + (c + 0.5) * t4 + (r + 0.5) * t5;
      const [sx, sy] = reproject ? projectPoint(target.crs, from.crs, x, y) : [x, y];
      if (!Number.isFinite(sx) || !Number.isFinite(sy)) continue;
      const [fc, fr] = toPixel(inv, sx, sy);
      const col = Math.floor(fc);
      const row = Math.floor(fr);
      if (col < 0 || row < 0 || col >= from.width || row >= from.height) continue;
      out[r * target.width + c] = row * from.width + col;
    }
  return out;
}

/** A layer sampled through `index` (samplingIndex): class 0 and no votes where the index is -1. */
export function resampleLayer(layer: PixelLayer, index: Int32Array): PixelLayer {
  const classes = new Uint8Array(index.length);
  const votes = new Uint8Array(index.length);
  for (let i = 0; i < index.length; i++) {
    const j = index[i] as number;
    if (j < 0) continue;
    classes[i] = layer.classes[j] as number;
    votes[i] = layer.votes[j] as number;
  }
  return { classes, votes };
}

/**
 * A composite sampled through `index`, its per-pixel source index with it and each source's pixel
 * count recounted on the new grid. Sampling a composite equals compositing the sampled sources only
 * when every source of the composite lies on the composite's own grid.
 */
export function resampleComposite(c: PixelComposite, index: Int32Array): PixelComposite {
  const { classes, votes } = resampleLayer(c, index);
  const source = new Uint8Array(index.length).fill(NO_SOURCE);
  const contributions = new Array<number>(c.contributions.length).fill(0);
  for (let i = 0; i < index.length; i++) {
    const j = index[i] as number;
    if (j < 0) continue;
    const s = c.source[j] as number;
    source[i] = s;
    if (s !== NO_SOURCE) contributions[s] = (contributions[s] as number) + 1;
  }
  return { classes, votes, source, contributions };
}

/** A grid's footprint on the ground in m²: the sum of its pixel areas (`pixelArea`), 0 when unknown. */
export function footprintM2(g: LayerGrid): number {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0] = g.geoTransform;
  const pa = pixelArea({ geoTransform: [g0, g1, g2, g3, g4, g5], crs: g.crs, height: g.height });
  if (pa === null) return 0;
  if (pa.kind === "constant") return pa.m2 * g.width * g.height;
  let sum = 0;
  if (pa.kind === "per-row") for (const a of pa.m2) sum += a * g.width;
  else for (let r = 0; r < g.height; r++) for (let c = 0; c < g.width; c++) sum += pa.m2(c, r);
  return sum;
}

/**
 * The candidate whose pixel lattice a cell's composite takes (`unionGrid` extends it to every
 * footprint): among `grids` (the cell's candidates, newest first), the one whose footprint covers
 * the most ground, ties (within a relative 1e-9, so one extent at two resolutions is a tie) to the
 * newest. Tiles are cut per cell, so the largest footprint is the one covering the most of the cell;
 * a newer scene covering only part of it then contributes where it has pixels and the older ones
 * show through elsewhere, as on Earth Engine's `mosaic()` grid. When every candidate shares one
 * extent this is the newest, the per-cell rule's scene.
 * @returns the index into `grids`, -1 when it is empty.
 */
export function coveringGridIndex(grids: readonly LayerGrid[]): number {
  const newest = grids[0];
  if (!newest) return -1;
  // Candidates on the newest one's very grid tie with it: no footprint to compute (the usual cell,
  // every acquisition on one tiling, costs a few comparisons).
  let best = 0;
  let most = -1;
  for (let i = 1; i < grids.length; i++) {
    const g = grids[i] as LayerGrid;
    if (sameLayerGrid(g, newest)) continue;
    if (most < 0) most = footprintM2(newest);
    const m2 = footprintM2(g);
    if (m2 > most * (1 + 1e-9)) {
      best = i;
      most = m2;
    }
  }
  return best;
}

/** How many times the covering grid's pixel count a union grid may have (`unionGrid`'s bound). */
export const UNION_GRID_MAX_PIXELS_FACTOR = 4;

/** Points per outline edge projected into the covering CRS (GDALSuggestedWarpOutput2's 20 steps). */
const OUTLINE_STEPS = 20;

/**
 * Pixel coordinates within a millionth of a lattice line count as on it: an outline on the very
 * lattice (a scene shifted by whole pixels) must not gain a column from rounding in the transform.
 */
const ON_LATTICE = 1e-6;

/** The grid a cell's composite is on, and how it was chosen (`unionGrid`). */
export interface CompositeGrid {
  /** The composite's pixel grid: the covering candidate's own grid object, or its lattice extended. */
  readonly grid: LayerGrid;
  /** Index into the candidates of the covering one (`coveringGridIndex`), whose lattice `grid` keeps. */
  readonly covering: number;
  /**
   * Why `grid` is the covering grid although a footprint reaches beyond it: "too-large" when the
   * union would exceed UNION_GRID_MAX_PIXELS_FACTOR times its pixels, "not-placeable" when the
   * covering grid has no CRS or an invertible geotransform to extend; null when `grid` holds every
   * footprint.
   */
  readonly clipped: "too-large" | "not-placeable" | null;
}

/**
 * The union composite grid of one cell's candidates (newest first), as Earth Engine's `mosaic()`
 * keeps the union of its inputs and `gdalwarp` sizes its output: the covering candidate's CRS,
 * resolution and pixel phase (its geotransform with the origin moved by whole pixels, GDAL's
 * `-tap` onto its own lattice), extended to the smallest window of that lattice holding every
 * candidate's footprint. A footprint in another CRS is its outline — OUTLINE_STEPS points per edge,
 * GDALSuggestedWarpOutput2's densification — projected into the covering CRS; in the same CRS its
 * four corners (the map is affine). The window is taken in the covering grid's own pixel space, so
 * a rotated geotransform extends along its own rows and columns.
 *
 * When every footprint lies inside the covering grid (the usual cell: one tiling, one extent) the
 * result is that very grid object, found with a few comparisons when candidates share it. Pixels of
 * the union no candidate covers sample class 0 from every candidate: no source, counted nowhere.
 * Bound: a union of more than `maxFactor` times the covering grid's pixels (scenes of the cell far
 * apart, a footprint blown up by a projection's edge) falls back to the covering grid, `clipped`
 * saying so; candidates without a CRS or an invertible geotransform add no footprint, and points
 * of an outline that do not project are skipped (GDAL drops failed points too).
 * @returns null when `grids` is empty.
 * @throws CrsError when a CRS has no proj4 definition.
 */
export function unionGrid(
  grids: readonly LayerGrid[],
  maxFactor = UNION_GRID_MAX_PIXELS_FACTOR,
): CompositeGrid | null {
  const covering = coveringGridIndex(grids);
  const on = grids[covering];
  if (!on) return null;
  const kept = (clipped: CompositeGrid["clipped"]): CompositeGrid => ({ grid: on, covering, clipped });
  const others = grids.filter((g) => g !== on && !sameLayerGrid(g, on));
  if (others.length === 0) return kept(null);
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0] = on.geoTransform;
  const inv = invertGeoTransform([g0, g1, g2, g3, g4, g5]);
  if (!inv || on.crs === null) return kept("not-placeable");
  let minCol = 0;
  let minRow = 0;
  let maxCol = on.width;
  let maxRow = on.height;
  for (const g of others) {
    if (g.crs === null) continue;
    const [h0 = 0, h1 = 0, h2 = 0, h3 = 0, h4 = 0, h5 = 0] = g.geoTransform;
    if (!invertGeoTransform([h0, h1, h2, h3, h4, h5])) continue;
    const reproject = !sameCrs(g.crs, on.crs);
    const steps = reproject ? OUTLINE_STEPS : 1;
    const add = (c: number, r: number): void => {
      const x = h0 + c * h1 + r * h2;
      const y = h3 + c * h4 + r * h5;
      const [tx, ty] = reproject ? projectPoint(g.crs as Crs, on.crs as Crs, x, y) : [x, y];
      if (!Number.isFinite(tx) || !Number.isFinite(ty)) return;
      const [col, row] = toPixel(inv, tx, ty);
      if (col < minCol) minCol = col;
      if (col > maxCol) maxCol = col;
      if (row < minRow) minRow = row;
      if (row > maxRow) maxRow = row;
    };
    // The outline in the candidate's pixel space, each edge from its start corner.
    for (let i = 0; i < steps; i++) {
      const t = i / steps;
      add(t * g.width, 0);
      add(g.width, t * g.height);
      add(g.width - t * g.width, g.height);
      add(0, g.height - t * g.height);
    }
  }
  const c0 = Math.min(0, Math.floor(minCol + ON_LATTICE));
  const r0 = Math.min(0, Math.floor(minRow + ON_LATTICE));
  const c1 = Math.max(on.width, Math.ceil(maxCol - ON_LATTICE));
  const r1 = Math.max(on.height, Math.ceil(maxRow - ON_LATTICE));
  if (c0 === 0 && r0 === 0 && c1 === on.width && r1 === on.height) return kept(null);
  const width = c1 - c0;
  const height = r1 - r0;
  if (width * height > maxFactor * on.width * on.height) return kept("too-large");
  return {
    grid: {
      width,
      height,
      geoTransform: [g0 + c0 * g1 + r0 * g2, g1, g2, g3 + c0 * g4 + r0 * g5, g4, g5],
      crs: on.crs,
    },
    covering,
    clipped: null,
  };
}

/**
 * A grid's footprint as a WGS 84 lon/lat box: its edge densified (21 points per side, as a tile's
 * own `boundsWgs84`) and unwrapped across 180° (`ringFootprint`, RFC 7946 §5.2). Null without a
 * CRS, or when no point maps.
 */
export function gridBoundsWgs84(g: LayerGrid): Bounds | null {
  if (g.crs === null || g.crs.proj4 === null) return null;
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0] = g.geoTransform;
  const crs = g.crs;
  try {
    return ringFootprint(
      densifiedRing(boundsOf([g0, g1, g2, g3, g4, g5], g.width, g.height)).map(([x, y]) =>
        toWgs84(crs, x, y),
      ),
    );
  } catch (err) {
    if (err instanceof CrsError) return null;
    throw err;
  }
}
