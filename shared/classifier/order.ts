/**
 * A locality order for a batch of queries: Morton (Z-order) codes of their quantised coordinates,
 * sorted with an LSD radix sort. Queries that are close in feature space end up next to each other,
 * so consecutive kd-tree searches walk the same nodes and make the same branch decisions; on random
 * query orders that is worth about 1.5x. Pure, O(count · dim).
 */

/** Bits of a Morton code kept (two 26-bit halves; exact in a float64). */
const KEY_BITS = 52;
const RADIX_BITS = 13;
const RADIX = 1 << RADIX_BITS;

/** What a Morton key of `dim` coordinates is made of, for a given box (see `mortonOrder`). */
export interface MortonParameters {
  /** Cells per axis (2^bits). */
  cells: number;
  /** Per axis, the box's lower bound and cells per unit. */
  lo: Float64Array;
  scale: Float64Array;
  /** Per axis and cell (index j * cells + cell), the cell's bits at their key positions, in the
   * key's low and high 26-bit halves. */
  spreadLo: Int32Array;
  spreadHi: Int32Array;
}

/** The Morton key layout for `dim` coordinates over `extent` (lower bounds, then upper). */
export function mortonParameters(dim: number, extent: Float64Array): MortonParameters {
  const bits = Math.max(1, Math.min(8, Math.floor(KEY_BITS / dim)));
  const cells = 2 ** bits;
  const lo = new Float64Array(dim);
  const scale = new Float64Array(dim);
  for (let j = 0; j < dim; j++) {
    lo[j] = extent[j] as number;
    const range = (extent[dim + j] as number) - (extent[j] as number);
    scale[j] = range > 0 ? cells / range : 0;
  }
  // Each dimension's cell number spread to its key bits (bit b of dimension j lands on key bit
  // b * dim + dim - 1 - j), split into the key's two 26-bit halves: a key is then 2 * dim lookups
  // and ORs, not bits * dim float operations per query.
  const spreadLo = new Int32Array(dim * cells);
  const spreadHi = new Int32Array(dim * cells);
  for (let j = 0; j < dim; j++)
    for (let c = 0; c < cells; c++)
      for (let b = 0; b < bits; b++)
        if ((c >> b) & 1) {
          const at = b * dim + dim - 1 - j;
          if (at < 26) spreadLo[j * cells + c] = (spreadLo[j * cells + c] as number) | (1 << at);
          else spreadHi[j * cells + c] = (spreadHi[j * cells + c] as number) | (1 << (at - 26));
        }
  return { cells, lo, scale, spreadLo, spreadHi };
}

/**
 * The permutation that visits `count` queries (point-major in `q`, `dim` values each) in Morton
 * order over the box `extent` (lower bounds at 0..dim-1, upper at dim..2·dim-1; queries outside are
 * clamped to it). Stable: queries with equal codes keep their input order. The SIMD kernel
 * (knn-kernel.as) computes the same permutation in its own memory.
 */
export function mortonOrder(q: Float64Array, count: number, dim: number, extent: Float64Array): Int32Array {
  const { cells, lo, scale, spreadLo, spreadHi } = mortonParameters(dim, extent);
  const hiKey = new Int32Array(count);
  const loKey = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const o = i * dim;
    let high = 0;
    let low = 0;
    for (let j = 0; j < dim; j++) {
      const c = Math.floor(((q[o + j] as number) - (lo[j] as number)) * (scale[j] as number));
      // NaN (never for valid pixels) and out-of-range values land in the edge cells.
      const at = j * cells + (c >= 0 ? (c < cells ? c : cells - 1) : 0);
      high |= spreadHi[at] as number;
      low |= spreadLo[at] as number;
    }
    hiKey[i] = high;
    loKey[i] = low;
  }
  let order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  let spare = new Int32Array(count);
  const counts = new Int32Array(RADIX);
  // Four stable counting-sort passes, least significant 13 bits first.
  for (const [keys, shift] of [
    [loKey, 0],
    [loKey, RADIX_BITS],
    [hiKey, 0],
    [hiKey, RADIX_BITS],
  ] as const) {
    counts.fill(0);
    for (let i = 0; i < count; i++) {
      const r = ((keys[i] as number) >>> shift) & (RADIX - 1);
      counts[r] = (counts[r] as number) + 1;
    }
    let sum = 0;
    for (let r = 0; r < RADIX; r++) {
      const c = counts[r] as number;
      counts[r] = sum;
      sum += c;
    }
    for (let i = 0; i < count; i++) {
      const item = order[i] as number;
      const r = ((keys[item] as number) >>> shift) & (RADIX - 1);
      const at = counts[r] as number;
      counts[r] = at + 1;
      spare[at] = item;
    }
    [order, spare] = [spare, order];
  }
  return order;
}
