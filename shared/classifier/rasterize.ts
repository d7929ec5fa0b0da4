/**
 * Which pixels a labelled geometry covers, by GDAL's rules (what rasterio.features.geometry_mask
 * does with all_touched=False): a pixel belongs to a polygon when its centre is inside, decided by
 * GDAL's scanline fill (alg/llrasterize.cpp, GDALdllImageFilledPolygon) replayed operation for
 * operation — even-odd over all rings of the geometry, intersections rounded with floor(x + 0.5),
 * GDAL's treatment of horizontal edges — on coordinates mapped to pixel space through GDAL's
 * inverted geotransform. A point labels the pixel that contains it.
 */
import type { GeoTransform } from "../raster/types.js";

/** World -> pixel affine transform, computed as GDALInvGeoTransform does (so the same rounding). */
export function invertGeoTransform(gt: GeoTransform): GeoTransform | null {
  const [g0, g1, g2, g3, g4, g5] = gt;
  if (g2 === 0 && g4 === 0 && g1 !== 0 && g5 !== 0) return [-g0 / g1, 1 / g1, 0, -g3 / g5, 0, 1 / g5];
  const det = g1 * g5 - g2 * g4;
  const magnitude = Math.max(Math.abs(g1), Math.abs(g2), Math.abs(g4), Math.abs(g5));
  if (Math.abs(det) <= 1e-10 * magnitude * magnitude) return null;
  const inv = 1 / det;
  return [(g2 * g3 - g0 * g5) * inv, g5 * inv, -g2 * inv, (-g1 * g3 + g0 * g4) * inv, -g4 * inv, g1 * inv];
}

/** Pixel-space coordinates of one world point (GDAL's GenImgProjTransform, same operation order). */
export function toPixel(inv: GeoTransform, x: number, y: number): [number, number] {
  return [inv[0] + x * inv[1] + y * inv[2], inv[3] + x * inv[4] + y * inv[5]];
}

/**
 * The pixels (row-major indices, ascending, no repeats) whose centres fall inside a polygon given as
 * rings in pixel coordinates (outer rings and holes alike; for a MultiPolygon all rings of all parts,
 * as GDAL fills them together). Rings need not be closed.
 */
export function fillPolygon(rings: readonly Float64Array[], width: number, height: number): Int32Array {
  // Each ring is x0, y0, x1, y1, ... in pixel space.
  let minY = Infinity;
  let maxY = -Infinity;
  let minX = Infinity;
  let maxX = -Infinity;
  let points = 0;
  for (const ring of rings) {
    for (let i = 0; i < ring.length; i += 2) {
      const x = ring[i] as number;
      const y = ring[i + 1] as number;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
    }
    points += ring.length >> 1;
  }
  if (points === 0) return new Int32Array(0);
  // GDAL truncates toward zero and clamps; rows outside the polygon's span find no intersections.
  const rowStart = Math.max(0, Math.trunc(minY));
  const rowEnd = Math.min(height - 1, Math.trunc(maxY));
  const colStart = Math.max(0, Math.floor(minX + 0.5) - 1);
  const colEnd = Math.min(width - 1, Math.floor(maxX + 0.5) + 1);
  if (rowStart > rowEnd || colStart > colEnd) return new Int32Array(0);
  // A mask over the polygon's bounding box: spans may overlap (GDAL burns them twice), pixels once.
  const boxWidth = colEnd - colStart + 1;
  const mask = new Uint8Array(boxWidth * (rowEnd - rowStart + 1));
  const burn = (row: number, x1: number, x2: number): void => {
    const a = Math.max(x1, colStart, 0);
    const b = Math.min(x2, colEnd, width - 1);
    if (b < a) return;
    mask.fill(
      1,
      (row - rowStart) * boxWidth + (a - colStart),
      (row - rowStart) * boxWidth + (b - colStart) + 1,
    );
  };
  const ints: number[] = [];
  for (let row = rowStart; row <= rowEnd; row++) {
    const dy = row + 0.5;
    ints.length = 0;
    for (const ring of rings) {
      const n = ring.length >> 1;
      for (let i = 0; i < n; i++) {
        // Edge from the previous vertex (the last one for i = 0) to vertex i.
        const i1 = i === 0 ? n - 1 : i - 1;
        let dy1 = ring[2 * i1 + 1] as number;
        let dy2 = ring[2 * i + 1] as number;
        if ((dy1 < dy && dy2 < dy) || (dy1 > dy && dy2 > dy)) continue;
        let dx1: number;
        let dx2: number;
        if (dy1 < dy2) {
          dx1 = ring[2 * i1] as number;
          dx2 = ring[2 * i] as number;
        } else if (dy1 > dy2) {
          [dy1, dy2] = [dy2, dy1];
          dx2 = ring[2 * i1] as number;
          dx1 = ring[2 * i] as number;
        } else {
          // A horizontal edge exactly on the scanline: GDAL fills it when it runs right to left
          // (a "bottom" edge) and skips it otherwise.
          const xa = ring[2 * i1] as number;
          const xb = ring[2 * i] as number;
          if (xa > xb) {
            const h1 = Math.floor(xb + 0.5);
            const h2 = Math.floor(xa + 0.5);
            if (h1 <= width - 1 && h2 > 0) burn(row, h1, h2 - 1);
          }
          continue;
        }
        if (dy < dy2 && dy >= dy1) {
          const intersect = ((dy - dy1) * (dx2 - dx1)) / (dy2 - dy1) + dx1;
          ints.push(Math.floor(intersect + 0.5));
        }
      }
    }
    ints.sort((a, b) => a - b);
    for (let i = 0; i + 1 < ints.length; i += 2) {
      const x1 = ints[i] as number;
      const x2 = ints[i + 1] as number;
      if (x1 <= width - 1 && x2 > 0) burn(row, x1, x2 - 1);
    }
  }
  let count = 0;
  for (let i = 0; i < mask.length; i++) count += mask[i] as number;
  const out = new Int32Array(count);
  let o = 0;
  for (let r = 0, i = 0; r <= rowEnd - rowStart; r++)
    for (let c = 0; c < boxWidth; c++, i++)
      if (mask[i] === 1) out[o++] = (rowStart + r) * width + colStart + c;
  return out;
}

