/**
 * k-NN prediction throughput: lanemap's kd-tree engine against scikit-learn's KNeighborsClassifier
 * (algorithm="kd_tree"), scipy's cKDTree and FAISS IndexFlatL2 (Debian python3-sklearn,
 * python3-scipy, python3-faiss), and ml-knn (lanemap's first prototype, now the test oracle), one
 * thread each, on the data sets of knn-data.ts (N = 1k, 5k, 20k; 100k distinct queries, k = 5, d = 7).
 *
 * How it is measured, so that anyone can re-run it on a shared machine and get comparable figures:
 * - every side runs in a fresh process (knn-side.ts, knn_anchors.py) per round, ROUNDS rounds, the
 *   sides interleaved within a round (lanemap, scikit-learn, cKDTree, FAISS, the first side rotating
 *   by round, then the next round),
 *   so a burst of load elsewhere hits every side alike;
 * - a process answers the first tenth of the queries to warm up, then all of them INNER times; its
 *   rate is the best of those (timeit's rule: load elsewhere only slows a pass), in CPU time (user + system: other load on the machine does not count), wall time kept in
 *   the JSON;
 * - ratios are paired round by round (lanemap's rate over the anchor's in the same round) and
 *   reported as min / median / max; "spread" is max / min of a side's rates over its fresh processes;
 * - every side does the whole job: the k neighbours and the majority vote (ties to the smallest
 *   class id, scikit-learn's rule); lanemap's labels are compared with scikit-learn's for every query.
 * An anchor whose package is missing is skipped with a note in the table.
 *
 * Run alone: node --import tsx test/bench/core/knn.ts [rounds]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { median, minMedMax, printTable, spreadOf, writeResults, type Table } from "../harness.js";
import { DIM, K, QUERIES, writeKnnCases } from "./knn-data.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/**
 * Timed passes per process (BENCH_KNN_PASSES, default 5): this machine is a VM whose CPU time for
 * a fixed loop varies up to 1.26× between passes of ~0.1 s in one process (host noise, not the
 * JIT), and with one pass, or the median of three, every side's spread over 5 processes was
 * 1.05–1.8 in quiet runs (FAISS's and cKDTree's as much as lanemap's). A process's rate is its
 * best pass (see below); a bad JIT state would still show, since it persists across passes. Five
 * rather than three: 8 lanemap processes at load 9 (spectral, N = 1k) had per-pass rates of 470–705k
 * pred/s, every process a pass at 600k or more but one; their best of the first three spread 1.38,
 * their best of five 1.24 (2026-12-02).
 */
const INNER = Number(process.env.BENCH_KNN_PASSES ?? 5);
/** ml-knn visits every node (see README): give it this much time per size, at least 20 queries. */
const ML_KNN_BUDGET_MS = 1_500;
const HERE = fileURLToPath(new URL(".", import.meta.url));
const ANCHORS = ["sklearn", "ckdtree", "faiss"] as const;
type Side = "lanemap" | (typeof ANCHORS)[number];
const SIDE_NAMES: Record<Side, string> = {
  lanemap: "lanemap",
  sklearn: "scikit-learn kd_tree",
  ckdtree: "scipy cKDTree",
  faiss: "FAISS IndexFlatL2",
};
/** One thread for every numeric library an anchor may load. */
const ONE_THREAD = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };

interface MlKnn {
  predict(dataset: number[][]): number[];
}
type MlKnnConstructor = new (dataset: number[][], labels: number[], options: { k: number }) => MlKnn;
const MlKnnClass = createRequire(import.meta.url)("ml-knn") as MlKnnConstructor;

/** What one fresh process of a side reports. */
interface SideRun {
  buildMs: number;
  cpu: number[];
  wall: number[];
}

/**
 * The CPU every side's process is pinned to (BENCH_KNN_CPU, default the last one; "none" leaves
 * the scheduler free), with util-linux's taskset when the machine has it: pyperf's advice for
 * one-thread benchmarks. Unpinned, the scheduler moves a process between cores (and its V8 or
 * Python helper threads share them), and on this 2-core VM 10 lanemap processes of isotropic N = 1k
 * split into two groups, 343–375k and 437–450k pred/s (spread 1.31), where 8 pinned ones to one CPU
 * gave 449–462k (2026-12-02). Every side is pinned alike, anchors included.
 */
const PIN_CPU = ((): string | null => {
  const v = process.env.BENCH_KNN_CPU ?? String(availableParallelism() - 1);
  if (v === "none" || !existsSync("/usr/bin/taskset")) return null;
  return v;
})();

