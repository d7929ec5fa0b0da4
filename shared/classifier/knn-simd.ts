/**
 * The host side of the WebAssembly SIMD k-NN kernel (knn-kernel.as): lays a built kd-tree out in
 * the module's memory and answers batches of queries there. Same answers as the JS kernel of
 * kdtree.ts, bit for bit (see knn-kernel.as for why); faster because two points (or two child
 * boxes) are measured per instruction, and steadier because a WebAssembly function is compiled
 * from fixed bytes rather than from whatever type feedback a process happened to gather.
 */
import { createOptimisable } from "../util/wasm-tier.js";
import { KNN_WASM_BASE64 } from "./knn-wasm.js";
import { mortonParameters } from "./order.js";

/** Queries answered per call into the module. V8 first runs a module from its baseline compile and
 * swaps in the optimised one between calls, never inside a running call: in chunks, a batch runs
 * almost entirely optimised however large it is. */
const CHUNK = 1024;
const PAGE = 65_536;
/** Buckets of one radix pass of the Morton sort (13 bits, as order.ts). */
const RADIX = 8192;

interface KernelExports {
  configure(
    dim: number,
    stride: number,
    coords: number,
    pairs: number,
    root: number,
    starts: number,
    ends: number,
    leafs: number,
    stackNode: number,
    stackBound: number,
    heapPos: number,
    heapDist: number,
    qv: number,
  ): void;
  neighbours(q: number, order: number, first: number, count: number, out: number, k: number): void;
  classify(
    q: number,
    order: number,
    first: number,
    count: number,
    k: number,
    labels: number,
    classTop: number,
    votes: number,
    classes: number,
    confidence: number,
  ): void;
  mortonKeys(
    q: number,
    count: number,
    lo: number,
    scale: number,
    cells: number,
    spreadLo: number,
    spreadHi: number,
    hiKey: number,
    loKey: number,
  ): void;
  radixOrder(count: number, hiKey: number, loKey: number, order: number, spare: number, counts: number): void;
}

