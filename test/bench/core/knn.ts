/**
 * k-NN prediction throughput: lanemap's kd-tree engine against scikit-learn's KNeighborsClassifier
 * (algorithm="kd_tree", n_jobs=1, run by Debian's python3 in the same run on the same data) and
 * ml-knn (the package lanemap's first prototype used, now the test oracle), single thread each.
 *
 * Data: spectral-like features of 5 land-cover classes, d = 7 (6 reflectance bands + NDVI), z-scored
 * with the training mean/std as the classifier does. Each class is a mean spectrum scaled by an
 * illumination factor plus per-band noise, so classes are elongated and overlap like real ones.
 * A second, harder set is an isotropic 5-component Gaussian mixture (no correlation for a kd-tree to
 * exploit). Training sets of N = 1k, 5k, 20k samples; 100k distinct query points (so a cache of
 * repeated vectors could not help: these are uncached rates). Only prediction is timed (Python times
 * `predict` alone); building the index is reported separately. Rates are per CPU second of the
 * process (user + system), scikit-learn measured right before lanemap case by case, because the
 * machine this runs on is shared; wall-clock rates are kept in the results file.
 *
 * Run alone: node --import tsx test/bench/core/knn.ts
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { KnnEngine, createRandom, type Random } from "../../../shared/internal.js";
import { hasPeerPython } from "../../helpers/env.js";
import { median, printTable, writeResults, type Table } from "../harness.js";

const DIM = 7;
const K = 5;
const QUERIES = 100_000;
const SIZES = [1_000, 5_000, 20_000] as const;
/** ml-knn visits every node (see README): give it this much time per size, at least 20 queries. */
const ML_KNN_BUDGET_MS = 2_500;

interface MlKnn {
  predict(dataset: number[][]): number[];
}
type MlKnnConstructor = new (dataset: number[][], labels: number[], options: { k: number }) => MlKnn;
const MlKnnClass = createRequire(import.meta.url)("ml-knn") as MlKnnConstructor;

/** Mean reflectance of bands 1,2,3,4,5,7 for water, forest, crop, urban, bare soil (Landsat-like). */
const SPECTRA = [
  [0.06, 0.05, 0.035, 0.02, 0.012, 0.008],
  [0.03, 0.05, 0.03, 0.32, 0.15, 0.06],
  [0.05, 0.08, 0.07, 0.4, 0.26, 0.13],
  [0.1, 0.11, 0.12, 0.17, 0.21, 0.19],
  [0.12, 0.15, 0.2, 0.27, 0.34, 0.3],
] as const;
/** Uneven class priors, as in real scenes. */
const PRIORS = [0.1, 0.35, 0.3, 0.1, 0.15] as const;

function pickClass(rng: Random): number {
  let u = rng.next();
  for (let c = 0; c < PRIORS.length; c++) {
    u -= PRIORS[c] as number;
    if (u < 0) return c;
  }
  return PRIORS.length - 1;
}

/** `n` spectral samples (raw, unscaled) and their class ids 1..5. */
function spectralSamples(n: number, rng: Random): { x: Float64Array; y: Int32Array } {
  const x = new Float64Array(n * DIM);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = pickClass(rng);
    const mean = SPECTRA[c] as readonly number[];
    // Illumination and moisture scale a whole spectrum: the dominant, correlated variation.
    const g = 1 + 0.18 * rng.normal();
    for (let b = 0; b < 6; b++)
      x[i * DIM + b] = Math.max(
        0.001,
        (mean[b] as number) * g + (0.004 + 0.06 * (mean[b] as number)) * rng.normal(),
      );
    const red = x[i * DIM + 2] as number;
    const nir = x[i * DIM + 3] as number;
    x[i * DIM + 6] = (nir - red) / (nir + red);
    y[i] = c + 1;
  }
  return { x, y };
}

/** An isotropic Gaussian mixture: 5 unit-variance components with N(0, 3^2) centres. */
function isotropicSamples(n: number, rng: Random, centres: Float64Array): { x: Float64Array; y: Int32Array } {
  const x = new Float64Array(n * DIM);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = pickClass(rng);
    for (let j = 0; j < DIM; j++) x[i * DIM + j] = (centres[c * DIM + j] as number) + rng.normal();
    y[i] = c + 1;
  }
  return { x, y };
}

