/**
 * From lon/lat to class-raster pixels: the point lookup (reproject into the tile's CRS, invert the
 * geotransform) and the area count (reproject the area's outline into the tile's pixel space and
 * sweep scanlines through the pixel centres). Working in pixel space keeps the per-pixel cost to
 * integer stepping: the polygon is transformed once per tile, never once per pixel.
 */
import {
  WGS84,
  invertGeoTransform,
  lonWidth,
  projectPoint,
  sameCrs,
  splitAtAntimeridian,
  toPixel,
  type Bounds,
  type ClassRaster,
  type Crs,
} from "../../shared/index.js";
import { clipRing, type Area } from "./area.js";

/** The inverse of a GDAL geotransform: CRS (x, y) -> pixel (col, row), corner-based. */
export interface PixelTransform {
  (x: number, y: number): [col: number, row: number];
}

/**
 * The inverse affine map as a function, or null for a degenerate (non-invertible) geotransform:
 * shared's invertGeoTransform (GDALInvGeoTransform's arithmetic), the one the training rasteriser uses.
 */
export function pixelTransform(gt: readonly number[]): PixelTransform | null {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0] = gt;
  const inv = invertGeoTransform([g0, g1, g2, g3, g4, g5]);
  return inv ? (x, y) => toPixel(inv, x, y) : null;
}

/** What a tile needs for pixel lookups. */
export interface PixelGrid {
  readonly width: number;
  readonly height: number;
  readonly geoTransform: readonly number[];
  readonly crs: Crs;
}

const inverses = new WeakMap<readonly number[], PixelTransform | null>();

function inverseOf(gt: readonly number[]): PixelTransform | null {
  let inv = inverses.get(gt);
  if (inv === undefined) {
    inv = pixelTransform(gt);
    inverses.set(gt, inv);
  }
  return inv;
}

/** The pixel a lon/lat falls in, with its CRS coordinates, or null when it falls outside the grid. */
export function pixelAt(
  grid: PixelGrid,
  lon: number,
  lat: number,
): { col: number; row: number; x: number; y: number } | null {
  const inv = inverseOf(grid.geoTransform);
  if (!inv) return null;
  const [x, y] = projectPoint(WGS84, grid.crs, lon, lat);
  if (!Number.isFinite(x) || !Number.isFinite(y)) return null;
  const [fc, fr] = inv(x, y);
  const col = Math.floor(fc);
  const row = Math.floor(fr);
  if (col < 0 || row < 0 || col >= grid.width || row >= grid.height) return null;
  return { col, row, x, y };
}

/** A projected outline may deviate from its chords by at most this many pixels. */
const DENSIFY_TOLERANCE_PX = 0.05;
/** Halvings of one edge at most (2^8 pieces). */
const DENSIFY_DEPTH = 8;

/**
 * Takes a lon/lat ring (open list of vertices) into pixel space, adding points where the projected
 * edge bends away from its chord: a straight lon/lat edge is a curve in most CRSs. Adaptive, so a
 * short edge in a near-affine CRS (a UTM tile) costs one extra projection rather than a fixed
 * number of them — projections are most of the cost of an area query's edge cells.
 */
function ringToPixels(
  pts: readonly [number, number][],
  toPixel: (lon: number, lat: number) => [number, number],
  identity: boolean,
): Float64Array {
  const out: number[] = [];
  const projected = pts.map(([x, y]) => toPixel(x, y));
  const refine = (
    a: readonly [number, number],
    pa: readonly [number, number],
    b: readonly [number, number],
    pb: readonly [number, number],
    depth: number,
  ): void => {
    const mx = (a[0] + b[0]) / 2;
    const my = (a[1] + b[1]) / 2;
    const pm = toPixel(mx, my);
    const err = Math.hypot(pm[0] - (pa[0] + pb[0]) / 2, pm[1] - (pa[1] + pb[1]) / 2);
    if (depth < DENSIFY_DEPTH && err > DENSIFY_TOLERANCE_PX) {
      refine(a, pa, [mx, my], pm, depth + 1);
      refine([mx, my], pm, b, pb, depth + 1);
      return;
    }
    out.push(pb[0], pb[1]);
  };
  for (let i = 0; i < pts.length; i++) {
    const j = (i + 1) % pts.length;
    const pb = projected[j] as [number, number];
    if (identity) out.push(pb[0], pb[1]);
    else
      refine(pts[i] as [number, number], projected[i] as [number, number], pts[j] as [number, number], pb, 0);
  }
  return Float64Array.from(out);
}