/**
 * GDAL's OGRLinearRing::isClockwise (x right, y up): the turn at the lowest, then rightmost vertex,
 * falling back to the shoelace sum when that vertex is repeated or a neighbour coincides with it.
 * For simple rings this is the sign of the area; for self-touching ones it is GDAL's answer.
 */
export function isClockwise(ring: readonly (readonly [number, number])[]): boolean {
  const n = ring.length;
  if (n < 2) return true;
  const EPSILON = 1e-5;
  const near = (a: number, b: number): boolean => Math.abs(a - b) < EPSILON;
  const pt = (i: number): readonly [number, number] => ring[i] as readonly [number, number];
  let fallback = false;
  let v = 0;
  for (let i = 1; i < n - 1; i++) {
    const [x, y] = pt(i);
    const [vx, vy] = pt(v);
    if (y < vy || (y === vy && x > vx)) {
      v = i;
      fallback = false;
    } else if (y === vy && x === vx) fallback = true;
  }
  let prev = v - 1;
  if (prev < 0) prev = n - 2;
  if (near(pt(prev)[0], pt(v)[0]) && near(pt(prev)[1], pt(v)[1])) fallback = true;
  const dx0 = pt(prev)[0] - pt(v)[0];
  const dy0 = pt(prev)[1] - pt(v)[1];
  let next = v + 1;
  if (next >= n - 1) next = 0;
  if (near(pt(next)[0], pt(v)[0]) && near(pt(next)[1], pt(v)[1])) fallback = true;
  const dx1 = pt(next)[0] - pt(v)[0];
  const dy1 = pt(next)[1] - pt(v)[1];
  const cross = dx1 * dy0 - dx0 * dy1;
  if (!fallback) {
    if (cross > 0) return false;
    if (cross < 0) return true;
  }
  let sum = pt(0)[0] * (pt(1)[1] - pt(n - 1)[1]);
  for (let i = 1; i < n - 1; i++) sum += pt(i)[0] * (pt(i + 1)[1] - pt(i - 1)[1]);
  sum += pt(n - 1)[0] * (pt(0)[1] - pt(n - 2)[1]);
  return sum < 0;
}

/**
 * The pixels (row-major, ascending) of a polygon given by its rings in the raster's CRS — every ring
 * of every part for a MultiPolygon — as rasterio.features.geometry_mask (all_touched=False) finds
 * them on a raster of this geotransform and size.
 *
 * Rings are walked clockwise in world coordinates whatever their stored orientation: measured
 * against rasterio/GDAL 3.6, which rasterise that way. Orientation decides whether an edge lying
 * exactly on a row of pixel centres is burnt, so it matters on grid-aligned polygons.
 */
export function polygonPixels(
  rings: readonly (readonly (readonly [number, number])[])[],
  geoTransform: GeoTransform,
  width: number,
  height: number,
): Int32Array {
  const inv = invertGeoTransform(geoTransform);
  if (inv === null) return new Int32Array(0);
  const pixelRings = rings.map((ring) => {
    const walk = isClockwise(ring) ? ring : [...ring].reverse();
    const out = new Float64Array(walk.length * 2);
    walk.forEach(([x, y], i) => {
      const [px, py] = toPixel(inv, x, y);
      out[2 * i] = px;
      out[2 * i + 1] = py;
    });
    return out;
  });
  return fillPolygon(pixelRings, width, height);
}

/** The pixel (row-major index) containing a world point, or -1 outside the raster. */
export function pointPixel(
  x: number,
  y: number,
  geoTransform: GeoTransform,
  width: number,
  height: number,
): number {
  const inv = invertGeoTransform(geoTransform);
  if (inv === null) return -1;
  const [px, py] = toPixel(inv, x, y);
  return pixelAt(px, py, width, height);
}

/** The pixel (row-major index) containing a point given in pixel coordinates, or -1 outside. */
export function pixelAt(px: number, py: number, width: number, height: number): number {
  const c = Math.floor(px);
  const r = Math.floor(py);
  if (!(c >= 0 && c < width && r >= 0 && r < height)) return -1;
  return r * width + c;
}
