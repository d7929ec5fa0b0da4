/**
 * `npm run bench:speed [-- --minutes N]`: the speed lane end to end, with real worker processes
 * (`node infra/bin/lanemap.js speed`) on a real nats-server.
 *
 * - bare: decode + classify of the same 256² × 6-band generated tiles in this process, no NATS;
 * - sustained throughput with 1 and 2 worker processes (each with one tile in flight, so a process
 *   is about one core of classification and the ratio shows how workers scale);
 * - publish -> queryable latency (visible in a LiveView follower) at a steady rate of half the
 *   one-worker capacity, for `--minutes` (default 2), with the worker's RSS sampled every second
 *   (growth is measured after a warm-up of the first quarter of the run).
 *
 * Targets: p99 latency <= 1.3 x bare p99 + 50 ms; 2 workers >= 1.7 x one; RSS growth <= 10 %.
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
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
import { printTable, writeResults } from "./harness.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "2" },
    "tiles-per-worker": { type: "string", default: "30" },
  },
});
const minutes = Number(values.minutes);
const perWorker = Number(values["tiles-per-worker"]);
if (!(minutes > 0) || !(perWorker > 0)) throw new Error("--minutes and --tiles-per-worker must be positive");

const TILE_SIZE = 256;
const POOL = 16;

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

const log = (msg: string) => process.stderr.write(`· ${msg}\n`);

/** CPU seconds (user + system, all threads) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

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
const bare: number[] = [];
for (let round = 0; round < 3; round++)
  for (const t of tiles) {
    const t0 = performance.now();
    classifier.classify(await decodeGeoTiff(t.bytes));
    if (round > 0) bare.push(performance.now() - t0);
  }
const bareP50 = percentile(bare, 50);
const bareP99 = percentile(bare, 99);
log(`bare decode+classify: p50 ${bareP50.toFixed(0)} ms, p99 ${bareP99.toFixed(0)} ms`);

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
  const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
  const t0 = performance.now();
  for (const [i, id] of ids.entries()) await s.publish(id, i);
  const last = await waitVisible(s, ids, 600_000);
  const cpuMsPerTile = ((pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0) * 1000) / ids.length;
  const rate = ids.length / ((last - t0) / 1000);
  log(
    `${n} worker(s): ${ids.length} tiles at ${rate.toFixed(2)} tiles/s, ${cpuMsPerTile.toFixed(0)} ms CPU per tile`,
  );
  return { rate, cpuMsPerTile };
}

const load0 = loadavg()[0] ?? NaN;
const tp1 = await throughput(1);
const tp2 = await throughput(2);
const one = tp1.rate;
const two = tp2.rate;

// Latency at half the one-worker capacity, with the worker's memory watched.
const rate = one / 2;
const latencies: number[] = [];
const rss: { t: number; mib: number }[] = [];
{
  await using s = await scenario(1);
  const pid = s.workers[0]!.child.pid as number;
  const warm = ["lat-warm-0", "lat-warm-1"];
  for (const [i, id] of warm.entries()) await s.publish(id, i);
  await waitVisible(s, warm, 120_000);
  const durationMs = minutes * 60_000;
  const intervalMs = 1000 / rate;
  log(
    `latency run: ${rate.toFixed(2)} tiles/s for ${minutes} min (1 tile every ${intervalMs.toFixed(0)} ms)`,
  );
  const sent = new Map<string, number>();
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
  for (const [id, t0] of sent) latencies.push((s.visible.get(id) as number) - t0);
}

const p50 = percentile(latencies, 50);
const p95 = percentile(latencies, 95);
const p99 = percentile(latencies, 99);
const latencyTarget = 1.3 * bareP99 + 50;
const warmUpMs = (minutes * 60_000) / 4;
const afterWarm = rss.filter((r) => r.t >= warmUpMs);
const rssWarm = afterWarm[0]?.mib ?? NaN;
const tail = afterWarm.slice(-10);
const rssEnd = tail.reduce((a, r) => a + r.mib, 0) / Math.max(1, tail.length);
const rssMax = Math.max(...afterWarm.map((r) => r.mib));
const growth = ((rssEnd - rssWarm) / rssWarm) * 100;
const scaling = two / one;

printTable({
  title: `Speed lane (${TILE_SIZE}² x 6-band tiles, model of ${model.samples.y.length} samples, k=${model.k})`,
  columns: ["measure", "value", "target", "met"],
  rows: [
    ["bare decode+classify p50 (ms)", bareP50, null, null],
    ["bare decode+classify p99 (ms)", bareP99, null, null],
    ["throughput, 1 worker (tiles/s)", one, null, null],
    ["throughput, 2 workers (tiles/s)", two, null, null],
    ["2 workers / 1 worker", scaling, ">= 1.7", scaling >= 1.7 ? "yes" : "no"],
    ["worker CPU per tile, 1 worker (ms)", tp1.cpuMsPerTile, null, null],
    ["worker CPU per tile, 2 workers (ms)", tp2.cpuMsPerTile, null, null],
    [`latency p50 at ${rate.toFixed(2)} tiles/s (ms)`, p50, null, null],
    [`latency p95 (ms)`, p95, null, null],
    [`latency p99 (ms)`, p99, `<= ${latencyTarget.toFixed(0)}`, p99 <= latencyTarget ? "yes" : "no"],
    ["worker RSS after warm-up (MiB)", rssWarm, null, null],
    ["worker RSS at end, last 10 s mean (MiB)", rssEnd, null, null],
    ["worker RSS max after warm-up (MiB)", rssMax, null, null],
    ["RSS growth after warm-up (%)", growth, "<= 10", growth <= 10 ? "yes" : "no"],
  ],
  notes: [
    `Latency: JetStream publish -> visible in a LiveView follower, ${latencies.length} tiles over ${minutes} min; ` +
      `target 1.3 x bare p99 + 50 ms. Workers run one tile in flight each (LANEMAP_SPEED_CONCURRENCY=1).`,
    "Throughput: a backlog of tiles published at once, until the last result is visible; tiles repeat a pool " +
      `of ${POOL} generated images under distinct tile ids (the archive stores each image once).`,
    `Machine: ${cpus().length} cores; 1-min load average ${load0.toFixed(1)} at the start and ` +
      `${(loadavg()[0] ?? NaN).toFixed(1)} at the end (other work shares the cores: throughput and ` +
      "scaling are bounded by the cores left free; CPU per tile is not).",
  ],
});
writeResults("speed", {
  tileSize: TILE_SIZE,
  bands: 6,
  model: { version: model.version, samples: model.samples.y.length, k: model.k },
  bare: { p50: bareP50, p99: bareP99, samples: bare.length },
  throughput: { one, two, scaling, cpuMsPerTile: { one: tp1.cpuMsPerTile, two: tp2.cpuMsPerTile } },
  loadAverage: { start: load0, end: loadavg()[0] ?? NaN },
  latency: { rate, p50, p95, p99, target: latencyTarget, count: latencies.length },
  rss: { warmUpMs, warm: rssWarm, end: rssEnd, max: rssMax, growthPercent: growth, samples: rss },
  minutes,
});
