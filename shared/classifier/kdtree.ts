/**
 * A k-nearest-neighbour search over flat typed arrays: the classifier's hot path.
 *
 * The tree is built exactly as scikit-learn's `KDTree` (leaf_size 30) builds it: an implicit binary
 * tree of `2^levels - 1` nodes, each node split at the median of its widest dimension with
 * `std::nth_element` (libstdc++'s introselect, replayed step by step below, comparing by value and
 * then by index), with tight per-node bounding boxes. Queries visit nodes in scikit-learn's
 * depth-first order (nearer child first, the left one on a tie) and keep the k best in the same
 * bounded max-heap, which keeps the first-found of equidistant points. So when distances tie — and
 * with integer reflectances they often do — the k neighbours chosen here are the ones scikit-learn
 * chooses, and a peer's class raster can be matched pixel for pixel.
 *
 * The speed comes from what does not change the answer: points stored contiguously in tree order,
 * no per-query allocation or interpreter overhead, a node skipped as soon as its lower bound reaches
 * the k-th distance (every point in it would be rejected by the heap anyway), and a point's distance
 * abandoned once its partial sum reaches the k-th distance (squares only add).
 *
 * Two kernels run that search: by default a WebAssembly SIMD one (knn-kernel.as, laid out by
 * knn-simd.ts), which measures two points or two child boxes per instruction, and a JS one generated
 * per dimension (`searchKernel`), the fallback where WebAssembly SIMD is missing. Both are checked
 * against ml-knn and scikit-learn in the tests, and against each other on tie-heavy data.
 */

import { SimdSearch, simdAvailable } from "./knn-simd.js";

/** scikit-learn's default leaf size for KNeighborsClassifier. */
export const DEFAULT_LEAF_SIZE = 30;

/** floor(log2(n)) for n >= 1, as libstdc++'s std::__lg. */
function lg(n: number): number {
  return 31 - Math.clz32(n);
}

/**
 * Replays libstdc++'s `std::nth_element(first, nth, last, comp)` on `idx` (the same comparisons and
 * swaps, so the same final order), with comp(a, b) = value(a) < value(b), ties by index, where
 * value(i) = data[i * dim + axis].
 */
function nthElement(
  idx: Int32Array,
  first: number,
  nth: number,
  last: number,
  data: Float64Array,
  dim: number,
  axis: number,
): void {
  const less = (a: number, b: number): boolean => {
    const va = data[a * dim + axis] as number;
    const vb = data[b * dim + axis] as number;
    return va === vb ? a < b : va < vb;
  };
  const at = (i: number): number => idx[i] as number;
  const swap = (i: number, j: number): void => {
    const t = idx[i] as number;
    idx[i] = idx[j] as number;
    idx[j] = t;
  };

  const adjustHeap = (base: number, hole: number, len: number, value: number): void => {
    const top = hole;
    let second = hole;
    while (second < (len - 1) >> 1) {
      second = 2 * (second + 1);
      if (less(at(base + second), at(base + second - 1))) second--;
      idx[base + hole] = at(base + second);
      hole = second;
    }
    if ((len & 1) === 0 && second === (len - 2) >> 1) {
      second = 2 * (second + 1);
      idx[base + hole] = at(base + second - 1);
      hole = second - 1;
    }
    // __push_heap
    let parent = (hole - 1) >> 1;
    while (hole > top && less(at(base + parent), value)) {
      idx[base + hole] = at(base + parent);
      hole = parent;
      parent = (hole - 1) >> 1;
    }
    idx[base + hole] = value;
  };

  const heapSelect = (lo: number, middle: number, hi: number): void => {
    const len = middle - lo;
    if (len >= 2) {
      let parent = (len - 2) >> 1;
      for (;;) {
        adjustHeap(lo, parent, len, at(lo + parent));
        if (parent === 0) break;
        parent--;
      }
    }
    for (let i = middle; i < hi; i++)
      if (less(at(i), at(lo))) {
        // __pop_heap(lo, middle, i)
        const value = at(i);
        idx[i] = at(lo);
        adjustHeap(lo, 0, len, value);
      }
  };

  const insertionSort = (lo: number, hi: number): void => {
    if (lo === hi) return;
    for (let i = lo + 1; i < hi; i++) {
      const val = at(i);
      if (less(val, at(lo))) {
        idx.copyWithin(lo + 1, lo, i);
        idx[lo] = val;
      } else {
        let j = i;
        while (less(val, at(j - 1))) {
          idx[j] = at(j - 1);
          j--;
        }
        idx[j] = val;
      }
    }
  };

  if (first === last || nth === last) return;
  let depth = lg(last - first) * 2;
  while (last - first > 3) {
    if (depth === 0) {
      heapSelect(first, nth + 1, last);
      swap(first, nth);
      return;
    }
    depth--;
    // __unguarded_partition_pivot: median of (first+1, mid, last-1) moved to first, then partition.
    const mid = first + ((last - first) >> 1);
    const a = first + 1;
    const c = last - 1;
    if (less(at(a), at(mid))) {
      if (less(at(mid), at(c))) swap(first, mid);
      else if (less(at(a), at(c))) swap(first, c);
      else swap(first, a);
    } else if (less(at(a), at(c))) swap(first, a);
    else if (less(at(mid), at(c))) swap(first, c);
    else swap(first, mid);
    let lo = first + 1;
    let hi = last;
    const pivot = at(first);
    for (;;) {
      while (less(at(lo), pivot)) lo++;
      hi--;
      while (less(pivot, at(hi))) hi--;
      if (!(lo < hi)) break;
      swap(lo, hi);
      lo++;
    }
    if (lo <= nth) first = lo;
    else last = lo;
  }
  insertionSort(first, last);
}

