/**
 * `npm run bench:speed [-- --rounds 5 --latency-seconds 40 --tiles-per-worker 30]`: the speed lane
 * end to end, with real worker processes (`node infra/bin/lanemap.js speed`) on a real nats-server,
 * against its peer: bare decode + classify of the same tiles in this process, no NATS.
 *
 * Each round (default 5) measures both sides, the side that goes first alternating by round
 * (rounds.ts), and the lane in fresh processes (a new nats-server and new workers per scenario):
 *
 * - bare: decode + classify of 16 generated 256² × 6-band tiles, twice; wall ms per tile (p50, p99)
 *   and this process's CPU ms per tile;
 * - sustained throughput with 1 and 2 worker processes (each with one tile in flight, so a process
 *   is about one core of classification and the ratio shows how workers scale), and the workers'
 *   CPU ms per tile over the same span;
 * - publish -> queryable latency (visible in a LiveView follower) at a steady rate of half the
 *   round's one-worker capacity, for `--latency-seconds`, with the worker's RSS sampled every second
 *   (growth is measured after a warm-up of the first quarter of the run).
 *
 * Ratios (2 workers ÷ 1, lane ÷ bare) are paired within a round; every figure is min / median / max
 * over the rounds. CPU per tile is the figure the machine's other load inflates least.
 *
 * Targets: p99 latency <= 1.3 x bare p99 + 50 ms (the same round's bare p99); 2 workers >= 1.7 x
 * one; RSS growth <= 10 %.
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { LiveView } from "../../shared/adapters/nats/index.js";
import { createClassifier, decodeGeoTiff } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { startNatsServer, type NatsServer } from "../../infra/nats/launcher.js";
import { publishTile } from "../../speed/index.js";
import {
  activateModel,
  lanemap,
  tempDir,
  testEnv,
  testModel,
  type CliProcess,
} from "../integration/speed-fixtures.js";
import { minMedMax, printTable, spreadOf, writeResults, type Cell } from "./harness.js";
import {
  digitsFor,
  heldIn,
  loadNow,
  paired,
  positiveInt,
  processCpuSeconds,
  sidesOf,
  stat,
} from "./rounds.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string" },
    "latency-seconds": { type: "string" },
    "tiles-per-worker": { type: "string" },
  },
});
const ROUNDS = positiveInt("--rounds", values.rounds, 5);
const LATENCY_S = positiveInt("--latency-seconds", values["latency-seconds"], 40);
const perWorker = positiveInt("--tiles-per-worker", values["tiles-per-worker"], 30);

const TILE_SIZE = 256;
const POOL = 16;

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

const log = (msg: string) => process.stderr.write(`· ${msg}\n`);

function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

const model = await testModel();
log(`model ${model.version}: ${model.samples.y.length} samples, k=${model.k}`);
const tiles = Array.from({ length: POOL }, (_, i) =>
  generateTile({ seed: 21, col: i, row: 0, tileSize: TILE_SIZE, bands: 6, acquired: "2024-10-01T10:00:00Z" }),
);
log(`${POOL} tiles of ${TILE_SIZE}² x 6 bands, ${Math.round(tiles[0]!.bytes.length / 1024)} KB each`);

// Bare: what one tile costs without NATS, the archive or threads.
const classifier = createClassifier(model);

interface Bare {
  p50: number;
  p99: number;
  /** This process's CPU time (user + system) per tile, ms. */
  cpuMsPerTile: number;
  samples: number[];
}

/** Decode + classify every pool tile `passes` times in this process. */
async function bareSide(passes: number): Promise<Bare> {
  const samples: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let pass = 0; pass < passes; pass++)
    for (const t of tiles) {
      const t0 = performance.now();
      classifier.classify(await decodeGeoTiff(t.bytes));
      samples.push(performance.now() - t0);
    }
  const cpu = process.cpuUsage(cpu0);
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    cpuMsPerTile: (cpu.user + cpu.system) / 1000 / samples.length,
    samples,
  };
}

interface Scenario extends AsyncDisposable {
  readonly server: NatsServer;
  readonly nc: NatsConnection;
  readonly workers: CliProcess[];
  /** Time each tile id became visible in the follower (performance.now()). */
  readonly visible: Map<string, number>;
  publish(tileId: string, i: number): Promise<void>;
}

