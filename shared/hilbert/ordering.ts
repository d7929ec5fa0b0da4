/**
 * The order in which the batch lane processes the tiles of an archive. Processing "around" a point of
 * interest in Chebyshev rings makes the square area of interest (AOI) complete as early as possible:
 * a k x k block centred on the point is exactly the first k^2 tiles. Within a ring, tiles go in
 * Hilbert order so consecutive work stays spatially coherent (neighbouring reads, warm caches).
 *
 * Grid coordinates follow the raster convention of `GeoTransform`: tile (col, row) covers
 * [col, col + 1) x [row, row + 1), so its centre is (col + 0.5, row + 0.5) and row 0 is north.
 */
import { LanemapError } from "../errors.js";
import { createRandom } from "../util/random.js";
import { hilbertIndex, hilbertOrderFor } from "./curve.js";

/** A point in grid units (columns to the east, rows to the south); fractional values allowed. */
export interface GridPoint {
  readonly x: number;
  readonly y: number;
}

/** How to order tiles. */
export type Ordering =
  /** Row-major, north to south and west to east: the order of a raster scan. */
  | { readonly kind: "natural" }
  /** A seeded shuffle: the baseline with no locality at all. */
  | { readonly kind: "random"; readonly seed: number | string }
  /** Along the Hilbert curve over the grid: spatially coherent, no point of interest. */
  | { readonly kind: "hilbert" }
  /** By Euclidean distance from `around` to each tile's centre (a growing disc). */
  | { readonly kind: "distance"; readonly around: GridPoint }
  /** By Chebyshev ring around `around` (a growing square), Hilbert order within a ring. */
  | { readonly kind: "hilbert-around"; readonly around: GridPoint };

/** What orderTiles needs of a tile. */
export interface GridTile {
  readonly id: string;
  readonly col: number;
  readonly row: number;
}

/** A block of tiles: half-open column and row ranges (already clipped to the grid) and its cells. */
export interface TileBlock {
  readonly colStart: number;
  readonly colEnd: number;
  readonly rowStart: number;
  readonly rowEnd: number;
  /** The cells of the block, row-major. */
  readonly cells: readonly { readonly col: number; readonly row: number }[];
  /**
   * The centre of the unclipped block in grid units. Pass it as `around` and the Chebyshev rings
   * of "hilbert-around" coincide with the block, so the block completes first.
   */
  readonly centre: GridPoint;
}

/**
 * The `size` x `size` block of tiles around tile (col, row) on a `gridW` x `gridH` grid. For an odd
 * size the tile is the centre; for an even size no tile is, and the tile is the north-west one of
 * the four central tiles (a 10 x 10 block spans col - 4 .. col + 5). Near an edge the block is
 * clipped, not shifted: the AOI of a corner tile is the part of its surroundings that exists.
 * @throws RangeError when a size is not a positive integer or the tile is outside the grid.
 */
export function blockAround(col: number, row: number, size: number, gridW: number, gridH: number): TileBlock {
  for (const [name, v] of [
    ["size", size],
    ["gridW", gridW],
    ["gridH", gridH],
  ] as const)
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  if (!Number.isInteger(col) || !Number.isInteger(row) || col < 0 || row < 0 || col >= gridW || row >= gridH)
    throw new RangeError(`tile (${col}, ${row}) is outside the ${gridW}x${gridH} grid`);
  const before = Math.floor((size - 1) / 2);
  const c0 = col - before;
  const r0 = row - before;
  const colStart = Math.max(0, c0);
  const colEnd = Math.min(gridW, c0 + size);
  const rowStart = Math.max(0, r0);
  const rowEnd = Math.min(gridH, r0 + size);
  const cells: { col: number; row: number }[] = [];
  for (let r = rowStart; r < rowEnd; r++)
    for (let c = colStart; c < colEnd; c++) cells.push({ col: c, row: r });
  return { colStart, colEnd, rowStart, rowEnd, cells, centre: { x: c0 + size / 2, y: r0 + size / 2 } };
}