/**
 * Which search answers a tree's queries; both give the same neighbours, bit for bit.
 * - "simd": the WebAssembly SIMD kernel (knn-kernel.as), or "js" where the runtime lacks
 *   WebAssembly SIMD;
 * - "js": the search generated as JavaScript for the tree's dimension (the fallback, and the
 *   kernel tests compare with ml-knn besides the SIMD one).
 */
export type KernelName = "simd" | "js";

/** An immutable kd-tree over `size` points of `dim` coordinates. Build once, query many times. */
export class KdTree {
  readonly size: number;
  readonly dim: number;
  readonly leafSize: number;
  /** Original index of the point at each tree position (scikit-learn's idx_array). */
  readonly order: Int32Array;
  /** Coordinates in tree order, so a leaf's points are contiguous. */
  private readonly coords: Float64Array;
  private readonly start: Int32Array;
  private readonly end: Int32Array;
  private readonly leaf: Uint8Array;
  /** Per node, `dim` lower then `dim` upper bounds. */
  private readonly bounds: Float64Array;
  private readonly stackNode: Int32Array;
  private readonly stackBound: Float64Array;
  private readonly search: SearchKernel;
  /** The SIMD search, made for the k of the first batch (and remade if k changes); null = JS. */
  private simd: SimdSearch | null = null;
  private readonly useSimd: boolean;
  /** The search that answers: "simd", "js", or "custom" (a kernel passed in). */
  readonly kernelName: KernelName | "custom";

