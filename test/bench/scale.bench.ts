/**
 * `npm run bench:scale` (issue 14): the batch lane's work queue against the in-process pool.
 *
 *   - tiles/s with 1 and 2 `lanemap worker` processes (one tile thread each) against the in-process
 *     pool with 1 and 2 threads, on the same tiles, interleaved runs (min / median / max);
 *   - the distribution overhead per tile: (stream − threads) time per tile with one thread, against
 *     the in-process time per tile (the target: ≤ 10 %);
 *   - the coordinator's CPU per tile (this process: publishing tasks, reading results);
 *   - the same overhead in CPU time, which a loaded machine does not inflate as it does wall time:
 *     (coordinator + worker processes + nats-server CPU) − (this process's CPU with its in-process
 *     pool) per tile, each read around the same drive (/proc/<pid>/stat for the children);
 *   - where a tile's CPU goes, per thread (/proc/<pid>/task/<tid>/stat): the tile thread, the main
 *     thread of its process and its other threads (GC, compiler), the coordinator, nats-server —
 *     the in-process pool's against one `lanemap worker`'s, so the distribution's cost is named
 *     (the worker's event loop: NATS, JSON, logs; the coordinator; the broker) instead of inferred;
 *   - the same pair (in-process pool, one `lanemap worker`) on larger tiles (SCALE_LARGE_TILE_SIZE,
 *     default 512², 8 tiles; 0 leaves it out), clearly labelled rows in the same rounds: the
 *     distribution costs per task, so its share of a realistic tile's classify time is smaller;
 *   - a simulated fleet: N = 1, 2, 4, 8, 16 worker processes whose every tile costs a fixed
 *     LANEMAP_TEST_TILE_DELAY_MS (a sleep in the tile thread, no CPU), 8 tiles per worker: tiles/s
 *     against N × one worker's, which shows whether the coordinator and NATS keep up, and how
 *     evenly the queue split the tiles (tiles per worker, from the results' `worker`).
 *     Each fleet size first does one untimed run: a worker's first task of a model loads it from
 *     the registry and builds its classifier, once per process, and with 8 tiles per worker that
 *     one-off start-up would weigh as much as a tile in the timed runs, which the issue asks about
 *     the steady state of (the single-worker figures above have their warm-up run too).
 *
 * Both executors are driven directly (batch/executor.ts), as the runner drives them, so the figures
 * are the dispatch and classification alone, not the view's DuckDB writes and publish, which are the
 * same for both. Workers are started once per configuration and excluded from the timings.
 *
 * The comparison is like for like: neither side's figure includes the staging write (the runner
 * does it for both, after `process`), both read the tile's bytes from the same files archive in the
 * tile thread, and both sides' threads are warm — the in-process pool is kept across its runs as
 * the runner keeps it between runs, since the `lanemap worker` processes are long-lived. (Until
 * issue 14's third pass the in-process side started a fresh pool per run, whose cold JIT charged it
 * 50–69 ms of CPU per tile against 54–58 for the stream side at a load of 3–5: a handicap that hid
 * most of the distribution's real cost.)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { StreamTileExecutor, openTileExecutor, type TileExecutor } from "../../batch/index.js";
import { startNatsServer, type NatsServer } from "../../infra/nats/launcher.js";
import { NatsModelRegistry, connectNats } from "../../shared/adapters/nats/index.js";
import { TilePool, serializeModel, type CatalogueEntry, type Config } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
import { makeDataDir, makeSampleSet, type SampleSet } from "../integration/batch-fixture.js";
import { median, minMedMax, printTable, writeResults, type Table } from "./harness.js";

const loadAtStart = loadavg()[0]!;
/** Interleaved rounds per side (SCALE_ROUNDS); the house asks for at least 5 where a run allows. */
const ROUNDS = Number(process.env["SCALE_ROUNDS"] ?? 5);
const FLEET = (process.env["SCALE_FLEET"] ?? "1,2,4,8,16").split(",").map(Number);
/**
 * Side of the executors' tiles in px (SCALE_TILE_SIZE, default 128, the sample archive's). The
 * distribution's cost is per task, not per pixel, so its share of the classify time falls as
 * tiles grow: a larger size shows where a deployment's own tiles would stand.
 */