/** Runs one side once in a fresh process; a string is the reason it could not run. */
function runSide(side: Side, dir: string, name: string, out: boolean): SideRun | string {
  const args = [dir, name, String(INNER), ...(out ? ["--out"] : [])];
  const [cmd, cmdArgs] =
    side === "lanemap"
      ? [process.execPath, ["--import", "tsx", join(HERE, "knn-side.ts"), ...args]]
      : ["/usr/bin/python3", [join(HERE, "knn_anchors.py"), side, ...args]];
  const r =
    PIN_CPU === null
      ? spawnSync(cmd, cmdArgs, { encoding: "utf8", env: ONE_THREAD })
      : spawnSync("/usr/bin/taskset", ["-c", PIN_CPU, cmd, ...cmdArgs], {
          encoding: "utf8",
          env: ONE_THREAD,
        });
  if (r.error) return `${SIDE_NAMES[side]}: ${r.error.message}`;
  if (r.status === 3) return `${SIDE_NAMES[side]} skipped: ${r.stderr.trim()} (install its Debian package)`;
  if (r.status !== 0) return `${SIDE_NAMES[side]} failed: ${r.stderr.trim().split("\n").pop() ?? ""}`;
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as SideRun;
}

interface SideResult {
  /** Predictions per CPU second, one per fresh process (round order). */
  perS: number[];
  wallPerS: number[];
  buildMs: number[];
  skipped?: string;
}

export interface CaseResult {
  data: string;
  n: number;
  sides: Partial<Record<Side, SideResult>>;
  /** lanemap / anchor, paired round by round. */
  ratios: Partial<Record<Side, number[]>>;
  mlKnnPerS: number;
  mlKnnQueries: number;
  agreementWithSklearn: number | null;
  faissAgreementWithSklearn: number | null;
}

function mlKnnRate(dir: string, name: string, n: number): { perS: number; queries: number } {
  const x = new Float64Array(new Uint8Array(readFileSync(join(dir, `${name}.x.bin`))).buffer);
  const y = new Int32Array(new Uint8Array(readFileSync(join(dir, `${name}.y.bin`))).buffer);
  const q = new Float64Array(new Uint8Array(readFileSync(join(dir, `${name}.q.bin`))).buffer);
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) rows.push(Array.from(x.subarray(i * DIM, (i + 1) * DIM)));
  const ml = new MlKnnClass(rows, Array.from(y), { k: K });
  let done = 0;
  const m0 = performance.now();
  while (done < QUERIES && (done < 20 || performance.now() - m0 < ML_KNN_BUDGET_MS)) {
    ml.predict([Array.from(q.subarray(done * DIM, (done + 1) * DIM))]);
    done++;
  }
  return { perS: done / ((performance.now() - m0) / 1000), queries: done };
}

function agreement(dir: string, name: string, a: string, b: string): number | null {
  try {
    const read = (s: string) =>
      new Int32Array(new Uint8Array(readFileSync(join(dir, `${name}.${s}.bin`))).buffer);
    const x = read(a);
    const y = read(b);
    let same = 0;
    for (let i = 0; i < x.length; i++) if (x[i] === y[i]) same++;
    return same / x.length;
  } catch {
    return null;
  }
}

/** The anchors' spreads over the same rounds, lowest to highest over the cases: the host's share. */
function anchorSpreads(results: readonly CaseResult[]): string {
  const parts = ANCHORS.flatMap((a) => {
    const spreads = results.flatMap((r) => {
      const perS = r.sides[a]?.perS ?? [];
      return perS.length > 1 ? [spreadOf(perS)] : [];
    });
    return spreads.length === 0
      ? []
      : [`${SIDE_NAMES[a]} ${Math.min(...spreads).toFixed(2)}–${Math.max(...spreads).toFixed(2)}`];
  });
  return `The anchors' own spreads over the same rounds (max / min of their processes' rates, lowest–highest over the cases): ${parts.length ? parts.join(", ") : "none ran"}.`;
}

