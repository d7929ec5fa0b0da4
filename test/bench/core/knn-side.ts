/**
 * One fresh process of the k-NN benchmark's lanemap side: reads a case written by knn-data.ts,
 * builds the engine, predicts the first tenth of the queries to warm up, then all of them `runs` times, and prints
 * one JSON line: build ms, per-run CPU seconds (user + system) and wall seconds. With `--out`, writes
 * the predicted class ids (i4) so the parent can compare them with scikit-learn's. `--kernel js`
 * measures the JS fallback kernel instead of the WebAssembly SIMD one (same answers).
 *
 * Usage: node --import tsx test/bench/core/knn-side.ts <dir> <name> <runs> [--out] [--kernel simd|js]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KnnEngine, type KernelName } from "../../../shared/internal.js";
import { DIM, K } from "./knn-data.js";

const [dir = ".", name = "", runsArg = "5", ...flags] = process.argv.slice(2);
const out = flags.includes("--out");
const kernel: KernelName =
  flags.includes("--kernel") && flags[flags.indexOf("--kernel") + 1] === "js" ? "js" : "simd";
const f64 = (file: string): Float64Array => new Float64Array(new Uint8Array(readFileSync(file)).buffer);
const x = f64(join(dir, `${name}.x.bin`));
const y = new Int32Array(new Uint8Array(readFileSync(join(dir, `${name}.y.bin`))).buffer);
const q = f64(join(dir, `${name}.q.bin`));
const count = q.length / DIM;

const t0 = performance.now();
const engine = new KnnEngine(x, y, DIM, K, { kernel });
const buildMs = performance.now() - t0;
const classes = new Uint8Array(count);
const confidence = new Float32Array(count);
engine.predict(q, Math.ceil(count / 10), classes, confidence);
const cpu: number[] = [];
const wall: number[] = [];
for (let r = 0; r < Number(runsArg); r++) {
  const w0 = performance.now();
  const c0 = process.cpuUsage();
  engine.predict(q, count, classes, confidence);
  const c = process.cpuUsage(c0);
  wall.push((performance.now() - w0) / 1000);
  cpu.push((c.user + c.system) / 1e6);
}
if (out) writeFileSync(join(dir, `${name}.lanemap.bin`), new Uint8Array(Int32Array.from(classes).buffer));
console.log(JSON.stringify({ buildMs, cpu, wall }));
