/**
 * Candidates of one cell on different pixel grids (another resolution, another CRS, a smaller
 * footprint): the composite of a cell is on the grid of the candidate covering the cell
 * (`coveringGridIndex`: the largest footprint, ties to the newest — the newest scene, the one the
 * per-cell rule shows, whenever all share one extent), and every candidate on another grid is sampled at each target pixel's centre by nearest neighbour, as Earth
 * Engine's `mosaic()` reprojects its inputs onto the output grid (nearest neighbour is its default
 * resampling). The centre goes through the same transforms as a point query (shared/crs
 * `projectPoint`, then GDAL's inverted geotransform, floor): the sampled pixel is the one a
 * `/v1/point` at that centre finds in the candidate. A centre outside the candidate's grid, or not
 * mapping at all, samples class 0 (not valid there); masks travel with the classes, since class 0 is
 * what nodata and quality-masked pixels become.
 */
import { invertGeoTransform, toPixel } from "../classifier/rasterize.js";
import { pixelArea } from "../classifier/area.js";
import { projectPoint, sameCrs } from "../crs/crs.js";
import type { Crs } from "../raster/types.js";
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
 * The grid a cell's composite is on: among `grids` (the cell's candidates, newest first), the one
 * whose footprint covers the most ground, ties (within a relative 1e-9, so one extent at two
 * resolutions is a tie) to the newest. Tiles are cut per cell, so the largest footprint is the one
 * covering the most of the cell; a newer scene covering only part of it then contributes where it
 * has pixels and the older ones show through elsewhere, as on Earth Engine's fixed `mosaic()` grid.
 * When every candidate shares one extent this is the newest, the per-cell rule's scene.
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
