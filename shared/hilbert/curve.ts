/**
 * The Hilbert curve: a bijection between the cells of a 2^order x 2^order grid and 0..4^order-1 in
 * which consecutive indices are always edge neighbours, so a range of indices is a compact patch of
 * the map. Orders up to 16 (indices up to 2^32 - 1) are computed with exact integer arithmetic:
 * coordinates stay below 2^16 and fit 32-bit bit operations; the index itself is accumulated with
 * ordinary (53-bit exact) number arithmetic because it may exceed 2^31.
 */
import type { Bounds } from "../raster/types.js";

/** The largest supported order: a 65536 x 65536 grid. */
export const MAX_HILBERT_ORDER = 16;

function checkOrder(order: number): number {
  if (!Number.isInteger(order) || order < 0 || order > MAX_HILBERT_ORDER)
    throw new RangeError(`Hilbert order must be an integer in 0..${MAX_HILBERT_ORDER}, got ${order}`);
  return 2 ** order;
}

/**
 * The Hilbert index of cell (x, y) on a 2^order x 2^order grid. Index 0 is cell (0, 0) and the
 * last index, 4^order - 1, is cell (2^order - 1, 0).
 * @throws RangeError when the cell is outside the grid or the order is out of range.
 */
export function hilbertIndex(order: number, x: number, y: number): number {
  const n = checkOrder(order);
  if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= n || y >= n)
    throw new RangeError(`cell (${x}, ${y}) is outside the ${n}x${n} grid of order ${order}`);
  let d = 0;
  for (let s = n >>> 1; s > 0; s >>>= 1) {
    const rx = (x & s) !== 0 ? 1 : 0;
    const ry = (y & s) !== 0 ? 1 : 0;
    d += s * s * ((3 * rx) ^ ry);
    // Rotate the quadrant so the sub-curve inside it starts and ends where the parent curve needs.
    if (ry === 0) {
      if (rx === 1) {
        x = s - 1 - (x & (s - 1));
        y = s - 1 - (y & (s - 1));
      }
      const t = x;
      x = y;
      y = t;
    }
    x &= s - 1;
    y &= s - 1;
  }
  return d;
}

/**
 * The cell at Hilbert index `d` on a 2^order x 2^order grid: the inverse of {@link hilbertIndex}.
 * @throws RangeError when `d` is outside 0..4^order - 1.
 */
export function hilbertPoint(order: number, d: number): { x: number; y: number } {
  const n = checkOrder(order);
  if (!Number.isInteger(d) || d < 0 || d >= n * n)
    throw new RangeError(`Hilbert index ${d} is outside 0..${n * n - 1} for order ${order}`);
  let x = 0;
  let y = 0;
  let t = d;
  for (let s = 1; s < n; s *= 2) {
    // t may exceed 2^31, so digits come from division and remainder rather than bit operations.
    const rx = Math.floor(t / 2) % 2;
    const ry = (t % 2) ^ rx;
    if (ry === 0) {
      if (rx === 1) {
        x = s - 1 - x;
        y = s - 1 - y;
      }
      const tmp = x;
      x = y;
      y = tmp;
    }
    x += s * rx;
    y += s * ry;
    t = Math.floor(t / 4);
  }
  return { x, y };
}

/**
 * The Hilbert index of a point in any CRS, after normalising it within `bounds` (for example the
 * archive's extent) onto a 2^order grid. Points on or beyond the bounds clamp to the edge cells, so
 * tile centroids of an archive always get an index. Use it to order tiles that are not on one grid.
 * @throws RangeError when the bounds have no extent or the point is not finite.
 */
export function hilbertIndexOfPoint(bounds: Bounds, x: number, y: number, order = MAX_HILBERT_ORDER): number {
  const n = checkOrder(order);
  const w = bounds.maxX - bounds.minX;
  const h = bounds.maxY - bounds.minY;
  if (!(w > 0) || !(h > 0))
    throw new RangeError(`bounds must have a positive extent, got ${JSON.stringify(bounds)}`);
  if (!Number.isFinite(x) || !Number.isFinite(y)) throw new RangeError(`point (${x}, ${y}) is not finite`);
  const cell = (v: number, min: number, size: number) =>
    Math.min(n - 1, Math.max(0, Math.floor(((v - min) / size) * n)));
  return hilbertIndex(order, cell(x, bounds.minX, w), cell(y, bounds.minY, h));
}

/**
 * The smallest order whose 2^order grid holds `cells` cells along its longer side.
 * @throws RangeError when `cells` is outside 1..2^MAX_HILBERT_ORDER.
 */
export function hilbertOrderFor(cells: number): number {
  if (!Number.isInteger(cells) || cells < 1 || cells > 2 ** MAX_HILBERT_ORDER)
    throw new RangeError(`a Hilbert grid side must be 1..${2 ** MAX_HILBERT_ORDER} cells, got ${cells}`);
  let order = 0;
  while (2 ** order < cells) order++;
  return order;
}
