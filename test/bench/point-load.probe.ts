/**
 * The point query's server CPU per request with and without other load on the machine (issue 11:
 * 580 µs quiet, 2.5 ms loaded, while bare Express stayed flat). Not a test and not a README block:
 * a probe to re-run when that figure moves. It serves bench:serve's view (100 × 100 cells of 64²
 * class rasters). Each round measures every side twice, once quiet and once with HOGS busy-looping
 * node processes running (nice 0: they compete as other sessions' work does), the condition that
 * goes first alternating by round. The sides: this tree's point query, bench:serve's bare Express
 * endpoint and, with BEFORE=DIR (a copy of another tree with its node_modules and this probe), that
 * tree's point query. Each measurement starts a fresh server, warms it, and measures SECONDS; it
 * prints the server's CPU µs per request (user + system from /proc), split by thread ("main", and
 * "node": V8's compiler and GC helpers and libuv's pool, where DuckDB queries run), req/s, and the
 * raster cache's misses in the measured seconds (a cold tile).
 *
 *   ROUNDS=3 SECONDS=6 WARM=2|all HOGS=2 [COLD=1] [ONLY=point,bare,before] [BEFORE=DIR]
 *     [PROF=DIR] [VIEW=DIR] [FLAGS=...] node --import tsx test/bench/point-load.probe.ts
 *
 * WARM: seconds of warm-up (bench:serve's old 2 s: on a loaded machine it reaches fewer points, so
 * more of the measured requests meet cold tiles), or `all`: one request per point, every tile the
 * measured seconds touch cached. COLD=1: after the warm-up the measured seconds ask 2,000 other
 * points, ~1,500 of them on cold tiles (what a cold tile costs with the JIT warm). PROF writes a V8
 * CPU profile of every server's main thread (`<side>-<condition>-r<round>.cpuprofile`, the measured
 * window in a .window.json beside it, monotonic µs as the profile's sample times); VIEW keeps the
 * built view there between runs (built when absent); FLAGS are node flags for every server.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { WGS84, crsFromEpsg, projectPoint } from "../../shared/index.js";
import { tempDataDir, writeBatchView } from "../helpers/serving-views.js";
import { minMedMax } from "./harness.js";
import { SIDE, TILE_M, X0, Y0, bareChild, buildTiles, serveChild } from "./serve-view.js";
import { loadNow, processCpuSeconds } from "./rounds.js";

const ROUNDS = Number(process.env["ROUNDS"] ?? 3);
const SECONDS = Number(process.env["SECONDS"] ?? 6);
const WARM = Number(process.env["WARM"] ?? 2);
const HOGS = Number(process.env["HOGS"] ?? 2);
const PROF = process.env["PROF"];
/** Node flags for every server process (FLAGS="--single-threaded-gc", say). */
const FLAGS = (process.env["FLAGS"] ?? "").split(" ").filter(Boolean);
/** A tree (a copy of this repository with node_modules) whose serving layer is measured as "before". */
const BEFORE = process.env["BEFORE"];
/** What each round measures in both conditions: this tree's point query, bare Express, BEFORE's point query. */
type Side = "point" | "bare" | "before";
const SIDES: Side[] = (["point", "bare", ...(BEFORE ? (["before"] as const) : [])] as const).filter(
  (side) => !process.env["ONLY"] || process.env["ONLY"].split(",").includes(side),
);
/** WARM=all: warm with one request per point (every tile the measured seconds touch is cached). */
const WARM_ALL = process.env["WARM"] === "all";
const COLD = process.env["COLD"] === "1";

if (process.argv[2] === "--child") await serveChild(process.argv[3] ?? "");
else if (process.argv[2] === "--bare") bareChild();
else await main();

/** A server child: `side` names the tree whose copy of this probe runs it (BEFORE for "before"). */
function spawnServer(
  side: Side,
  dataDir: string,
  prof: string | null,
): Promise<{ url: string; proc: ChildProcess }> {
  const execArgv = ["--import", "tsx", ...FLAGS, ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [])];
  const script =
    side === "before" ? join(BEFORE ?? "", "test/bench/point-load.probe.ts") : fileURLToPath(import.meta.url);
  const args = side === "bare" ? ["--bare"] : ["--child", dataDir];
  const proc = fork(script, args, { execArgv, ...(side === "before" ? { cwd: BEFORE } : {}) });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${side} server did not start in 180 s`));
    }, 180_000);
    proc.once("message", (m) => {
      clearTimeout(timer);
      resolve({ url: (m as { url: string }).url, proc });
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${side} server exited with ${code}`));
    });
  });
}

/** The same 2,000 points as bench:serve. */
function pointPaths(seed = 12345): string[] {
  const utm = crsFromEpsg(32633);
  const points: string[] = [];
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 2000; i++) {
    const [lon, lat] = projectPoint(utm, WGS84, X0 + rnd() * SIDE * TILE_M, Y0 - rnd() * SIDE * TILE_M);
    points.push(`/v1/point?lon=${lon.toFixed(6)}&lat=${lat.toFixed(6)}`);
  }
  return points;
}

