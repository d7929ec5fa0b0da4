/**
 * k-nearest-neighbour voting over a kd-tree: Euclidean distance, uniform weights, the class with
 * the most votes wins and ties in votes go to the smallest class id (scikit-learn's
 * KNeighborsClassifier: `scipy.stats.mode` returns the smallest of the most frequent labels).
 */
import { KdTree, type KernelName } from "./kdtree.js";
import { mortonOrder } from "./order.js";

/** Class ids are 1..255 so a class raster is uint8 with 0 = not classified. */
export const MAX_CLASSES = 255;

/** A built k-NN index over scaled training samples. Immutable; `predict` reuses scratch buffers. */
export class KnnEngine {
  readonly dim: number;
  readonly k: number;
  /** Largest class id; ids run 1..classCount. */
  readonly classCount: number;
  readonly size: number;
  private readonly tree: KdTree;
  /** Class id of the training point at each tree position. */
  private readonly labels: Uint8Array;
  private readonly heapPos: Int32Array;
  private readonly heapDist: Float64Array;
  private readonly votes: Int32Array;
  /** Neighbours of the last batch, k tree positions per query; grown as batches need. */
  private found = new Int32Array(0);

  /**
   * @param x scaled training samples, point-major, `dim` per sample
   * @param y class id (1..255) of each sample
   * @param options.kernel the search that answers (see KernelName; default "simd"); every kernel
   *   gives the same answers, tests pin each one
   * @throws RangeError on inconsistent sizes, a bad k or a class id out of range
   */
  constructor(
    x: Float64Array,
    y: ArrayLike<number>,
    dim: number,
    k: number,
    options: { kernel?: KernelName } = {},
  ) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`dim must be a positive integer, got ${dim}`);
    if (x.length !== y.length * dim)
      throw new RangeError(`${x.length} values are not ${y.length} samples of ${dim} features`);
    if (!Number.isInteger(k) || k < 1 || k > y.length)
      throw new RangeError(`k must be an integer in 1..${y.length} (the number of samples), got ${k}`);
    let classCount = 0;
    for (let i = 0; i < y.length; i++) {
      const c = y[i] as number;
      if (!Number.isInteger(c) || c < 1 || c > MAX_CLASSES)
        throw new RangeError(`class id of sample ${i} must be an integer in 1..${MAX_CLASSES}, got ${c}`);
      if (c > classCount) classCount = c;
    }
    this.dim = dim;
    this.k = k;
    this.size = y.length;
    this.classCount = classCount;
    this.tree = new KdTree(x, dim, undefined, options.kernel ?? "simd");
    this.labels = new Uint8Array(y.length);
    for (let i = 0; i < y.length; i++) this.labels[i] = y[this.tree.order[i] as number] as number;
    this.heapPos = new Int32Array(k);
    this.heapDist = new Float64Array(k);
    this.votes = new Int32Array(classCount + 1);
  }

  /**
   * Votes for one query `q[qo .. qo + dim)`: returns the winning class id; `lastVotes()` then holds the
   * per-class vote counts (index = class id) until the next call.
   */
  predictOne(q: Float64Array, qo: number): number {
    this.tree.knn(q, qo, this.heapPos, this.heapDist);
    const votes = this.votes;
    votes.fill(0);
    const k = this.k;
    for (let i = 0; i < k; i++) {
      const c = this.labels[this.heapPos[i] as number] as number;
      votes[c] = (votes[c] as number) + 1;
    }
    let best = 1;
    let bestVotes = votes[1] as number;
    for (let c = 2; c < votes.length; c++)
      if ((votes[c] as number) > bestVotes) {
        best = c;
        bestVotes = votes[c] as number;
      }
    return best;
  }

  /** The search that answers this engine's queries ("simd" or "js"). */
  get kernelName(): string {
    return this.tree.kernelName;
  }

  /** Per-class votes of the last `predictOne` (index = class id; index 0 unused). */
  lastVotes(): Readonly<Int32Array> {
    return this.votes;
  }

  /**
   * Classifies `count` queries stored point-major in `q` from offset 0, writing the class id and
   * the winner's vote share to `classes[outOffset + i]` and `confidence[outOffset + i]`.
   *
   * Queries are answered in Morton order of their coordinates (see order.ts): neighbouring queries
   * then walk the same nodes while they are in cache and the branch predictor has learnt them
   * (measured 1.2-1.3x on random query orders). Each answer is independent of the order.
   */
  predict(
    q: Float64Array,
    count: number,
    classes: Uint8Array,
    confidence: Float32Array,
    outOffset = 0,
  ): void {
    const k = this.k;
    const simd = this.tree.simdFor(k);
    if (simd) {
      // Order, search and votes in the module: the same answers as the loops below, and none of
      // it depends on how far V8 has optimised JS in this process (a fresh process answered its
      // first batch 1.3-2x slower when the Morton sort ran in JS).
      simd.classify(
        q,
        count,
        this.tree.extent,
        this.labels,
        this.votes.length,
        classes,
        confidence,
        outOffset,
      );
      return;
    }
    const ordered = mortonOrder(q, count, this.dim, this.tree.extent);
    if (this.found.length < count * k) this.found = new Int32Array(count * k);
    const found = this.found;
    this.tree.knnBatch(q, ordered, count, found, this.heapPos, this.heapDist);
    // Votes in a loop of their own, after the search: see KdTree.knnBatch for why the search runs
    // as one call.
    const labels = this.labels;
    const votes = this.votes;
    const classTop = votes.length;
    for (let i = 0; i < count; i++) {
      votes.fill(0);
      for (let j = i * k, e = j + k; j < e; j++) {
        const c = labels[found[j] as number] as number;
        votes[c] = (votes[c] as number) + 1;
      }
      let best = 1;
      let bestVotes = votes[1] as number;
      for (let c = 2; c < classTop; c++)
        if ((votes[c] as number) > bestVotes) {
          best = c;
          bestVotes = votes[c] as number;
        }
      classes[outOffset + i] = best;
      confidence[outOffset + i] = bestVotes / k;
    }
  }

  /** The k nearest training samples of a query, as original sample indices (unsorted). */
  neighbours(q: Float64Array, qo: number): number[] {
    this.tree.knn(q, qo, this.heapPos, this.heapDist);
    return Array.from(this.heapPos, (p) => this.tree.order[p] as number);
  }
}