  /**
   * Builds the tree. `points` holds `size * dim` coordinates, point-major; it is not kept.
   * `kernel` names the search (see KernelName; default "simd") or replaces it (tests pass
   * `referenceKernel(dim)`).
   * @throws RangeError on an empty set, a ragged array or non-finite coordinates.
   */
  constructor(
    points: Float64Array,
    dim: number,
    leafSize = DEFAULT_LEAF_SIZE,
    kernel: SearchKernel | KernelName = "simd",
  ) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`dim must be a positive integer, got ${dim}`);
    if (!Number.isInteger(leafSize) || leafSize < 1)
      throw new RangeError(`leafSize must be a positive integer, got ${leafSize}`);
    if (points.length === 0 || points.length % dim !== 0)
      throw new RangeError(`${points.length} coordinates do not make whole points of ${dim}`);
    for (let i = 0; i < points.length; i++)
      if (!Number.isFinite(points[i])) throw new RangeError(`coordinate ${i} is not finite`);
    const size = points.length / dim;
    this.size = size;
    this.dim = dim;
    this.leafSize = leafSize;
    const levels = Math.trunc(Math.log2(Math.max(1, (size - 1) / leafSize))) + 1;
    const nodeCount = 2 ** levels - 1;
    this.start = new Int32Array(nodeCount);
    this.end = new Int32Array(nodeCount);
    this.leaf = new Uint8Array(nodeCount);
    this.bounds = new Float64Array(nodeCount * 2 * dim);
    const order = new Int32Array(size);
    for (let i = 0; i < size; i++) order[i] = i;
    this.order = order;

    // Iterative pre-order build; node i covers [start, end) of `order`.
    const todo: number[] = [0, 0, size];
    while (todo.length > 0) {
      const hi = todo.pop() as number;
      const lo = todo.pop() as number;
      const node = todo.pop() as number;
      this.start[node] = lo;
      this.end[node] = hi;
      const b = node * 2 * dim;
      for (let j = 0; j < dim; j++) {
        this.bounds[b + j] = Infinity;
        this.bounds[b + dim + j] = -Infinity;
      }
      for (let i = lo; i < hi; i++) {
        const p = (order[i] as number) * dim;
        for (let j = 0; j < dim; j++) {
          const v = points[p + j] as number;
          if (v < (this.bounds[b + j] as number)) this.bounds[b + j] = v;
          if (v > (this.bounds[b + dim + j] as number)) this.bounds[b + dim + j] = v;
        }
      }
      if (2 * node + 1 >= nodeCount || hi - lo < 2) {
        this.leaf[node] = 1;
        continue;
      }
      // Widest dimension; the first on a tie, and dimension 0 when all spreads are 0.
      let axis = 0;
      let spread = 0;
      for (let j = 0; j < dim; j++) {
        const s = (this.bounds[b + dim + j] as number) - (this.bounds[b + j] as number);
        if (s > spread) {
          spread = s;
          axis = j;
        }
      }
      const mid = lo + ((hi - lo) >> 1);
      nthElement(order, lo, mid, hi, points, dim, axis);
      // Pushed right first so the left child is built first, as in scikit-learn's recursion.
      todo.push(2 * node + 2, mid, hi, 2 * node + 1, lo, mid);
    }

    this.coords = new Float64Array(size * dim);
    for (let i = 0; i < size; i++)
      this.coords.set(points.subarray((order[i] as number) * dim, ((order[i] as number) + 1) * dim), i * dim);
    this.stackNode = new Int32Array(levels + 2);
    this.stackBound = new Float64Array(levels + 2);
    this.search = typeof kernel === "function" ? kernel : searchKernel(dim);
    this.useSimd = kernel === "simd" && simdAvailable();
    this.kernelName = typeof kernel === "function" ? "custom" : this.useSimd ? "simd" : "js";
  }

  /**
   * The SIMD search for k neighbours, or null when this tree answers in JS (kernelName). Made on
   * first use and kept; a different k makes a new one.
   */
  simdFor(k: number): SimdSearch | null {
    if (!this.useSimd) return null;
    if (this.simd?.k !== k)
      this.simd = new SimdSearch(
        {
          size: this.size,
          dim: this.dim,
          coords: this.coords,
          bounds: this.bounds,
          start: this.start,
          end: this.end,
          leaf: this.leaf,
          stackDepth: this.stackNode.length,
        },
        k,
      );
    return this.simd;
  }

  /** Coordinates in tree order (`dim` per point), read-only by contract. */
  get coordinates(): Float64Array {
    return this.coords;
  }

  /** Lower (`j`) and upper (`dim + j`) bounds of all training points: the root node's box. */
  get extent(): Float64Array {
    return this.bounds.subarray(0, 2 * this.dim);
  }

  /**
   * The k nearest points to the query `q[qo .. qo + dim)`: on return `heapPos` holds their tree
   * positions (see `order`) and `heapDist` their squared distances, as an unsorted max-heap.
   * Both arrays must have length k; k must not exceed `size`.
   */
  knn(q: Float64Array, qo: number, heapPos: Int32Array, heapDist: Float64Array): void {
    this.knnBatch(q.subarray(qo, qo + this.dim), ONE, 1, heapPos, heapPos, heapDist);
  }

  /**
   * The k nearest points of `count` queries (point-major in `q` from offset 0), answered in the
   * order `order[0 .. count)` (query indices): on return `outPos[i * k .. i * k + k)` holds the tree
   * positions of query i's neighbours (see `order`), as `knn` would return them. `heapPos` and
   * `heapDist` (length k, which must not exceed `size`) are scratch; after the call they hold the
   * heap of the last query answered.
   *
   * One call for a whole batch because the search is then one function with its own loops, which V8
   * compiles once and the same way in every process; a per-query call from an outer loop was inlined
   * into that loop or not depending on when the background compiler ran, and the same build ran
   * 1.6x slower in one fresh process than in the next.
   */
  knnBatch(
    q: Float64Array,
    order: Int32Array,
    count: number,
    outPos: Int32Array,
    heapPos: Int32Array,
    heapDist: Float64Array,
  ): void {
    const simd = this.simdFor(heapDist.length);
    if (simd) {
      simd.knnBatch(q, order, count, outPos, heapPos, heapDist);
      return;
    }
    this.search(
      q,
      order,
      count,
      outPos,
      heapPos,
      heapDist,
      this.coords,
      this.bounds,
      this.start,
      this.end,
      this.leaf,
      this.stackNode,
      this.stackBound,
    );
  }
}