/**
 * Class counts of the pixels whose centres fall inside `area`, over one tile. `bounds` is the
 * tile's WGS84 box: the area is clipped to it (slightly enlarged) first, then projected into the
 * tile's CRS (densified where the projection bends it) and mapped to pixel space. Returns a count
 * per class id (index 0 = not classified) sized to cover every class in the raster.
 */
export function countClassesInArea(
  grid: PixelGrid,
  bounds: Bounds,
  raster: ClassRaster,
  area: Area,
): number[] {
  const counts: number[] = [];
  const inv = inverseOf(grid.geoTransform);
  if (!inv) return counts;
  const identity = sameCrs(grid.crs, WGS84);
  const mx = lonWidth(bounds) * 0.01 + 1e-9;
  const my = (bounds.maxY - bounds.minY) * 0.01 + 1e-9;
  // A tile across the antimeridian is clipped against each half of its box: the area's rings lie in
  // -180..180, so each half yields its own piece (the union below counts a pixel once).
  const clipBoxes = splitAtAntimeridian(bounds).map((p) => ({
    minX: p.minX - mx,
    minY: p.minY - my,
    maxX: p.maxX + mx,
    maxY: p.maxY + my,
  }));
  const crs = grid.crs;
  const toPixel = identity
    ? (lon: number, lat: number) => inv(lon, lat)
    : (lon: number, lat: number) => {
        const [x, y] = projectPoint(WGS84, crs, lon, lat);
        return inv(x, y);
      };
  // Each polygon becomes its rings in pixel space; even-odd within a polygon, union across polygons.
  const polygons: Float64Array[][] = [];
  for (const rings of area.polygons)
    for (const clipBox of clipBoxes) {
      const out: Float64Array[] = [];
      for (const ring of rings) {
        const clipped = clipRing(ring, clipBox);
        if (clipped.length < 3) continue;
        const pts = ringToPixels(clipped, toPixel, identity);
        if (pts.some((v) => !Number.isFinite(v))) continue;
        out.push(pts);
      }
      if (out.length) polygons.push(out);
    }
  if (polygons.length === 0) return counts;
  const { width, height, classes } = raster;
  // Crossings go to a typed buffer sorted natively: a comparator sort of tens of thousands of
  // crossings per row, and a tuple per span, cost most of a long outline's time.
  let edges = 0;
  for (const rings of polygons) for (const p of rings) edges += p.length / 2;
  const xs = new Float64Array(edges);
  const spans: number[] = [];
  const add = (c0: number, c1: number, base: number): void => {
    for (let c = c0; c < c1; c++) {
      const k = classes[base + c] as number;
      counts[k] = (counts[k] ?? 0) + 1;
    }
  };
  for (let row = 0; row < height; row++) {
    const yc = row + 0.5;
    spans.length = 0;
    for (const rings of polygons) {
      let n = 0;
      for (const p of rings) {
        const m = p.length / 2;
        for (let i = 0, j = m - 1; i < m; j = i++) {
          const yi = p[2 * i + 1] as number;
          const yj = p[2 * j + 1] as number;
          // Half-open in y, so a vertex on the scanline is counted by exactly one of its edges.
          if (yi > yc !== yj > yc) {
            const xi = p[2 * i] as number;
            const xj = p[2 * j] as number;
            xs[n++] = xi + ((yc - yi) * (xj - xi)) / (yj - yi);
          }
        }
      }
      const sorted = xs.subarray(0, n).sort();
      for (let i = 0; i + 1 < n; i += 2) {
        // Columns whose centre c + 0.5 lies in [xa, xb).
        const c0 = Math.max(0, Math.ceil((sorted[i] as number) - 0.5));
        const c1 = Math.min(width, Math.ceil((sorted[i + 1] as number) - 0.5));
        if (c1 > c0) spans.push(c0, c1);
      }
    }
    if (spans.length === 0) continue;
    const base = row * width;
    // One polygon's spans are sorted and disjoint already.
    if (polygons.length === 1) {
      for (let i = 0; i < spans.length; i += 2) add(spans[i] as number, spans[i + 1] as number, base);
      continue;
    }
    // Union of spans across polygons (overlapping parts of a MultiPolygon counted once).
    const pairs: [number, number][] = [];
    for (let i = 0; i < spans.length; i += 2) pairs.push([spans[i] as number, spans[i + 1] as number]);
    pairs.sort((a, b) => a[0] - b[0]);
    let cur = -1;
    for (const [a, b] of pairs) {
      add(Math.max(a, cur), b, base);
      cur = Math.max(cur, b);
    }
  }
  for (let i = 0; i < counts.length; i++) counts[i] ??= 0;
  return counts;
}