/** z-scores `x` in place with the mean and population std of `train`. */
function zScore(train: Float64Array, ...sets: Float64Array[]): void {
  const n = train.length / DIM;
  for (let j = 0; j < DIM; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += train[i * DIM + j] as number;
    const mean = s / n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += ((train[i * DIM + j] as number) - mean) ** 2;
    const std = Math.sqrt(ss / n) || 1;
    for (const set of [train, ...sets])
      for (let i = j; i < set.length; i += DIM) set[i] = ((set[i] as number) - mean) / std;
  }
}

/** Fits and times `predict` for one case; prints fit and predict times, wall and CPU (medians). */
const PYTHON = String.raw`
import json, sys, time
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
d, name, dim, k, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
x = np.fromfile(d + "/" + name + ".x.bin", dtype="<f8").reshape(-1, dim)
y = np.fromfile(d + "/" + name + ".y.bin", dtype="<i4")
q = np.fromfile(d + "/" + name + ".q.bin", dtype="<f8").reshape(-1, dim)
t0 = time.perf_counter()
model = KNeighborsClassifier(n_neighbors=k, algorithm="kd_tree", n_jobs=1).fit(x, y)
fit = time.perf_counter() - t0
wall, cpu = [], []
for _ in range(runs):
    t0, c0 = time.perf_counter(), time.process_time()
    pred = model.predict(q)
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
pred.astype("<i4").tofile(d + "/" + name + ".sk.bin")
mid = len(cpu) // 2
print(json.dumps({"fit_s": fit, "predict_s": sorted(wall)[mid], "predict_cpu_s": sorted(cpu)[mid]}))
`;

/** scikit-learn's timing of one case, or the reason there is none. */
interface SklearnTiming {
  fit_s: number;
  predict_s: number;
  predict_cpu_s: number;
}

function sklearnCase(dir: string, name: string, runs: number): SklearnTiming | string {
  if (!hasPeerPython()) return "scikit-learn is absent (/usr/bin/python3 with sklearn): its column is empty";
  const r = spawnSync("/usr/bin/python3", ["-c", PYTHON, dir, name, String(DIM), String(K), String(runs)], {
    encoding: "utf8",
  });
  if (r.status !== 0) return `scikit-learn run failed: ${r.stderr.trim().split("\n").pop() ?? ""}`;
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as SklearnTiming;
}

interface CaseResult {
  data: string;
  n: number;
  lanemapBuildMs: number;
  lanemapPerS: number;
  sklearnPerS: number | null;
  lanemapWallPerS: number;
  sklearnWallPerS: number | null;
  sklearnFitMs: number | null;
  mlKnnPerS: number | null;
  mlKnnQueries: number;
  agreementWithSklearn: number | null;
}

/**
 * Median wall-clock and CPU milliseconds (user + system) of `fn` over `runs` runs, after one warm-up
 * run. CPU time leaves out whatever else a shared machine is doing.
 */
async function timeBoth(fn: () => unknown, runs: number): Promise<{ wallMs: number; cpuMs: number }> {
  await fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await fn();
    const c = process.cpuUsage(c0);
    wall.push(performance.now() - t0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wallMs: median(wall), cpuMs: median(cpu) };
}