async function cacheMisses(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^lanemap_raster_cache_misses (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

/** CPU seconds per thread name (/proc/PID/task/TID/stat: comm, utime + stime), summed by name. */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended
    }
    const name = tid === String(pid) ? "main" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    out.set(name, (out.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
  }
  return out;
}

interface Measure {
  rps: number;
  cpuUs: number;
  misses: number;
  requests: number;
  load: number;
  /** The measured seconds on the monotonic clock, µs (a CPU profile's sample times use it too). */
  window: [number, number];
  /** CPU µs per request by thread name. */
  threads: Record<string, number>;
}

async function measure(
  side: Side,
  dataDir: string,
  points: readonly string[],
  prof: string | null,
): Promise<Measure> {
  const srv = await spawnServer(side, dataDir, prof);
  let paths = side === "bare" ? ["/ok"] : points;
  try {
    let i = 0;
    const run = (length: { duration: number } | { amount: number }) =>
      autocannon({
        url: srv.url,
        connections: 16,
        ...length,
        requests: [{ setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length] ?? "/" }) }],
      });
    // WARM=all: every point once (bare: as many requests), so the JIT has seen as many requests too.
    await run(WARM_ALL ? { amount: points.length } : { duration: WARM });
    const load = loadNow();
    const pid = srv.proc.pid as number;
    const m0 = side === "bare" ? 0 : await cacheMisses(srv.url);
    const cpu0 = processCpuSeconds(pid);
    const t0 = threadCpu(pid);
    const w0 = Number(process.hrtime.bigint() / 1000n);
    // COLD=1: the measured seconds ask other points than the warm-up did (another seed), most of
    // them on tiles not yet cached: what a cold tile costs once the JIT is warm.
    if (COLD && side !== "bare") {
      paths = pointPaths(54321);
      i = 0;
    }
    const r = await run({ duration: SECONDS });
    const w1 = Number(process.hrtime.bigint() / 1000n);
    const cpu = processCpuSeconds(pid) - cpu0;
    const threads: Record<string, number> = {};
    for (const [name, sec] of threadCpu(pid))
      threads[name] = ((sec - (t0.get(name) ?? 0)) * 1e6) / Math.max(1, r.requests.total);
    const misses = side === "bare" ? 0 : (await cacheMisses(srv.url)) - m0;
    return {
      rps: r.requests.average,
      cpuUs: (cpu * 1e6) / Math.max(1, r.requests.total),
      misses,
      requests: r.requests.total,
      load,
      window: [w0, w1],
      threads,
    };
  } finally {
    const exited = new Promise((resolve) => srv.proc.once("exit", resolve));
    srv.proc.kill("SIGTERM");
    // A server that does not finish closing in 10 s is killed: the next measurement needs the cores.
    const killer = setTimeout(() => srv.proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  }
}

function startHogs(): ChildProcess[] {
  return Array.from({ length: HOGS }, () => spawn(process.execPath, ["-e", "for(;;);"], { stdio: "ignore" }));
}

async function main(): Promise<void> {
  await using tmp = await tempDataDir();
  const dataDir = process.env["VIEW"] ?? tmp.dir;
  if (!existsSync(join(dataDir, "views"))) {
    mkdirSync(dataDir, { recursive: true });
    await writeBatchView(dataDir, { version: 1, watermark: SIDE * SIDE, tiles: buildTiles() });
  }
  const paths = pointPaths();
  const conds = ["quiet", "loaded"] as const;
  const out = new Map<string, Measure[]>();
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? conds : ([...conds].reverse() as readonly Cond[]);
    const sides = r % 2 === 0 ? SIDES : [...SIDES].reverse();
    for (const cond of order) {
      const hogs = cond === "loaded" ? startHogs() : [];
      try {
        for (const side of sides) {
          const name = `${side}-${cond}-r${r + 1}`;
          const prof = PROF ? join(PROF, name) : null;
          if (prof) mkdirSync(prof, { recursive: true });
          const m = await measure(side, dataDir, paths, prof);
          if (prof)
            for (const f of readdirSync(prof))
              // CPU.<date>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main one (tsx's loader
              // hooks run in a worker of their own and write a profile too).
              if (/\.\d+\.0\.\d+\.cpuprofile$/.test(f)) {
                renameSync(join(prof, f), join(PROF!, `${name}.cpuprofile`));
                writeFileSync(join(PROF!, `${name}.window.json`), JSON.stringify(m.window));
              }
          const key = `${side} ${cond}`;
          out.set(key, [...(out.get(key) ?? []), m]);
          console.log(
            `round ${r + 1} ${key}: ${m.cpuUs.toFixed(0)} µs CPU/request, ${m.rps.toFixed(0)} req/s, ` +
              `${m.misses} cache misses in ${m.requests} requests, load ${m.load}; by thread: ` +
              Object.entries(m.threads)
                .filter(([, us]) => us >= 1)
                .map(([name, us]) => `${name} ${us.toFixed(0)}`)
                .join(", "),
          );
        }
      } finally {
        for (const h of hogs) h.kill("SIGKILL");
      }
    }
  }
  console.log("min / median / max over the rounds:");
  for (const side of SIDES)
    for (const cond of conds) {
      const ms = out.get(`${side} ${cond}`) ?? [];
      console.log(
        `${side} ${cond}: CPU µs/request ${minMedMax(ms.map((m) => m.cpuUs))}; req/s ${minMedMax(ms.map((m) => m.rps))}; ` +
          `cache misses ${minMedMax(ms.map((m) => m.misses))}; load ${minMedMax(
            ms.map((m) => m.load),
            2,
          )}`,
      );
    }
}

type Cond = "quiet" | "loaded";