/** The printed table of a run's results; `notes` are the run's skip and failure notes. */
export function knnTable(results: readonly CaseResult[], notes: readonly string[]): Table {
  const fmtStats = (xs: readonly number[] | undefined, digits: number, suffix = ""): string | null =>
    xs && xs.length > 0 ? minMedMax(xs, digits, suffix) : null;
  return {
    title: `k-NN predictions per CPU second (k = ${K}, d = ${DIM}, ${QUERIES.toLocaleString("en-US")} distinct queries, one thread; min / median / max of ${ROUNDS} fresh processes)`,
    columns: [
      "data",
      "N",
      "lanemap",
      "spread",
      "cKDTree",
      "FAISS flat",
      "sklearn kd_tree",
      "÷ cKDTree",
      "÷ FAISS",
      "÷ sklearn",
      "÷ ml-knn",
      "= sklearn",
    ],
    rows: results.map((r) => [
      r.data,
      r.n,
      fmtStats(r.sides.lanemap?.perS, 0),
      r.sides.lanemap?.perS.length ? spreadOf(r.sides.lanemap.perS) : null,
      fmtStats(r.sides.ckdtree?.perS, 0),
      fmtStats(r.sides.faiss?.perS, 0),
      fmtStats(r.sides.sklearn?.perS, 0),
      fmtStats(r.ratios.ckdtree, 2, "×"),
      fmtStats(r.ratios.faiss, 2, "×"),
      fmtStats(r.ratios.sklearn, 2, "×"),
      r.sides.lanemap?.perS.length ? median(r.sides.lanemap.perS) / r.mlKnnPerS : null,
      r.agreementWithSklearn === null ? null : `${(100 * r.agreementWithSklearn).toFixed(3)} %`,
    ]),
    notes: [
      `Each side in ${ROUNDS} fresh processes, interleaved round by round (the side that goes first rotating); a process's rate is the best of ` +
        `${INNER} timed pass(es) over all queries after a warm-up on the first tenth, in CPU time (user + system). ` +
        "Ratios are lanemap's rate over the anchor's in the same round (min / median / max); spread = max / min " +
        "of lanemap's rates over its processes. Every side includes the majority vote. " +
        `ml-knn: wall clock on its first queries for ~${ML_KNN_BUDGET_MS / 1000} s, in this process. ` +
        (PIN_CPU === null
          ? "Processes not pinned to a CPU."
          : `Every side's processes pinned to CPU ${PIN_CPU} (taskset; BENCH_KNN_CPU=none to leave them free).`),
      anchorSpreads(results),
      "spectral = correlated Landsat-like classes; isotropic = unit-variance Gaussian mixture (a kd-tree's hard case). " +
        "= sklearn: share of queries where lanemap's class equals scikit-learn's (same tie rule). FAISS computes in " +
        "float32, so it may differ on near ties.",
      ...notes,
    ],
  };
}

/** Runs the benchmark and returns its table and raw results. */
export async function runKnnBench(
  onCase?: (partial: { table: Table; results: unknown }) => void,
): Promise<{ table: Table; results: unknown }> {
  const dir = mkdtempSync(join(tmpdir(), "lanemap-knn-bench-"));
  try {
    // Smallest N first, both data sets at each N: an interrupted run has compared every data set.
    const cases = writeKnnCases(dir).sort((a, b) => a.n - b.n);
    const notes = new Set<string>();
    const results: CaseResult[] = [];
    for (const c of cases) {
      const sides: Partial<Record<Side, SideResult>> = {};
      const order = ["lanemap", ...ANCHORS] as Side[];
      for (let round = 0; round < ROUNDS; round++)
        // The order rotates by round, so no side always runs first (a new user's check).
        for (const side of order.map((_, i) => order[(i + round) % order.length]!)) {
          const prior = sides[side];
          if (prior?.skipped) continue;
          const run = runSide(side, dir, c.name, round === 0);
          if (typeof run === "string") {
            notes.add(run);
            sides[side] = { perS: [], wallPerS: [], buildMs: [], skipped: run };
            continue;
          }
          const s = (sides[side] ??= { perS: [], wallPerS: [], buildMs: [] });
          // A process's rate is its best pass, as timeit reports the minimum: other load on the
          // machine only ever slows a pass, and a process whose JIT settled badly stays slow in
          // all of them, so the spread over fresh processes still shows that.
          s.perS.push(QUERIES / Math.min(...run.cpu));
          s.wallPerS.push(QUERIES / Math.min(...run.wall));
          s.buildMs.push(run.buildMs);
        }
      const ratios: Partial<Record<Side, number[]>> = {};
      const ours = sides.lanemap?.perS ?? [];
      for (const a of ANCHORS) {
        const theirs = sides[a]?.perS ?? [];
        if (theirs.length === ours.length && ours.length > 0)
          ratios[a] = ours.map((r, i) => r / (theirs[i] as number));
      }
      const ml = mlKnnRate(dir, c.name, c.n);
      results.push({
        data: c.data,
        n: c.n,
        sides,
        ratios,
        mlKnnPerS: ml.perS,
        mlKnnQueries: ml.queries,
        agreementWithSklearn: agreement(dir, c.name, "lanemap", "sklearn"),
        faissAgreementWithSklearn: agreement(dir, c.name, "faiss", "sklearn"),
      });
      onCase?.({ table: knnTable(results, [...notes]), results });
    }

    return { table: knnTable(results, [...notes]), results };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  // Written after every case too, so an interrupted run still leaves its finished cases.
  const { table, results } = await runKnnBench((partial) =>
    writeResults("core-knn", partial.results, [partial.table]),
  );
  printTable(table);
  writeResults("core-knn", results, [table]);
}
