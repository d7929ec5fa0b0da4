/**
 * The host side of the WebAssembly SIMD k-NN kernel (knn-kernel.as): lays a built kd-tree out in
 * the module's memory and answers batches of queries there. Same answers as the JS kernel of
 * kdtree.ts, bit for bit (see knn-kernel.as for why); faster because two points (or two child
 * boxes) are measured per instruction, and steadier because a WebAssembly function is compiled
 * from fixed bytes rather than from whatever type feedback a process happened to gather.
 */
import { KNN_WASM_BASE64 } from "./knn-wasm.js";

/** Queries copied into the module per call: small enough for L1/L2, and V8 tiers the module up
 * from its baseline compiler to the optimising one between calls (never inside a running call),
 * so a batch of many chunks runs almost entirely in optimised code. */
const CHUNK = 1024;
const PAGE = 65_536;

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
  search(q: number, count: number, out: number, k: number): void;
}

/** The part of the WebAssembly JS API used here (the project's lib and @types/node 20 declare none). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
  Instance: new (module: object, imports: object) => { readonly exports: object };
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

/** The compiled module, or null where this runtime has no WebAssembly SIMD (compiled once per thread). */
function kernelModule(): object | null {
  if (compiled === undefined) {
    try {
      if (!wasm) throw new Error("no WebAssembly");
      compiled = new wasm.Module(Buffer.from(KNN_WASM_BASE64, "base64"));
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
  private readonly memory: { readonly buffer: ArrayBuffer };
  private readonly qPtr: number;
  private readonly outPtr: number;
  private readonly heapPosPtr: number;
  private readonly heapDistPtr: number;

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
    const qPtr = take(CHUNK * dim * 8);
    const outPtr = take(CHUNK * k * 4);
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
    this.qPtr = qPtr;
    this.outPtr = outPtr;
    this.heapPosPtr = heapPos;
    this.heapDistPtr = heapDist;
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
    const { dim, k, kernel } = this;
    const buf = this.memory.buffer;
    const chunkQ = new Float64Array(buf, this.qPtr, CHUNK * dim);
    const chunkOut = new Int32Array(buf, this.outPtr, CHUNK * k);
    for (let first = 0; first < count; first += CHUNK) {
      const m = Math.min(CHUNK, count - first);
      for (let t = 0; t < m; t++) {
        const src = (order[first + t] as number) * dim;
        for (let j = 0, dst = t * dim; j < dim; j++) chunkQ[dst + j] = q[src + j] as number;
      }
      kernel.search(this.qPtr, m, this.outPtr, k);
      for (let t = 0; t < m; t++) {
        const o = (order[first + t] as number) * k;
        for (let j = 0, src = t * k; j < k; j++) outPos[o + j] = chunkOut[src + j] as number;
      }
    }
    if (count > 0) {
      heapPos.set(new Int32Array(buf, this.heapPosPtr, k));
      heapDist.set(new Float64Array(buf, this.heapDistPtr, k));
    }
  }
}