async function scenario(workerCount: number): Promise<Scenario> {
  const server = await startNatsServer();
  const dir = await tempDir("lanemap-bench-speed-");
  const nc = await connect({ servers: server.url, name: "bench" });
  await activateModel(nc, model);
  const env = testEnv(dir.path, {
    NATS_URL: server.url,
    LANEMAP_LOG_LEVEL: "info",
    LANEMAP_SPEED_CONCURRENCY: "1",
    LANEMAP_ACK_WAIT_S: "30",
    LANEMAP_DECODE_TIMEOUT_MS: "60000",
  });
  const workers = Array.from({ length: workerCount }, (_, i) => lanemap(["speed", "--name", `w${i}`], env));
  await Promise.all(
    workers.map((w) => w.waitForLine("worker start", (l) => l["msg"] === "speed worker started", 60_000)),
  );
  const visible = new Map<string, number>();
  const follower = await (
    await LiveView.open(nc)
  ).follow((c) => {
    if (c.entry && !visible.has(c.entry.result.tileId)) visible.set(c.entry.result.tileId, performance.now());
  });
  const js = jetstream(nc);
  return {
    server,
    nc,
    workers,
    visible,
    async publish(tileId, i) {
      const t = tiles[i % POOL]!;
      await publishTile(js, t.bytes, { tileId, cell: t.cell, acquired: t.acquired });
    },
    async [Symbol.asyncDispose]() {
      follower.stop();
      for (const w of workers) w.child.kill("SIGTERM");
      await Promise.all(workers.map((w) => w.exited));
      await nc.close();
      await server.stop();
      await dir[Symbol.asyncDispose]();
    },
  };
}