function checkPoint(p: GridPoint): void {
  if (!Number.isFinite(p.x) || !Number.isFinite(p.y))
    throw new LanemapError("ORDERING", `the point to order around must be finite, got (${p.x}, ${p.y})`);
}

/**
 * Returns the tiles in the given order, as a new array. Deterministic and independent of the input
 * order: every ordering breaks its remaining ties by tile id. Tiles need non-negative integer
 * col/row; ids should be unique.
 * @throws LanemapError ORDERING when a tile has no valid grid position or the point to order around is not finite.
 */
export function orderTiles<T extends GridTile>(tiles: readonly T[], ordering: Ordering): T[] {
  let maxSide = 1;
  for (const t of tiles) {
    if (!Number.isInteger(t.col) || !Number.isInteger(t.row) || t.col < 0 || t.row < 0)
      throw new LanemapError("ORDERING", `tile ${t.id} has no valid grid position (${t.col}, ${t.row})`);
    maxSide = Math.max(maxSide, t.col + 1, t.row + 1);
  }
  const byId = (a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

  if (ordering.kind === "random") {
    // Sort first so the shuffle's result depends on the seed and the tile set, not the input order.
    return createRandom(ordering.seed).shuffle([...tiles].sort(byId));
  }

  // Decorate with numeric keys once, then sort: keys are compared many times.
  const order = hilbertOrderFor(maxSide);
  const keyed = tiles.map((t) => ({ t, k1: 0, k2: 0 }));
  switch (ordering.kind) {
    case "natural":
      for (const e of keyed) {
        e.k1 = e.t.row;
        e.k2 = e.t.col;
      }
      break;
    case "hilbert":
      for (const e of keyed) e.k1 = hilbertIndex(order, e.t.col, e.t.row);
      break;
    case "distance": {
      checkPoint(ordering.around);
      const { x, y } = ordering.around;
      for (const e of keyed) {
        // Squared distance: same order, exact for the half-integer offsets that make ties.
        e.k1 = (e.t.col + 0.5 - x) ** 2 + (e.t.row + 0.5 - y) ** 2;
        e.k2 = hilbertIndex(order, e.t.col, e.t.row);
      }
      break;
    }
    case "hilbert-around": {
      checkPoint(ordering.around);
      const { x, y } = ordering.around;
      for (const e of keyed) {
        e.k1 = Math.max(Math.abs(e.t.col + 0.5 - x), Math.abs(e.t.row + 0.5 - y));
        e.k2 = hilbertIndex(order, e.t.col, e.t.row);
      }
      break;
    }
  }
  keyed.sort((a, b) => a.k1 - b.k1 || a.k2 - b.k2 || byId(a.t, b.t));
  return keyed.map((e) => e.t);
}

/**
 * Splits 0..n into `parts` contiguous half-open ranges [start, end) whose lengths differ by at most
 * one (the longer ones first): a Hilbert-ordered list split this way gives each worker a compact
 * region. Some ranges are empty when parts > n.
 * @throws RangeError when `n` or `parts` is not a valid count.
 */
export function splitRanges(n: number, parts: number): Array<[start: number, end: number]> {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(parts) || parts <= 0)
    throw new RangeError(`parts must be a positive integer, got ${parts}`);
  const base = Math.floor(n / parts);
  const extra = n % parts;
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const end = start + base + (i < extra ? 1 : 0);
    out.push([start, end]);
    start = end;
  }
  return out;
}

/**
 * How many tiles are processed, in `orderedIds` order, before every tile of the block is done: one
 * plus the latest position of a block tile (0 for an empty block). The figure of merit of an
 * ordering for an area of interest. Throws when a block tile is not in the order at all.
 * @throws LanemapError ORDERING when a block tile is not in the order.
 */
export function aoiCompletion(orderedIds: readonly string[], blockIds: Iterable<string>): number {
  const position = new Map<string, number>();
  orderedIds.forEach((id, i) => {
    if (!position.has(id)) position.set(id, i);
  });
  let done = 0;
  for (const id of blockIds) {
    const at = position.get(id);
    if (at === undefined) throw new LanemapError("ORDERING", `tile ${id} of the block is not in the order`);
    done = Math.max(done, at + 1);
  }
  return done;
}