const TILE_SIZE = Number(process.env["SCALE_TILE_SIZE"] ?? 128);
/**
 * A second tree to compare with (SCALE_BEFORE=DIR, a checkout with its own `npm run build`, e.g.
 * the commit before a change): one more `lanemap worker` from DIR on a nats-server of its own, sent
 * tasks of SCALE_BEFORE_TILES tiles (default one, what a worker of any version reads; DIR = this
 * tree compares the tasks of several tiles with tasks of one, on the same worker code),
 * driven in every round beside this tree's, so a change's effect is read within one run on this
 * shared machine instead of across runs at different loads.
 */
const BEFORE = process.env["SCALE_BEFORE"];
/**
 * Tiles per task sent to the SCALE_BEFORE worker (SCALE_BEFORE_TILES, default 1: what a worker of
 * any version reads; 4, the coordinator's own, for a tree that reads tasks of several tiles too,
 * so a change to the worker is compared on the same tasks).
 */
const BEFORE_TILES = Number(process.env["SCALE_BEFORE_TILES"] ?? 1);
/**
 * Side of the tiles of an extra pair of rows (SCALE_LARGE_TILE_SIZE, default 512; 0 leaves them
 * out): the in-process pool against one `lanemap worker` on LARGE_TILES tiles of that size, paired
 * in the same rounds, for a deployment whose tiles are larger than the sample archive's 128² — the
 * distribution's cost is per task, so its share falls as the tiles grow.
 */
const LARGE_TILE_SIZE = Number(process.env["SCALE_LARGE_TILE_SIZE"] ?? 512);
const LARGE_TILES = 8;
const FLEET_DELAY_MS = 400;
/**
 * A folder for V8 CPU profiles of the `lanemap worker` processes (SCALE_CPU_PROF=DIR; run the bench
 * itself with `node --cpu-prof --cpu-prof-dir=DIR` for the coordinator and the in-process pool):
 * where the distribution's ms per tile go, by function, on the bench's own tiles.
 */
const PROF_DIR = process.env["SCALE_CPU_PROF"];
const FLEET_TILES_PER_WORKER = 8;
const logger = pino({ level: "silent" });

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU time (user + system, every thread) of processes `pids` so far, in ms; 0 for one gone. */
function cpuMsOf(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process exited: its CPU is not counted.
    }
  }
  return (ticks * 1000) / USER_HZ;
}

/** CPU time (user + system) of each thread of process `pid` so far, in ms, by thread id. */
function threadCpuMs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // the process exited
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ);
    } catch {
      // The thread ended: its CPU is not counted.
    }
  }
  return out;
}

/** A process's CPU between two readings of threadCpuMs, split by thread (see {@link splitCpu}). */
interface CpuSplit {
  /** The main thread (the event loop: NATS, JSON, logs, dispatch). */
  readonly main: number;
  /** The busiest other thread: with one tile thread, the tile thread. */
  readonly tile: number;
  /** Every other thread (V8's GC and compiler helpers, libuv's pool). */
  readonly other: number;
}

/**
 * Splits process `pid`'s CPU between `before` and `after` into its main thread, its busiest other
 * thread and the rest. Node gives worker threads no name of their own (every thread's comm is
 * "node"), so the tile thread is told by its CPU: with one tile thread classifying 128² tiles it
 * is the busiest thread by an order of magnitude.
 */
function splitCpu(pid: number, before: Map<number, number>, after: Map<number, number>): CpuSplit {
  let main = 0;
  let tile = 0;
  let all = 0;
  for (const [tid, ms] of after) {
    const d = ms - (before.get(tid) ?? 0);
    all += d;
    if (tid === pid) main = d;
    else tile = Math.max(tile, d);
  }
  return { main, tile, other: all - main - tile };
}

/** This process's CPU time so far (user + system, every thread), in ms. */
const ownCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Classifies every entry through `ex` with `ex.slots` lanes, as the runner does; returns ms. */
async function drive(ex: TileExecutor, entries: readonly CatalogueEntry[]): Promise<number> {
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(ex.slots, entries.length) }, async () => {
      while (next < entries.length) {
        const o = await ex.process(entries[next++]!);
        if (!o.ok) failed++;
      }
    }),
  );
  const ms = performance.now() - t0;
  if (failed) throw new Error(`${failed} tiles failed`);
  return ms;
}

/** What each batch worker logs per tile it classified (task-worker.ts). */
const CLASSIFIED = '"msg":"batch tile classified"';