async function waitVisible(s: Scenario, ids: readonly string[], timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last = 0;
    let all = true;
    for (const id of ids) {
      const t = s.visible.get(id);
      if (t === undefined) {
        all = false;
        break;
      }
      last = Math.max(last, t);
    }
    if (all) return last;
    if (Date.now() > deadline)
      throw new Error(
        `only ${ids.filter((id) => s.visible.has(id)).length}/${ids.length} tiles visible in time`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Tiles/s with `n` worker processes: a backlog published at once, time to the last visible result;
 * and the workers' CPU time per tile over the same span (what a tile costs whatever the machine's load).
 */
async function throughput(n: number): Promise<{ rate: number; cpuMsPerTile: number }> {
  await using s = await scenario(n);
  // Warm-up: threads started, model built, caches warm in every worker.
  const warm = Array.from({ length: 2 * n }, (_, i) => `warm-${n}-${i}`);
  for (const [i, id] of warm.entries()) await s.publish(id, i);
  await waitVisible(s, warm, 120_000);
  const ids = Array.from({ length: perWorker * n }, (_, i) => `tp-${n}-${i}`);
  const pids = s.workers.map((w) => w.child.pid as number);
  const cpu0 = pids.reduce((a, p) => a + processCpuSeconds(p), 0);
  const t0 = performance.now();
  for (const [i, id] of ids.entries()) await s.publish(id, i);
  const last = await waitVisible(s, ids, 600_000);
  const cpuMsPerTile = ((pids.reduce((a, p) => a + processCpuSeconds(p), 0) - cpu0) * 1000) / ids.length;
  const rate = ids.length / ((last - t0) / 1000);
  log(
    `${n} worker(s): ${ids.length} tiles at ${rate.toFixed(2)} tiles/s, ${cpuMsPerTile.toFixed(0)} ms CPU per tile`,
  );
  return { rate, cpuMsPerTile };
}

interface Latency {
  /** Tiles/s published: half the round's one-worker throughput. */
  rate: number;
  p50: number;
  p95: number;
  p99: number;
  samples: number[];
  rss: { warmUpMs: number; warm: number; end: number; max: number; growthPercent: number };
}

/** Publish -> visible latency at a steady `rate`, one fresh worker, its RSS watched. */
async function latency(rate: number): Promise<Latency> {
  await using s = await scenario(1);
  const pid = s.workers[0]!.child.pid as number;
  const warm = ["lat-warm-0", "lat-warm-1"];
  for (const [i, id] of warm.entries()) await s.publish(id, i);
  await waitVisible(s, warm, 120_000);
  const durationMs = LATENCY_S * 1000;
  const intervalMs = 1000 / rate;
  log(
    `latency run: ${rate.toFixed(2)} tiles/s for ${LATENCY_S} s (1 tile every ${intervalMs.toFixed(0)} ms)`,
  );
  const sent = new Map<string, number>();
  const rss: { t: number; mib: number }[] = [];
  const start = performance.now();
  const sampler = setInterval(() => {
    const mib = rssMiB(pid);
    if (mib !== null) rss.push({ t: performance.now() - start, mib });
  }, 1000);
  for (let i = 0; performance.now() - start < durationMs; i++) {
    // A steady schedule: the i-th tile goes at start + i * interval, however long publishing took.
    const due = start + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const id = `lat-${i}`;
    sent.set(id, performance.now());
    await s.publish(id, i);
  }
  await waitVisible(s, [...sent.keys()], 120_000);
  clearInterval(sampler);
  const samples = [...sent].map(([id, t0]) => (s.visible.get(id) as number) - t0);
  const warmUpMs = durationMs / 4;
  const afterWarm = rss.filter((r) => r.t >= warmUpMs);
  const rssWarm = afterWarm[0]?.mib ?? NaN;
  const tail = afterWarm.slice(-10);
  const rssEnd = tail.reduce((a, r) => a + r.mib, 0) / Math.max(1, tail.length);
  return {
    rate,
    p50: percentile(samples, 50),
    p95: percentile(samples, 95),
    p99: percentile(samples, 99),
    samples,
    rss: {
      warmUpMs,
      warm: rssWarm,
      end: rssEnd,
      max: Math.max(...afterWarm.map((r) => r.mib)),
      growthPercent: ((rssEnd - rssWarm) / rssWarm) * 100,
    },
  };
}

interface Round {
  load: number;
  order: string[];
  bare: Bare;
  one: { rate: number; cpuMsPerTile: number };
  two: { rate: number; cpuMsPerTile: number };
  latency: Latency;
}

// JIT, the classifier's index and the decoder warm before the first round's bare side.
await bareSide(1);
const rounds: Round[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const load = loadNow();
  const order = sidesOf(r, ["bare", "lane"] as const);
  log(`round ${r + 1}/${ROUNDS}: ${order.join(" then ")} (load ${load})`);
  let bare: Bare | undefined;
  let lane: Omit<Round, "load" | "order" | "bare"> | undefined;
  for (const side of order) {
    if (side === "bare") {
      bare = await bareSide(2);
      log(`bare decode+classify: p50 ${bare.p50.toFixed(0)} ms, p99 ${bare.p99.toFixed(0)} ms`);
    } else {
      const one = await throughput(1);
      const two = await throughput(2);
      lane = { one, two, latency: await latency(one.rate / 2) };
    }
  }
  rounds.push({ load, order: [...order], bare: bare!, ...lane! });
}

const series = (f: (r: Round) => number) => rounds.map(f);
const bareP99 = series((r) => r.bare.p99);
const latP99 = series((r) => r.latency.p99);
const latTarget = bareP99.map((b) => 1.3 * b + 50);
const scaling = paired(
  series((r) => r.two.rate),
  series((r) => r.one.rate),
);
const growth = series((r) => r.latency.rss.growthPercent);
// Every round's samples together: a p99 over a few hundred tiles rather than a few dozen.
const pooledBareP99 = percentile(
  rounds.flatMap((r) => r.bare.samples),
  99,
);
const pooledLat = rounds.flatMap((r) => r.latency.samples);
const pooledP99 = percentile(pooledLat, 99);
const pooledTarget = 1.3 * pooledBareP99 + 50;
const verdicts = {
  latencyP99: latP99.map((p, i) => p <= (latTarget[i] ?? NaN)),
  scaling: scaling.map((x) => x >= 1.7),
  rssGrowth: growth.map((g) => g <= 10),
};

const mmm = (xs: readonly number[], suffix = "") => minMedMax(xs, digitsFor(xs), suffix);
const row = (
  measure: string,
  xs: readonly number[],
  target: string | null = null,
  ok: readonly boolean[] | null = null,
): Cell[] => [
  measure,
  mmm(xs),
  // max / min only means something for positive figures (RSS growth can be negative).
  xs.every((x) => x > 0) ? spreadOf(xs) : null,
  target,
  ok ? heldIn(ok) : null,
];
const table = {
  title: `Speed lane: ${TILE_SIZE}² x 6-band tiles, model of ${model.samples.y.length} samples (k=${model.k}), ${ROUNDS} interleaved rounds (min / median / max)`,
  columns: ["measure", "min / median / max", "spread (max/min)", "target", "verdict"],
  rows: [
    row(
      "bare decode+classify p50 (ms)",
      series((r) => r.bare.p50),
    ),
    row("bare decode+classify p99 (ms)", bareP99),
    row(
      "bare CPU per tile (ms)",
      series((r) => r.bare.cpuMsPerTile),
    ),
    row(
      "throughput, 1 worker (tiles/s)",
      series((r) => r.one.rate),
    ),
    row(
      "throughput, 2 workers (tiles/s)",
      series((r) => r.two.rate),
    ),
    row("2 workers ÷ 1 worker (paired)", scaling, "≥ 1.7", verdicts.scaling),
    row(
      "worker CPU per tile, 1 worker (ms)",
      series((r) => r.one.cpuMsPerTile),
    ),
    row(
      "worker CPU per tile, 2 workers (ms)",
      series((r) => r.two.cpuMsPerTile),
    ),
    row(
      "worker CPU per tile, 1 worker ÷ bare (paired)",
      paired(
        series((r) => r.one.cpuMsPerTile),
        series((r) => r.bare.cpuMsPerTile),
      ),
    ),
    row(
      "latency rate: half of 1 worker (tiles/s)",
      series((r) => r.latency.rate),
    ),
    row(
      "latency p50 (ms)",
      series((r) => r.latency.p50),
    ),
    row(
      "latency p95 (ms)",
      series((r) => r.latency.p95),
    ),
    row("latency p99 (ms)", latP99, "≤ 1.3 × bare p99 + 50 (same round)", verdicts.latencyP99),
    row("latency p99 ÷ bare p99 (paired)", paired(latP99, bareP99)),
    [
      `latency p99, all ${pooledLat.length} tiles pooled (ms)`,
      pooledP99,
      null,
      `≤ ${pooledTarget.toFixed(0)} (pooled bare p99 ${pooledBareP99.toFixed(0)})`,
      pooledP99 <= pooledTarget ? "met" : "missed",
    ],
    row(
      "worker RSS after warm-up (MiB)",
      series((r) => r.latency.rss.warm),
    ),
    row(
      "worker RSS max after warm-up (MiB)",
      series((r) => r.latency.rss.max),
    ),
    row("RSS growth after warm-up (%)", growth, "≤ 10", verdicts.rssGrowth),
  ] satisfies Cell[][],
  notes: [
    `Latency: JetStream publish -> visible in a LiveView follower, ${LATENCY_S} s per round at half that round's one-worker throughput (first quarter is the RSS warm-up); ` +
      `target 1.3 × the same round's bare p99 + 50 ms. Workers run one tile in flight each (LANEMAP_SPEED_CONCURRENCY=1).`,
    `Throughput: a backlog of ${perWorker} tiles per worker published at once, until the last result is visible; tiles repeat a pool ` +
      `of ${POOL} generated images under distinct tile ids (the archive stores each image once). Bare: the same ${POOL} tiles decoded and classified twice per round in the bench process.`,
    "Each round: the bare side in this process and the lane in fresh processes (a new nats-server and new `lanemap speed` workers for each of the 1-worker, 2-worker and latency runs), the side that goes first alternating by round. " +
      "CPU per tile (user + system, /proc for the workers, process.cpuUsage for bare) is what a tile costs whatever the machine's load; throughput, scaling and latency are bounded by the cores other work leaves free.",
    `Machine: ${cpus().length} cores; 1-minute load average when each round started: ${minMedMax(
      series((r) => r.load),
      2,
    )} (min / median / max).`,
  ],
};
printTable(table);
writeResults(
  "speed",
  {
    tileSize: TILE_SIZE,
    bands: 6,
    model: { version: model.version, samples: model.samples.y.length, k: model.k },
    rounds: ROUNDS,
    latencySeconds: LATENCY_S,
    tilesPerWorker: perWorker,
    stats: {
      bareP50: stat(series((r) => r.bare.p50)),
      bareP99: stat(bareP99),
      bareCpuMsPerTile: stat(series((r) => r.bare.cpuMsPerTile)),
      one: stat(series((r) => r.one.rate)),
      two: stat(series((r) => r.two.rate)),
      scaling: stat(scaling),
      cpuMsPerTileOne: stat(series((r) => r.one.cpuMsPerTile)),
      cpuMsPerTileTwo: stat(series((r) => r.two.cpuMsPerTile)),
      latencyP50: stat(series((r) => r.latency.p50)),
      latencyP99: stat(latP99),
      rssGrowthPercent: stat(growth),
    },
    pooled: { bareP99: pooledBareP99, latencyP99: pooledP99, target: pooledTarget, count: pooledLat.length },
    verdicts,
    perRound: rounds.map(({ bare, latency: lat, ...r }) => ({
      ...r,
      bare: { p50: bare.p50, p99: bare.p99, cpuMsPerTile: bare.cpuMsPerTile },
      latency: {
        rate: lat.rate,
        p50: lat.p50,
        p95: lat.p95,
        p99: lat.p99,
        count: lat.samples.length,
        rss: lat.rss,
      },
    })),
  },
  [table],
);