/** The one-query order `knn` passes to the batch search. */
const ONE = new Int32Array(1);

/** A batch of k-NN searches over a tree's arrays (see `KdTree.knnBatch`). */
export type SearchKernel = (
  q: Float64Array,
  order: Int32Array,
  count: number,
  outPos: Int32Array,
  heapPos: Int32Array,
  heapDist: Float64Array,
  coords: Float64Array,
  bounds: Float64Array,
  start: Int32Array,
  end: Int32Array,
  leaf: Uint8Array,
  stackNode: Int32Array,
  stackBound: Float64Array,
) => void;

const kernels = new Map<number, SearchKernel>();

/**
 * The search loop specialised for one dimension, generated once per dimension and cached.
 *
 * Why generated: a distance loop over a run-time `dim` costs 2-4x more per point in V8 than the same
 * arithmetic written out (the loop, bounds checks and reloads of the query dominate at d = 7..12),
 * and the leaf scan is where the search spends its time. The generated source depends only on the
 * integer `dim`, never on data. The arithmetic is written in scikit-learn's order: the squared
 * distance is summed left to right over dimensions (((t0*t0 + t1*t1) + t2*t2) + ...), exactly as its
 * `euclidean_rdist` loop does, so distances — and their ties — are bit-identical.
 *
 * Two shortcuts that cannot change an answer: a point's sum is checked against the k-th distance
 * after the first half of the dimensions (squares only add, and a rounded sum of non-negative terms
 * never decreases, so a partial sum that reaches it means the whole one does); and a box's per-axis
 * gap is found with two comparisons instead of a three-way Math.max (it picks the same value), which
 * V8 compiles to cheaper code in the inner loop.
 */
