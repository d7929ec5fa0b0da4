/**
 * A worker entry for the k-NN tests: builds an engine from `workerData` and posts back its kernel
 * name and the classes it predicts, so a test can check that the SIMD kernel loads in a thread.
 */
import { parentPort } from "node:worker_threads";
import { KnnEngine, workerPayload } from "../../shared/internal.js";

const { x, y, q, dim, k } = workerPayload<{
  x: Float64Array;
  y: Int32Array;
  q: Float64Array;
  dim: number;
  k: number;
}>();
const engine = new KnnEngine(x, y, dim, k);
const count = q.length / dim;
const classes = new Uint8Array(count);
engine.predict(q, count, classes, new Float32Array(count));
parentPort?.postMessage({ kernel: engine.kernelName, classes });