/** The part of the WebAssembly JS API used here (the project's lib and @types/node 20 declare none). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Instance: new (module: object, imports: object) => { readonly exports: object };
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

/** The compiled module, or null where this runtime has no WebAssembly SIMD (compiled once per thread). */
function kernelModule(): object | null {
  if (compiled === undefined) {
    try {
      if (!wasm) throw new Error("no WebAssembly");
      const api = wasm;
      // The kernel must reach V8's optimising tier, whatever window the PROJ engine's start opened.
      compiled = createOptimisable(() => new api.Module(Buffer.from(KNN_WASM_BASE64, "base64")));
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** Whether the SIMD kernel can run in this thread. */
export function simdAvailable(): boolean {
  return kernelModule() !== null;
}

/** The arrays of a built tree that the search reads (see KdTree). */
export interface TreeArrays {
  size: number;
  dim: number;
  /** Coordinates in tree order, point-major. */
  coords: Float64Array;
  /** Per node, `dim` lower then `dim` upper bounds. */
  bounds: Float64Array;
  start: Int32Array;
  end: Int32Array;
  leaf: Uint8Array;
  /** Deepest stack a search can need. */
  stackDepth: number;
}

/** One tree laid out in one module instance's memory, for searches of a fixed k. */
export class SimdSearch {
  readonly k: number;
  private readonly dim: number;
  private readonly kernel: KernelExports;
  private readonly memory: WasmMemory;
  private readonly heapPosPtr: number;
  private readonly heapDistPtr: number;
  /** Start of the per-batch area (queries, order, answers), after the tree. */
  private readonly batchBase: number;
  private readonly size: number;

  /**
   * @param tree the tree's arrays (copied; the tree may keep its own)
   * @param k neighbours per query, 1..tree.size
   * @throws Error when this runtime has no WebAssembly SIMD (check `simdAvailable()` first)
   */
  constructor(tree: TreeArrays, k: number) {
    const module = kernelModule();
    if (!module) throw new Error("WebAssembly SIMD is not available in this runtime");
    const { size, dim, coords, bounds, start, end, leaf, stackDepth } = tree;
    const nodeCount = start.length;
    // Three spare positions: a leaf's last step of four may read past its end (the values unused).
    const stride = size + 3;
    let top = 16;
    const take = (bytes: number): number => {
      const at = top;
      top += Math.ceil(bytes / 16) * 16;
      return at;
    };
    const qv = take(dim * 16);
    const root = take(2 * dim * 8);
    const stackNode = take(stackDepth * 4);
    const stackBound = take(stackDepth * 8);
    const heapPos = take(k * 4);
    const heapDist = take(k * 8);
    const starts = take(nodeCount * 4);
    const ends = take(nodeCount * 4);
    const leafs = take(nodeCount * 4);
    const pairs = take(nodeCount * 2 * dim * 16);
    const coordsT = take(stride * dim * 8);
    const batchBase = top;
    const api = wasm as WasmApi;
    const memory = new api.Memory({ initial: Math.ceil(top / PAGE) });
    const buf = memory.buffer;

    new Float64Array(buf, root, 2 * dim).set(bounds.subarray(0, 2 * dim));
    new Int32Array(buf, starts, nodeCount).set(start);
    new Int32Array(buf, ends, nodeCount).set(end);
    new Int32Array(buf, leafs, nodeCount).set(leaf);
    // Children's boxes side by side, one f64x2 per bound: lane 0 the left child, lane 1 the right.
    const p = new Float64Array(buf, pairs, nodeCount * 4 * dim);
    for (let n = 0; 2 * n + 2 < nodeCount; n++) {
      if (leaf[n] === 1) continue;
      const l = (2 * n + 1) * 2 * dim;
      const r = (2 * n + 2) * 2 * dim;
      for (let j = 0; j < 2 * dim; j++) {
        p[n * 4 * dim + 2 * j] = bounds[l + j] as number;
        p[n * 4 * dim + 2 * j + 1] = bounds[r + j] as number;
      }
    }
    // Dimension-major, so one load reads coordinate j of two consecutive points.
    const c = new Float64Array(buf, coordsT, stride * dim);
    for (let i = 0; i < size; i++)
      for (let j = 0; j < dim; j++) c[j * stride + i] = coords[i * dim + j] as number;

    const instance = new api.Instance(module, { env: { memory } });
    this.kernel = instance.exports as unknown as KernelExports;
    this.kernel.configure(
      dim,
      stride,
      coordsT,
      pairs,
      root,
      starts,
      ends,
      leafs,
      stackNode,
      stackBound,
      heapPos,
      heapDist,
      qv,
    );
    this.k = k;
    this.dim = dim;
    this.memory = memory;
    this.batchBase = batchBase;
    this.size = size;
    this.heapPosPtr = heapPos;
    this.heapDistPtr = heapDist;
  }

  /**
   * Lays out a batch of `count` queries after the tree (growing the memory when needed) and copies
   * the queries and their order (if given) in; returns the byte offsets of the areas `more` asks for.
   */
  private batch(
    q: Float64Array,
    order: Int32Array | null,
    count: number,
    more: readonly number[],
  ): { q: number; order: number; more: number[] } {
    let top = this.batchBase;
    const take = (bytes: number): number => {
      const at = top;
      top += Math.ceil(bytes / 16) * 16;
      return at;
    };
    const qAt = take(count * this.dim * 8);
    const orderAt = take(count * 4);
    const areas = more.map(take);
    const missing = top - this.memory.buffer.byteLength;
    if (missing > 0) this.memory.grow(Math.ceil(missing / PAGE));
    const buf = this.memory.buffer;
    new Float64Array(buf, qAt, count * this.dim).set(q.subarray(0, count * this.dim));
    if (order) new Int32Array(buf, orderAt, count).set(order.subarray(0, count));
    return { q: qAt, order: orderAt, more: areas };
  }

  /** As `KdTree.knnBatch` (k = this.k): the neighbours of `count` queries, answered in `order`. */
  knnBatch(
    q: Float64Array,
    order: Int32Array,
    count: number,
    outPos: Int32Array,
    heapPos: Int32Array,
    heapDist: Float64Array,
  ): void {
    const k = this.k;
    const at = this.batch(q, order, count, [count * k * 4]);
    const out = at.more[0] as number;
    // In chunks: V8 swaps in the optimised compile of the module between calls, never inside one.
    for (let first = 0; first < count; first += CHUNK)
      this.kernel.neighbours(at.q, at.order, first, Math.min(CHUNK, count - first), out, k);
    const buf = this.memory.buffer;
    outPos.set(new Int32Array(buf, out, count * k));
    if (count > 0) {
      heapPos.set(new Int32Array(buf, this.heapPosPtr, k));
      heapDist.set(new Float64Array(buf, this.heapDistPtr, k));
    }
  }

  /**
   * As `KnnEngine.predict`: the majority class of the k nearest of each of `count` queries to
   * `classes[outOffset + i]`, the winner's share of the votes to `confidence`. Queries are answered
   * in `mortonOrder` over `extent`, computed in the module.
   * @param labels class id (1..classTop - 1) per tree position
   */
  classify(
    q: Float64Array,
    count: number,
    extent: Float64Array,
    labels: Uint8Array,
    classTop: number,
    classes: Uint8Array,
    confidence: Float32Array,
    outOffset: number,
  ): void {
    const k = this.k;
    const dim = this.dim;
    const m = mortonParameters(dim, extent);
    const at = this.batch(q, null, count, [
      this.size,
      classTop * 4,
      count,
      count * 4,
      dim * 8,
      dim * 8,
      m.spreadLo.length * 4,
      m.spreadHi.length * 4,
      count * 4,
      count * 4,
      count * 4,
      RADIX * 4,
    ]);
    const [
      labelsAt,
      votesAt,
      classesAt,
      confidenceAt,
      loAt,
      scaleAt,
      spreadLoAt,
      spreadHiAt,
      hiAt,
      lowAt,
      spareAt,
      countsAt,
    ] = at.more as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const buf = this.memory.buffer;
    new Uint8Array(buf, labelsAt, this.size).set(labels);
    new Float64Array(buf, loAt, dim).set(m.lo);
    new Float64Array(buf, scaleAt, dim).set(m.scale);
    new Int32Array(buf, spreadLoAt, m.spreadLo.length).set(m.spreadLo);
    new Int32Array(buf, spreadHiAt, m.spreadHi.length).set(m.spreadHi);
    const kernel = this.kernel;
    kernel.mortonKeys(at.q, count, loAt, scaleAt, m.cells, spreadLoAt, spreadHiAt, hiAt, lowAt);
    kernel.radixOrder(count, hiAt, lowAt, at.order, spareAt, countsAt);
    for (let first = 0; first < count; first += CHUNK)
      kernel.classify(
        at.q,
        at.order,
        first,
        Math.min(CHUNK, count - first),
        k,
        labelsAt,
        classTop,
        votesAt,
        classesAt,
        confidenceAt,
      );
    classes.set(new Uint8Array(buf, classesAt, count), outOffset);
    confidence.set(new Float32Array(buf, confidenceAt, count), outOffset);
  }

  /** `mortonOrder(q, count, dim, extent)` computed in the module (tests compare the two). */
  mortonOrder(q: Float64Array, count: number, extent: Float64Array): Int32Array {
    const m = mortonParameters(this.dim, extent);
    const at = this.batch(q, null, count, [
      this.dim * 8,
      this.dim * 8,
      m.spreadLo.length * 4,
      m.spreadHi.length * 4,
      count * 4,
      count * 4,
      count * 4,
      RADIX * 4,
    ]);
    const [loAt, scaleAt, spreadLoAt, spreadHiAt, hiAt, lowAt, spareAt, countsAt] = at.more as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const buf = this.memory.buffer;
    new Float64Array(buf, loAt, this.dim).set(m.lo);
    new Float64Array(buf, scaleAt, this.dim).set(m.scale);
    new Int32Array(buf, spreadLoAt, m.spreadLo.length).set(m.spreadLo);
    new Int32Array(buf, spreadHiAt, m.spreadHi.length).set(m.spreadHi);
    this.kernel.mortonKeys(at.q, count, loAt, scaleAt, m.cells, spreadLoAt, spreadHiAt, hiAt, lowAt);
    this.kernel.radixOrder(count, hiAt, lowAt, at.order, spareAt, countsAt);
    return new Int32Array(buf, at.order, count).slice();
  }
}