/** Runs the benchmark and returns its table and raw results. */
export async function runKnnBench(): Promise<{ table: Table; results: unknown }> {
  const rng = createRandom("bench-knn");
  const dir = mkdtempSync(join(tmpdir(), "lanemap-knn-bench-"));
  try {
    const centres = new Float64Array(5 * DIM);
    for (let i = 0; i < centres.length; i++) centres[i] = 3 * rng.normal();
    const datasets = [
      { data: "spectral", make: (n: number) => spectralSamples(n, rng) },
      { data: "isotropic", make: (n: number) => isotropicSamples(n, rng, centres) },
    ];
    interface Case {
      name: string;
      data: string;
      n: number;
      x: Float64Array;
      y: Int32Array;
      q: Float64Array;
    }
    const cases: Case[] = [];
    for (const ds of datasets)
      for (const n of SIZES) {
        const train = ds.make(n);
        const q = ds.make(QUERIES).x;
        zScore(train.x, q);
        const name = `${ds.data}-${n}`;
        writeFileSync(join(dir, `${name}.x.bin`), new Uint8Array(train.x.buffer));
        writeFileSync(join(dir, `${name}.y.bin`), new Uint8Array(train.y.buffer));
        writeFileSync(join(dir, `${name}.q.bin`), new Uint8Array(q.buffer));
        cases.push({ name, data: ds.data, n, x: train.x, y: train.y, q });
      }
    const runs = 3;
    const notes = new Set<string>();
    const results: CaseResult[] = [];
    // Case by case, scikit-learn right before lanemap, so both see the same load on a shared machine.
    for (const c of cases) {
      const skRun = sklearnCase(dir, c.name, runs);
      const sk = typeof skRun === "string" ? null : skRun;
      if (typeof skRun === "string") notes.add(skRun);
      const t0 = performance.now();
      const engine = new KnnEngine(c.x, c.y, DIM, K);
      const buildMs = performance.now() - t0;
      const classes = new Uint8Array(QUERIES);
      const confidence = new Float32Array(QUERIES);
      const { wallMs, cpuMs } = await timeBoth(() => engine.predict(c.q, QUERIES, classes, confidence), runs);

      let agreement: number | null = null;
      if (sk) {
        const pred = new Int32Array(new Uint8Array(readFileSync(join(dir, `${c.name}.sk.bin`))).buffer);
        let same = 0;
        for (let i = 0; i < QUERIES; i++) if (pred[i] === classes[i]) same++;
        agreement = same / QUERIES;
      }

      // ml-knn on the first queries until its time budget is spent.
      const rows: number[][] = [];
      for (let i = 0; i < c.n; i++) rows.push(Array.from(c.x.subarray(i * DIM, (i + 1) * DIM)));
      const ml = new MlKnnClass(rows, Array.from(c.y), { k: K });
      let done = 0;
      const m0 = performance.now();
      while (done < QUERIES && (done < 20 || performance.now() - m0 < ML_KNN_BUDGET_MS)) {
        ml.predict([Array.from(c.q.subarray(done * DIM, (done + 1) * DIM))]);
        done++;
      }
      const mlMs = performance.now() - m0;

      results.push({
        data: c.data,
        n: c.n,
        lanemapBuildMs: buildMs,
        lanemapPerS: QUERIES / (cpuMs / 1000),
        sklearnPerS: sk ? QUERIES / sk.predict_cpu_s : null,
        lanemapWallPerS: QUERIES / (wallMs / 1000),
        sklearnWallPerS: sk ? QUERIES / sk.predict_s : null,
        sklearnFitMs: sk ? sk.fit_s * 1000 : null,
        mlKnnPerS: done / (mlMs / 1000),
        mlKnnQueries: done,
        agreementWithSklearn: agreement,
      });
    }

    const table: Table = {
      title: `k-NN predictions/s (k = ${K}, d = ${DIM}, ${QUERIES.toLocaleString("en-US")} distinct queries, single thread)`,
      columns: [
        "data",
        "N train",
        "lanemap",
        "scikit-learn kd_tree",
        "ml-knn",
        "lanemap / sklearn",
        "lanemap / ml-knn",
        "same class as sklearn",
      ],
      rows: results.map((r) => [
        r.data,
        r.n,
        r.lanemapPerS,
        r.sklearnPerS,
        r.mlKnnPerS,
        r.sklearnPerS ? r.lanemapPerS / r.sklearnPerS : null,
        r.mlKnnPerS ? r.lanemapPerS / r.mlKnnPerS : null,
        r.agreementWithSklearn === null ? null : `${(100 * r.agreementWithSklearn).toFixed(3)} %`,
      ]),
      notes: [
        `Median of ${runs} runs of 100k predictions, in CPU time (the process's user + system time, so ` +
          "other load on a shared machine does not count); wall-clock rates are in the results file. " +
          `ml-knn: wall-clock on its first queries for ~${ML_KNN_BUDGET_MS / 1000} s.`,
        "spectral = correlated Landsat-like classes; isotropic = unit-variance Gaussian mixture (a kd-tree's hard case).",
        ...notes,
      ],
    };
    return { table, results };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { table, results } = await runKnnBench();
  printTable(table);
  writeResults("core-knn", results);
}