function searchKernel(dim: number): SearchKernel {
  const cached = kernels.get(dim);
  if (cached) return cached;
  const js: string[] = [];
  const dims = Array.from({ length: dim }, (_, j) => j);
  const sum = (term: (j: number) => string): string => dims.map(term).join(" + ");
  // Lower bound of the squared distance to node n's box: per dimension max(lo - x, x - hi, 0)^2,
  // which is what scikit-learn's min_rdist computes as (0.5 * (d_lo + |d_lo| + d_hi + |d_hi|))^2.
  const bound = (n: string, out: string): void => {
    js.push(`{ const b = ${n} * ${2 * dim};`);
    for (const j of dims)
      js.push(
        `let m${j} = bounds[b + ${j}] - q${j};`,
        `if (!(m${j} > 0)) { m${j} = q${j} - bounds[b + ${dim + j}]; if (!(m${j} > 0)) m${j} = 0; }`,
      );
    js.push(`${out} = ${sum((j) => `m${j} * m${j}`)}; }`);
  };
  js.push("const k = heapDist.length;");
  js.push("for (let qn = 0; qn < count; qn++) {");
  js.push(`const qi = order[qn]; const qo = qi * ${dim};`);
  for (const j of dims) js.push(`const q${j} = q[qo + ${j}];`);
  js.push("heapDist.fill(Infinity); heapPos.fill(0);");
  js.push("let top = 0; stackNode[0] = 0; let rootBound = 0;");
  bound("0", "rootBound");
  js.push("stackBound[0] = rootBound;");
  js.push("while (top >= 0) {");
  js.push("const node = stackNode[top]; const nodeBound = stackBound[top]; top--;");
  // scikit-learn prunes on `bound > worst` and would visit a node whose bound equals the worst
  // distance, but its heap then rejects every point there (`dist >= worst`): pruning on >= is the same.
  js.push("let worst = heapDist[0];");
  js.push("if (nodeBound >= worst) continue;");
  js.push("if (leaf[node] === 1) {");
  js.push(`for (let i = start[node], hi = end[node], base = i * ${dim}; i < hi; i++, base += ${dim}) {`);
  const head = dims.slice(0, Math.ceil(dim / 2));
  const tail = dims.slice(head.length);
  for (const j of head) js.push(`const t${j} = q${j} - coords[base + ${j}];`);
  js.push(`let s = ${head.map((j) => `t${j} * t${j}`).join(" + ")};`);
  if (tail.length > 0) {
    js.push("if (s >= worst) continue;");
    for (const j of tail) js.push(`const t${j} = q${j} - coords[base + ${j}];`, `s = s + t${j} * t${j};`);
  }
  js.push("if (s >= worst) continue;");
  // NeighborsHeap._push, step for step: which of several equal distances is evicted matters.
  js.push("let h = 0;");
  js.push("for (;;) {");
  js.push("const c1 = 2 * h + 1; const c2 = c1 + 1; let sw = 0;");
  js.push("if (c1 >= k) break;");
  js.push("else if (c2 >= k) { if (heapDist[c1] > s) sw = c1; else break; }");
  js.push("else if (heapDist[c1] >= heapDist[c2]) { if (s < heapDist[c1]) sw = c1; else break; }");
  js.push("else if (s < heapDist[c2]) sw = c2; else break;");
  js.push("heapDist[h] = heapDist[sw]; heapPos[h] = heapPos[sw]; h = sw;");
  js.push("}");
  js.push("heapDist[h] = s; heapPos[h] = i; worst = heapDist[0];");
  js.push("}");
  js.push("} else {");
  js.push("const c1 = 2 * node + 1; const c2 = c1 + 1; let b1 = 0; let b2 = 0;");
  bound("c1", "b1");
  bound("c2", "b2");
  // Nearer child on top of the stack so it is searched first; the left one on a tie. A child whose
  // bound already reaches the worst distance would be pruned when popped, so it is not pushed.
  js.push("if (b1 <= b2) {");
  js.push("if (b2 < worst) { stackNode[++top] = c2; stackBound[top] = b2; }");
  js.push("if (b1 < worst) { stackNode[++top] = c1; stackBound[top] = b1; }");
  js.push("} else {");
  js.push("if (b1 < worst) { stackNode[++top] = c1; stackBound[top] = b1; }");
  js.push("if (b2 < worst) { stackNode[++top] = c2; stackBound[top] = b2; }");
  js.push("}");
  js.push("}");
  js.push("}");
  js.push("for (let j = 0, o = qi * k; j < k; j++) outPos[o + j] = heapPos[j];");
  js.push("}");
  let kernel: SearchKernel;
  try {
    kernel = new Function(
      "q",
      "order",
      "count",
      "outPos",
      "heapPos",
      "heapDist",
      "coords",
      "bounds",
      "start",
      "end",
      "leaf",
      "stackNode",
      "stackBound",
      js.join("\n"),
    ) as SearchKernel;
  } catch {
    // Code generation is disabled (node --disallow-code-generation-from-strings): same answers, slower.
    kernel = referenceKernel(dim);
  }
  kernels.set(dim, kernel);
  return kernel;
}

