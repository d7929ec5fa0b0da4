/**
 * A uniform grid over WGS84 bounds: each item is filed under every bin its bounds touch, so a point
 * or box query looks at a few bins instead of every cell. Map cells are near-uniform tiles, which
 * is the case a uniform grid serves best; the bin size follows the median item size. A box across the
 * antimeridian (west > east) is filed, and searched, as its two halves either side of 180°.
 */
import { boxesIntersect, splitAtAntimeridian, type Bounds } from "../../shared/index.js";

/** Items spanning more bins than this go to a list every query scans (a bad or global footprint). */
const MAX_BINS_PER_ITEM = 4096;

/** Items filed by WGS84 bounds in uniform bins; `search` returns each intersecting item once. */
export class GridIndex<T> {
  private readonly items: readonly T[];
  private readonly boundsOf: readonly Bounds[];
  private readonly bins = new Map<number, number[]>();
  private readonly oversized: number[] = [];
  private readonly minX: number;
  private readonly minY: number;
  private readonly binW: number;
  private readonly binH: number;
  private readonly cols: number;
  private readonly rows: number;
  // Per-query visit marks, so an item filed in several bins is returned once.
  private readonly marks: Uint32Array;
  private stamp = 0;

  /** Indexes `items`; those whose bounds are null are left out. */
  constructor(items: readonly T[], bounds: (item: T) => Bounds | null) {
    const kept: T[] = [];
    const kb: Bounds[] = [];
    for (const it of items) {
      const b = bounds(it);
      if (b) {
        kept.push(it);
        kb.push(b);
      }
    }
    this.items = kept;
    this.boundsOf = kb;
    this.marks = new Uint32Array(kept.length);
    let minX = Infinity;
    let minY = Infinity;
    let maxX = -Infinity;
    let maxY = -Infinity;
    const ws: number[] = [];
    const hs: number[] = [];
    const parts = kb.map(splitAtAntimeridian);
    for (const b of parts.flat()) {
      minX = Math.min(minX, b.minX);
      minY = Math.min(minY, b.minY);
      maxX = Math.max(maxX, b.maxX);
      maxY = Math.max(maxY, b.maxY);
      ws.push(b.maxX - b.minX);
      hs.push(b.maxY - b.minY);
    }
    const med = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1] ?? 0;
    const spanX = Math.max(maxX - minX, 1e-9);
    const spanY = Math.max(maxY - minY, 1e-9);
    // One bin per median tile, but never more than ~1M bins whatever the data looks like.
    this.binW = Math.max(med(ws), spanX / 1024, 1e-9);
    this.binH = Math.max(med(hs), spanY / 1024, 1e-9);
    this.minX = kb.length ? minX : 0;
    this.minY = kb.length ? minY : 0;
    this.cols = Math.max(1, Math.ceil(spanX / this.binW) + 1);
    this.rows = Math.max(1, Math.ceil(spanY / this.binH) + 1);
    for (let i = 0; i < kb.length; i++) {
      const ranges = (parts[i] as Bounds[]).map((b) => this.binRange(b));
      const binCount = ranges.reduce((n, [c0, r0, c1, r1]) => n + (c1 - c0 + 1) * (r1 - r0 + 1), 0);
      if (binCount > MAX_BINS_PER_ITEM) {
        this.oversized.push(i);
        continue;
      }
      for (const [c0, r0, c1, r1] of ranges)
        for (let r = r0; r <= r1; r++)
          for (let c = c0; c <= c1; c++) {
            const key = r * this.cols + c;
            const list = this.bins.get(key);
            if (list) list.push(i);
            else this.bins.set(key, [i]);
          }
    }
  }

  /** Number of indexed items. */
  get size(): number {
    return this.items.length;
  }

  private clampCol(x: number): number {
    return Math.min(this.cols - 1, Math.max(0, Math.floor((x - this.minX) / this.binW)));
  }

  private clampRow(y: number): number {
    return Math.min(this.rows - 1, Math.max(0, Math.floor((y - this.minY) / this.binH)));
  }

  private binRange(b: Bounds): [number, number, number, number] {
    return [this.clampCol(b.minX), this.clampRow(b.minY), this.clampCol(b.maxX), this.clampRow(b.maxY)];
  }

  private nextStamp(): number {
    if (++this.stamp === 0xffffffff) {
      this.marks.fill(0);
      this.stamp = 1;
    }
    return this.stamp;
  }

  /**
   * Items whose bounds intersect `q` (closed intervals; either may cross the antimeridian), each
   * once, with their bounds.
   */
  search(q: Bounds, visit: (item: T, bounds: Bounds) => void): void {
    if (this.items.length === 0) return;
    const ranges = splitAtAntimeridian(q).map((p) => this.binRange(p));
    const binCount = ranges.reduce((n, [c0, r0, c1, r1]) => n + (c1 - c0 + 1) * (r1 - r0 + 1), 0);
    // A query over a large share of the bins is cheaper as one pass over the items.
    if (binCount * 4 >= this.cols * this.rows) {
      for (let i = 0; i < this.items.length; i++) {
        const b = this.boundsOf[i] as Bounds;
        if (boxesIntersect(b, q)) visit(this.items[i] as T, b);
      }
      return;
    }
    const stamp = this.nextStamp();
    const test = (i: number): void => {
      if (this.marks[i] === stamp) return;
      this.marks[i] = stamp;
      const b = this.boundsOf[i] as Bounds;
      if (boxesIntersect(b, q)) visit(this.items[i] as T, b);
    };
    for (const i of this.oversized) test(i);
    for (const [c0, r0, c1, r1] of ranges)
      for (let r = r0; r <= r1; r++)
        for (let c = c0; c <= c1; c++) {
          const list = this.bins.get(r * this.cols + c);
          if (list) for (const i of list) test(i);
        }
  }
}