/** `n` `lanemap worker` processes on `server`, each with one tile thread, ready. */
async function startWorkers(
  n: number,
  server: NatsServer,
  dataDir: string,
  env: Record<string, string> = {},
  root = projectRoot,
) {
  const children: ChildProcess[] = [];
  const classified = Array.from({ length: n }, () => 0);
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const child = spawn(
        process.execPath,
        [
          ...(PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`] : []),
          join(root, "infra", "bin", "lanemap.js"),
          "worker",
          "--name",
          `w${i}`,
        ],
        {
          cwd: root,
          env: {
            ...process.env,
            NATS_URL: server.url,
            LANEMAP_DATA_DIR: dataDir,
            LANEMAP_BATCH_WORKERS: "1",
            LANEMAP_SPEED_CONCURRENCY: "1",
            LANEMAP_LOG_LEVEL: "info",
            ...env,
          },
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      children.push(child);
      return new Promise<void>((resolve, reject) => {
        let err = "";
        let ready = false;
        child.stderr!.on("data", (d: Buffer) => {
          // Until ready, the tail of its log (for the error); then only its tiles are counted, from
          // the "batch tile classified" line each writes per task, so telling which worker did
          // what costs the coordinator's process no second delivery and decode of every result.
          err = (err + d.toString()).slice(-4000);
          if (!ready && err.includes("worker ready")) {
            ready = true;
            err = err.slice(err.lastIndexOf("worker ready"));
            resolve();
          }
          if (!ready) return;
          let at = err.indexOf(CLASSIFIED);
          while (at >= 0) {
            classified[i]!++;
            err = err.slice(at + CLASSIFIED.length);
            at = err.indexOf(CLASSIFIED);
          }
          err = err.slice(-CLASSIFIED.length); // a line cut between two chunks is counted with the next
        });
        child.once("exit", (code) => reject(new Error(`worker exited ${code}: ${err}`)));
      });
    }),
  );
  return {
    pids: children.map((c) => c.pid ?? -1),
    /** Tiles each worker has classified so far, by index (its name is `w<index>`). */
    classified: (): number[] => [...classified],
    async stop() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null) return resolve();
              c.once("exit", () => resolve());
              c.kill("SIGTERM");
            }),
        ),
      );
    },
  };
}

async function entriesOf(
  set: SampleSet,
  name: string,
): Promise<{ config: Config; entries: CatalogueEntry[] }> {
  const fx = await makeDataDir(set, name);
  const entries: CatalogueEntry[] = [];
  for await (const e of fx.store.entries()) entries.push(e);
  entries.sort((a, b) => a.tileId.localeCompare(b.tileId));
  return { config: fx.config({ LANEMAP_DECODE_TIMEOUT_MS: "60000" }), entries };
}

/**
 * What the fleet's figures say of the coordinator and of this machine: the tiles/s one core of
 * coordinator CPU could absorb (1000 ÷ its median CPU ms per tile over every fleet run) against what
 * the largest fleet asks, and how many cores the largest fleet's processes kept busy against the
 * cores there are. A fleet that falls short of 0.8·N while the coordinator's ceiling is far above
 * its demand and its processes use most of the cores is short of CPU for its N worker processes,
 * not of coordinator or broker.
 */
function coordinatorCeiling(
  fleet: readonly { n: number; coordinatorCpuMsPerTile: number[]; coresBusy: number[] }[],
): string {
  const largest = fleet.at(-1);
  if (!largest) return "";
  const cpu = median(fleet.flatMap((f) => f.coordinatorCpuMsPerTile));
  const asked = (largest.n * 1000) / FLEET_DELAY_MS;
  return (
    `One coordinator spends ${cpu.toFixed(2)} ms of CPU per tile (median of every fleet run): one core absorbs about ` +
    `${Math.round(1000 / cpu)} results/s, against the ${asked.toFixed(0)} tiles/s ${largest.n} workers at ${FLEET_DELAY_MS} ms per tile ask. ` +
    `At N = ${largest.n} the coordinator, the workers and nats-server kept ${minMedMax(largest.coresBusy, 2)} of the ${availableParallelism()} cores busy.`
  );
}

let runSeq = 0;
const runId = () => `20260101T000000Z-b${String(runSeq++).padStart(5, "0")}`;

async function main(): Promise<void> {
  const tables: Table[] = [];
  const set = await makeSampleSet({ width: 8, height: 6, tileSize: TILE_SIZE, seed: 3 });
  const fleetSet = await makeSampleSet({ width: 16, height: 8, tileSize: 32, seed: 5 });
  const largeSet =
    LARGE_TILE_SIZE > 0
      ? await makeSampleSet({ width: 4, height: LARGE_TILES / 4, tileSize: LARGE_TILE_SIZE, seed: 7 })
      : undefined;
  const servers: NatsServer[] = [];
  // Connections to close before their servers stop: one left open reconnects forever, and the
  // bench then never exits after writing its results.
  const connections: { close(): Promise<void> }[] = [];
  try {
    const { config, entries } = await entriesOf(set, "data");
    /** What one executor run classifies: its tiles, their data directory and the model. */
    interface Job {
      readonly config: Config;
      readonly entries: readonly CatalogueEntry[];
      readonly modelPath: string;
      readonly artifact: Uint8Array;
    }
    const jobOf = async (s: SampleSet, name: string): Promise<Job> => ({
      ...(await entriesOf(s, name)),
      modelPath: s.modelPath,
      artifact: new TextEncoder().encode(serializeModel(s.model)),
    });
    const job: Job = {
      config,
      entries,
      modelPath: set.modelPath,
      artifact: new TextEncoder().encode(serializeModel(set.model)),
    };
    const largeJob = largeSet ? await jobOf(largeSet, "large") : undefined;

    // One nats-server per worker count, so the 1-worker runs never share the queue with the 2-worker fleet.
    const mk = async (n: number, root = projectRoot, j: Job = job, model = set.model) => {
      const server = await startNatsServer();
      servers.push(server);
      const nc = await connectNats({ servers: server.url, name: "bench-scale" });
      connections.push(nc);
      const models = await NatsModelRegistry.open(nc);
      await models.put(model);
      const workers = await startWorkers(n, server, j.config.dataDir, {}, root);
      return { server, nc, models, workers };
    };
    const one = await mk(1);
    const two = await mk(2);
    const before = BEFORE ? await mk(1, BEFORE) : undefined;
    const large = largeSet && largeJob ? await mk(1, projectRoot, largeJob, largeSet.model) : undefined;
    const figures: Record<string, number[]> = {
      threads1: [],
      threads2: [],
      stream1: [],
      stream2: [],
      cpu1: [],
      cpu2: [],
      threadsCpu1: [],
      streamCpu1: [],
      beforeStream1: [],
      beforeStreamCpu1: [],
      largeThreads1: [],
      largeThreadsCpu1: [],
      largeStream1: [],
      largeStreamCpu1: [],
    };
    // The in-process side keeps its threads warm across its runs, as the runner does between runs
    // (TileWorkerPoolOptions.warm): the `lanemap worker` processes are warm too, and a pool started
    // per run would charge the in-process side its threads' cold JIT on every run's first tiles
    // (50–69 ms of CPU per tile against 54–58 warm), which made the overhead look smaller and noisier.
    const warmPools = new Map<number, TilePool>();
    const warmPool = async (size: number): Promise<TilePool> => {
      let pool = warmPools.get(size);
      if (!pool) {
        pool = new TilePool({
          size,
          timeoutMs: config.decodeTimeoutMs,
          resourceLimits: { maxOldGenerationSizeMb: 512 },
        });
        await pool.warm();
        warmPools.set(size, pool);
      }
      return pool;
    };
    const threadsRun = async (size: number, j: Job = job) => {
      const { config, entries } = j;
      const ex = await openTileExecutor({
        kind: "threads",
        config,
        logger,
        modelPath: j.modelPath,
        size,
        tileDelayMs: 0,
        runId: "x",
        tileIds: new Set(),
        warm: await warmPool(size),
      });
      try {
        const threads0 = threadCpuMs(process.pid);
        const cpu0 = ownCpuMs();
        const ms = await drive(ex, entries);
        const cpuMsPerTile = (ownCpuMs() - cpu0) / entries.length;
        return { ms, cpuMsPerTile, split: splitCpu(process.pid, threads0, threadCpuMs(process.pid)) };
      } finally {
        await ex.close(); // the warm pool stays
      }
    };
    const streamRun = async (q: Awaited<ReturnType<typeof mk>>, j: Job = job, tilesPerTask?: number) => {
      const { config, entries } = j;
      const id = runId();
      const ex = await StreamTileExecutor.start({
        nc: q.nc,
        config,
        logger,
        runId: id,
        artifact: j.artifact,
        models: q.models,
        tileIds: new Set(entries.map((e) => e.tileId)),
        ...(tilesPerTask ? { tilesPerTask } : {}),
      });
      const others = [...q.workers.pids, q.server.pid];
      const worker = q.workers.pids[0]!;
      const worker0 = threadCpuMs(worker);
      const nats0 = cpuMsOf([q.server.pid]);
      const cpu0 = process.cpuUsage();
      const othersCpu0 = cpuMsOf(others);
      try {
        const ms = await drive(ex, entries);
        const cpu = process.cpuUsage(cpu0);
        const coordinatorMs = (cpu.user + cpu.system) / 1000;
        return {
          ms,
          cpuMsPerTile: coordinatorMs / entries.length,
          allCpuMsPerTile: (coordinatorMs + cpuMsOf(others) - othersCpu0) / entries.length,
          // Meaningful for one worker process (its tile thread is its busiest thread).
          workerSplit: splitCpu(worker, worker0, threadCpuMs(worker)),
          natsMs: cpuMsOf([q.server.pid]) - nats0,
        };
      } finally {
        await ex.close();
      }
    };
    // Per run, in ms of CPU for the whole run (divided by the tiles below).
    const threadSplits: CpuSplit[] = [];
    const streamSplits: (CpuSplit & { coordinator: number; nats: number })[] = [];
    const beforeSplits: (CpuSplit & { coordinator: number; nats: number })[] = [];
    // A warm-up of each, then interleaved rounds.
    await threadsRun(1);
    await streamRun(one);
    await streamRun(two);
    if (before) await streamRun(before, job, BEFORE_TILES);
    if (large && largeJob) {
      await threadsRun(1, largeJob);
      await streamRun(large, largeJob);
    }
    for (let r = 0; r < ROUNDS; r++) {
      const t1 = await threadsRun(1);
      figures["threads1"]!.push(t1.ms);
      figures["threadsCpu1"]!.push(t1.cpuMsPerTile);
      threadSplits.push(t1.split);
      const s1 = await streamRun(one);
      figures["stream1"]!.push(s1.ms);
      figures["cpu1"]!.push(s1.cpuMsPerTile);
      figures["streamCpu1"]!.push(s1.allCpuMsPerTile);
      streamSplits.push({
        ...s1.workerSplit,
        coordinator: s1.cpuMsPerTile * entries.length,
        nats: s1.natsMs,
      });
      if (before) {
        const b1 = await streamRun(before, job, BEFORE_TILES);
        figures["beforeStream1"]!.push(b1.ms);
        figures["beforeStreamCpu1"]!.push(b1.allCpuMsPerTile);
        beforeSplits.push({
          ...b1.workerSplit,
          coordinator: b1.cpuMsPerTile * entries.length,
          nats: b1.natsMs,
        });
      }
      if (large && largeJob) {
        const lt = await threadsRun(1, largeJob);
        figures["largeThreads1"]!.push(lt.ms);
        figures["largeThreadsCpu1"]!.push(lt.cpuMsPerTile);
        const ls = await streamRun(large, largeJob);
        figures["largeStream1"]!.push(ls.ms);
        figures["largeStreamCpu1"]!.push(ls.allCpuMsPerTile);
      }
      figures["threads2"]!.push((await threadsRun(2)).ms);
      const s2 = await streamRun(two);
      figures["stream2"]!.push(s2.ms);
      figures["cpu2"]!.push(s2.cpuMsPerTile);
      console.error(`round ${r + 1}/${ROUNDS} done`);
    }
    await one.workers.stop();
    await two.workers.stop();
    await before?.workers.stop();
    await large?.workers.stop();
    for (const pool of warmPools.values()) await pool.close();
    const tps = (ms: number[], tiles = entries.length) => ms.map((m) => (tiles * 1000) / m);
    const perTile = (ms: number[]) => ms.map((m) => m / entries.length);
    const overhead = figures["stream1"]!.map((s, i) => (s - figures["threads1"]![i]!) / entries.length);
    const classifyMs = median(perTile(figures["threads1"]!));
    const cpuOverhead = figures["streamCpu1"]!.map((s, i) => s - figures["threadsCpu1"]![i]!);
    const classifyCpuMs = median(figures["threadsCpu1"]!);
    const beforeCpuOverhead = figures["beforeStreamCpu1"]!.map((s, i) => s - figures["threadsCpu1"]![i]!);
    const beforeOverhead = figures["beforeStream1"]!.map(
      (s, i) => (s - figures["threads1"]![i]!) / entries.length,
    );
    const largePerTile = (ms: number[]) => ms.map((m) => m / LARGE_TILES);
    const largeCpuOverhead = figures["largeStreamCpu1"]!.map((s, i) => s - figures["largeThreadsCpu1"]![i]!);
    const largeOverhead = figures["largeStream1"]!.map(
      (s, i) => (s - figures["largeThreads1"]![i]!) / LARGE_TILES,
    );
    const largeRows = large
      ? [
          [
            `in-process pool, 1 thread — ${LARGE_TILE_SIZE}² tiles (${LARGE_TILES})`,
            minMedMax(tps(figures["largeThreads1"]!, LARGE_TILES), 2),
            minMedMax(largePerTile(figures["largeThreads1"]!), 1),
            null,
          ],
          [
            `stream, 1 \`lanemap worker\` — ${LARGE_TILE_SIZE}² tiles (${LARGE_TILES})`,
            minMedMax(tps(figures["largeStream1"]!, LARGE_TILES), 2),
            minMedMax(largePerTile(figures["largeStream1"]!), 1),
            null,
          ],
        ]
      : [];
    const largeNotes = large
      ? [
          `At ${LARGE_TILE_SIZE}² (the last two rows, ${LARGE_TILES} tiles, same rounds): distribution overhead per tile ${minMedMax(largeOverhead, 1, " ms")} in wall time, ` +
            `${((median(largeOverhead) / median(largePerTile(figures["largeThreads1"]!))) * 100).toFixed(1)} % of the in-process ${median(largePerTile(figures["largeThreads1"]!)).toFixed(1)} ms; ` +
            `in CPU time ${minMedMax(largeCpuOverhead, 2, " ms")}, ${((median(largeCpuOverhead) / median(figures["largeThreadsCpu1"]!)) * 100).toFixed(1)} % of the in-process ${median(figures["largeThreadsCpu1"]!).toFixed(1)} ms of CPU per tile.`,
        ]
      : [];
    const beforeNotes = BEFORE
      ? [
          `Before (SCALE_BEFORE=${BEFORE}, one \`lanemap worker\` of that tree, tasks of up to ${BEFORE_TILES} tile${BEFORE_TILES > 1 ? "s" : ""}, same rounds): ${minMedMax(perTile(figures["beforeStream1"]!), 1, " ms")} per tile; ` +
            `distribution overhead in wall time ${minMedMax(beforeOverhead, 2, " ms")} per tile, ${((median(beforeOverhead) / classifyMs) * 100).toFixed(1)} % ` +
            `(this tree: ${minMedMax(overhead, 2, " ms")}, ${((median(overhead) / classifyMs) * 100).toFixed(1)} %); ` +
            `distribution overhead in CPU time ${minMedMax(beforeCpuOverhead, 2, " ms")} per tile, ${((median(beforeCpuOverhead) / classifyCpuMs) * 100).toFixed(1)} % ` +
            `(this tree: ${minMedMax(cpuOverhead, 2, " ms")}, ${((median(cpuOverhead) / classifyCpuMs) * 100).toFixed(1)} %).`,
        ]
      : [];
    tables.push({
      title: `Batch executors: ${entries.length} tiles of ${TILE_SIZE}² x 6 bands (${ROUNDS} interleaved runs, min / median / max)`,
      columns: ["executor", "tiles/s", "ms per tile", "coordinator CPU ms per tile"],
      rows: [
        [
          "in-process pool, 1 thread",
          minMedMax(tps(figures["threads1"]!), 1),
          minMedMax(perTile(figures["threads1"]!), 1),
          null,
        ],
        [
          "stream, 1 `lanemap worker`",
          minMedMax(tps(figures["stream1"]!), 1),
          minMedMax(perTile(figures["stream1"]!), 1),
          minMedMax(figures["cpu1"]!, 2),
        ],
        [
          "in-process pool, 2 threads",
          minMedMax(tps(figures["threads2"]!), 1),
          minMedMax(perTile(figures["threads2"]!), 1),
          null,
        ],
        [
          "stream, 2 `lanemap worker`",
          minMedMax(tps(figures["stream2"]!), 1),
          minMedMax(perTile(figures["stream2"]!), 1),
          minMedMax(figures["cpu2"]!, 2),
        ],
        ...largeRows,
      ],
      notes: [
        `Distribution overhead per tile (stream − threads, one thread, paired runs): ${minMedMax(overhead, 2, " ms")}, ` +
          `${((median(overhead) / classifyMs) * 100).toFixed(1)} % of the in-process ${classifyMs.toFixed(1)} ms per tile (target ≤ 10 %).`,
        `The same in CPU time, which load inflates less (coordinator + worker + nats-server CPU − the in-process pool's, one thread, paired runs): ` +
          `${minMedMax(cpuOverhead, 2, " ms")} per tile, ${((median(cpuOverhead) / classifyCpuMs) * 100).toFixed(1)} % of the in-process ${classifyCpuMs.toFixed(1)} ms of CPU per tile.`,
        ...beforeNotes,
        ...largeNotes,
        `Load average (1 min) ${loadAtStart.toFixed(1)} when the bench started, ${loadavg()[0]!.toFixed(1)} after these runs.`,
      ],
    });

    const per = (xs: readonly number[]) =>
      minMedMax(
        xs.map((x) => x / entries.length),
        1,
      );
    const totalOf = (c: CpuSplit, extra = 0) => c.main + c.tile + c.other + extra;
    tables.push({
      title: `Where a tile's CPU goes: ms of CPU per tile by thread, one tile thread (${ROUNDS} paired runs, min / median / max)`,
      columns: [
        "executor",
        "tile thread",
        "main thread of the tile thread's process",
        "its other threads",
        "coordinator process",
        "nats-server",
        "total",
      ],
      rows: [
        [
          "in-process pool, 1 thread",
          per(threadSplits.map((c) => c.tile)),
          per(threadSplits.map((c) => c.main)),
          per(threadSplits.map((c) => c.other)),
          null,
          null,
          per(threadSplits.map((c) => totalOf(c))),
        ],
        [
          "stream, 1 `lanemap worker`",
          per(streamSplits.map((c) => c.tile)),
          per(streamSplits.map((c) => c.main)),
          per(streamSplits.map((c) => c.other)),
          per(streamSplits.map((c) => c.coordinator)),
          per(streamSplits.map((c) => c.nats)),
          per(streamSplits.map((c) => totalOf(c, c.coordinator + c.nats))),
        ],
        ...(BEFORE
          ? [
              [
                "stream, 1 `lanemap worker` (SCALE_BEFORE)",
                per(beforeSplits.map((c) => c.tile)),
                per(beforeSplits.map((c) => c.main)),
                per(beforeSplits.map((c) => c.other)),
                per(beforeSplits.map((c) => c.coordinator)),
                per(beforeSplits.map((c) => c.nats)),
                per(beforeSplits.map((c) => totalOf(c, c.coordinator + c.nats))),
              ],
            ]
          : []),
      ],
      notes: [
        "In-process, the tile thread's process is the coordinator itself (its main thread dispatches the tiles and takes the results). " +
          "/proc/<pid>/task/<tid>/stat per thread, read around the same drive; the tile thread is the busiest thread besides the main one.",
      ],
    });

    // The simulated fleet.
    const fleet = await entriesOf(fleetSet, "fleet");
    const fleetArtifact = new TextEncoder().encode(serializeModel(fleetSet.model));
    const fleetRows: (string | number | null)[][] = [];
    const fleetData: {
      n: number;
      tiles: number;
      tps: number[];
      tilesPerWorker: number[][];
      coordinatorCpuMsPerTile: number[];
      workersCpuMsPerTile: number[];
      natsCpuMsPerTile: number[];
      coresBusy: number[];
    }[] = [];
    let base: number | undefined;
    for (const n of FLEET) {
      const server = await startNatsServer();
      servers.push(server);
      const nc = await connectNats({ servers: server.url, name: "bench-fleet" });
      const models = await NatsModelRegistry.open(nc);
      await models.put(fleetSet.model);
      const workers = await startWorkers(n, server, fleet.config.dataDir, {
        LANEMAP_TEST_TILE_DELAY_MS: String(FLEET_DELAY_MS),
      });
      const tiles = fleet.entries.slice(0, n * FLEET_TILES_PER_WORKER);
      const rates: number[] = [];
      const splits: number[][] = [];
      const coordinatorCpu: number[] = [];
      const workersCpu: number[] = [];
      const natsCpu: number[] = [];
      const coresBusy: number[] = [];
      try {
        // r = -1: the untimed run (see the module comment).
        for (let r = -1; r < ROUNDS; r++) {
          const ex = await StreamTileExecutor.start({
            nc,
            config: fleet.config,
            logger,
            runId: runId(),
            artifact: fleetArtifact,
            models,
            tileIds: new Set(tiles.map((e) => e.tileId)),
          });
          try {
            const classified0 = workers.classified();
            const cpu0 = ownCpuMs();
            const workers0 = cpuMsOf(workers.pids);
            const nats0 = cpuMsOf([server.pid]);
            const ms = await drive(ex, tiles);
            const coordinatorMs = ownCpuMs() - cpu0;
            const workersMs = cpuMsOf(workers.pids) - workers0;
            const natsMs = cpuMsOf([server.pid]) - nats0;
            const cpuMsPerTile = coordinatorMs / tiles.length;
            // A worker logs its tile after the ack, so its line may come after the result did.
            const byWorker = async (): Promise<number[]> => {
              const until = Date.now() + 5_000;
              for (;;) {
                const counts = workers.classified().map((c, i) => c - classified0[i]!);
                if (counts.reduce((a, b) => a + b, 0) >= tiles.length || Date.now() > until) return counts;
                await new Promise((resolve) => setTimeout(resolve, 20));
              }
            };
            if (r >= 0) {
              rates.push((tiles.length * 1000) / ms);
              coordinatorCpu.push(cpuMsPerTile);
              workersCpu.push(workersMs / tiles.length);
              natsCpu.push(natsMs / tiles.length);
              coresBusy.push((coordinatorMs + workersMs + natsMs) / ms);
              splits.push((await byWorker()).sort((a, b) => a - b));
            }
          } finally {
            await ex.close();
          }
        }
      } finally {
        await workers.stop();
        await nc.close();
      }
      base ??= median(rates);
      fleetData.push({
        n,
        tiles: tiles.length,
        tps: rates,
        tilesPerWorker: splits,
        coordinatorCpuMsPerTile: coordinatorCpu,
        workersCpuMsPerTile: workersCpu,
        natsCpuMsPerTile: natsCpu,
        coresBusy,
      });
      const fewest = Math.min(...splits.map((c) => c[0] ?? 0));
      const most = Math.max(...splits.map((c) => c.at(-1) ?? 0));
      fleetRows.push([
        String(n),
        String(tiles.length),
        minMedMax(rates, 2),
        median(rates) / base,
        (n * 0.8).toFixed(1),
        fewest === most ? String(most) : `${fewest}–${most}`,
        minMedMax(coordinatorCpu, 2),
        minMedMax(workersCpu, 1),
        minMedMax(natsCpu, 2),
        minMedMax(coresBusy, 2),
      ]);
      console.error(`fleet ${n} done`);
    }
    tables.push({
      title: `Simulated fleet: worker processes with a fixed ${FLEET_DELAY_MS} ms per tile, ${FLEET_TILES_PER_WORKER} tiles per worker (${ROUNDS} runs, min / median / max)`,
      columns: [
        "workers N",
        "tiles",
        "tiles/s",
        "× one worker (median)",
        "target 0.8·N",
        "tiles per worker",
        "coordinator CPU ms per tile",
        "workers' CPU ms per tile",
        "nats-server CPU ms per tile",
        "cores busy (CPU ÷ wall)",
      ],
      rows: fleetRows,
      notes: [
        `Measured on ${availableParallelism()} cores shared with other jobs; the per-tile cost is a sleep, so N workers need no N cores. ` +
          `One untimed run per fleet size first; load average (1 min) ${loadavg()[0]!.toFixed(1)} at the end.`,
        coordinatorCeiling(fleetData),
      ],
    });
    for (const t of tables) printTable(t);
    writeResults(
      "scale",
      {
        tiles: entries.length,
        figures,
        overheadMsPerTile: overhead,
        cpuOverheadMsPerTile: cpuOverhead,
        classifyCpuMsPerTile: classifyCpuMs,
        classifyMsPerTile: classifyMs,
        cpuSplitMsPerRun: {
          threads1: threadSplits,
          stream1: streamSplits,
          ...(BEFORE ? { before1: beforeSplits } : {}),
        },
        ...(BEFORE ? { before: BEFORE } : {}),
        ...(large
          ? {
              large: {
                tileSize: LARGE_TILE_SIZE,
                tiles: LARGE_TILES,
                overheadMsPerTile: largeOverhead,
                cpuOverheadMsPerTile: largeCpuOverhead,
              },
            }
          : {}),
        fleet: fleetData,
      },
      tables,
    );
  } finally {
    for (const c of connections) await c.close().catch(() => undefined);
    for (const s of servers) await s.stop().catch(() => undefined);
    set.dispose();
    fleetSet.dispose();
    largeSet?.dispose();
  }
}

await main();