/**
 * The search written as plain loops over `dim`: the readable form of what `searchKernel` generates,
 * its fallback where code generation is disallowed, and the yardstick its tests compare against.
 * Every comparison and every sum is the generated kernel's, in the same order.
 */
export function referenceKernel(dim: number): SearchKernel {
  const bound = (bounds: Float64Array, node: number, q: Float64Array, qo: number): number => {
    const b = node * 2 * dim;
    let r = 0;
    for (let j = 0; j < dim; j++) {
      const x = q[qo + j] as number;
      const m = Math.max((bounds[b + j] as number) - x, x - (bounds[b + dim + j] as number), 0);
      r += m * m;
    }
    return r;
  };
  const one = (
    q: Float64Array,
    qo: number,
    heapPos: Int32Array,
    heapDist: Float64Array,
    coords: Float64Array,
    bounds: Float64Array,
    start: Int32Array,
    end: Int32Array,
    leaf: Uint8Array,
    stackNode: Int32Array,
    stackBound: Float64Array,
  ): void => {
    const k = heapDist.length;
    heapDist.fill(Infinity);
    heapPos.fill(0);
    let top = 0;
    stackNode[0] = 0;
    stackBound[0] = bound(bounds, 0, q, qo);
    while (top >= 0) {
      const node = stackNode[top] as number;
      const nodeBound = stackBound[top] as number;
      top--;
      let worst = heapDist[0] as number;
      if (nodeBound >= worst) continue;
      if (leaf[node] === 1) {
        for (let i = start[node] as number, hi = end[node] as number; i < hi; i++) {
          let s = 0;
          for (let j = 0; j < dim; j++) {
            const t = (q[qo + j] as number) - (coords[i * dim + j] as number);
            s += t * t;
          }
          if (s >= worst) continue;
          let h = 0;
          for (;;) {
            const c1 = 2 * h + 1;
            const c2 = c1 + 1;
            let sw: number;
            if (c1 >= k) break;
            else if (c2 >= k) {
              if ((heapDist[c1] as number) > s) sw = c1;
              else break;
            } else if ((heapDist[c1] as number) >= (heapDist[c2] as number)) {
              if (s < (heapDist[c1] as number)) sw = c1;
              else break;
            } else if (s < (heapDist[c2] as number)) sw = c2;
            else break;
            heapDist[h] = heapDist[sw] as number;
            heapPos[h] = heapPos[sw] as number;
            h = sw;
          }
          heapDist[h] = s;
          heapPos[h] = i;
          worst = heapDist[0] as number;
        }
      } else {
        const c1 = 2 * node + 1;
        const c2 = c1 + 1;
        const b1 = bound(bounds, c1, q, qo);
        const b2 = bound(bounds, c2, q, qo);
        const [near, nearBound, far, farBound] = b1 <= b2 ? [c1, b1, c2, b2] : [c2, b2, c1, b1];
        if (farBound < worst) {
          stackNode[++top] = far;
          stackBound[top] = farBound;
        }
        if (nearBound < worst) {
          stackNode[++top] = near;
          stackBound[top] = nearBound;
        }
      }
    }
  };
  return (
    q,
    order,
    count,
    outPos,
    heapPos,
    heapDist,
    coords,
    bounds,
    start,
    end,
    leaf,
    stackNode,
    stackBound,
  ) => {
    const k = heapDist.length;
    for (let n = 0; n < count; n++) {
      const qi = order[n] as number;
      one(q, qi * dim, heapPos, heapDist, coords, bounds, start, end, leaf, stackNode, stackBound);
      for (let j = 0; j < k; j++) outPos[qi * k + j] = heapPos[j] as number;
    }
  };
}
