/**
 * Issue 14's headline test, end to end with real processes only: a 3-node JetStream cluster on
 * loopback (every stream, KV and object store at R3), the master archive, the models and the
 * published views in it (LANEMAP_STORAGE=nats), three `lanemap worker` processes and a coordinator
 * (`lanemap batch run`, LANEMAP_BATCH_EXECUTOR=stream) each with an empty data directory of its
 * own, so nothing is shared but NATS; live tiles (some not GeoTIFFs) are ingested while the batch
 * run is on the work queue, and mid-run one nats-server node and one worker are SIGKILLed.
 *
 * Then the view publishes and equals the single-process view (threads executor, files storage) of
 * the same archive and model, class raster for class raster, byte for byte; every good live tile is
 * in the live view exactly once; the DLQ holds exactly the bad tiles; and two `lanemap serve`
 * processes with empty data directories switch to the new view and answer the same, naming it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { createBatchRunner } from "../../batch/index.js";
import { readCurrentBatch } from "../../shared/adapters/archive/index.js";
import {
  BATCH_TASK_CONSUMER,
  BATCH_TASK_STREAM,
  DeadLetterQueue,
  LiveView,
  NatsModelRegistry,
  NatsPublishedViews,
} from "../../shared/adapters/nats/index.js";
import { serializeModel } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { publishTile, type PublishedTile } from "../../speed/index.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { viewRasters, makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { js, lanemap, runLanemap, tempDir, testEnv, waitFor, type CliProcess } from "./speed-fixtures.js";

/** The generated archive: 8 x 8 tiles of 64 px (64 tiles), seed 7. */
const GRID = 8;
const TILE_PX = 64;
const SEED = 7;
/** Live tiles sent while the batch run is on the queue; every LIVE_BAD_EVERY-th is not a GeoTIFF. */
const LIVE_TILES = 12;
const LIVE_BAD_EVERY = 4;

/** Fields measured by the clock at the instant of asking (ages, staleness, snapshot time). */
const CLOCK_KEYS = new Set(["ageDays", "ageS", "sinceNewestResultS", "staleness", "snapshot"]);

/** The answer without what the clock changes between two requests (ages, staleness, snapshot time). */
function answerFacts(body: unknown): unknown {
  return JSON.parse(
    JSON.stringify(body, (key, value: unknown) => (CLOCK_KEYS.has(key) ? undefined : value)),
  ) as unknown;
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The base URL a `lanemap serve` child prints once it listens. */
async function servingUrl(p: CliProcess): Promise<string> {
  const line = await p.waitForLine(
    "lanemap serving at",
    (l) => typeof l["text"] === "string" && l["text"].startsWith("lanemap serving at "),
    90_000,
  );
  const url = /lanemap serving at (http:\/\/\S+)/.exec(String(line["text"]))?.[1];
  assert.ok(url, `a URL in ${String(line["text"])}`);
  return url;
}

/** The exit code of `p`, or a failure naming `what` when it runs longer than `timeoutMs`. */
async function exitWithin(p: CliProcess, what: string, timeoutMs: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} still running after ${timeoutMs} ms: ${p.stderr().slice(-2000)}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const workerReady = (l: Record<string, unknown>) => l["msg"] === "worker ready: speed + batch";
const batchTileDone = (l: Record<string, unknown>) =>
  l["msg"] === "batch tile classified" || l["msg"] === "batch tile failed";

describe("issue 14: one batch run and live ingest on a 3-node cluster", { skip: natsMissing() }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: GRID, height: GRID, tileSize: TILE_PX, seed: SEED });
  });
  after(() => set?.dispose());

  test(
    "with a nats-server node and a worker SIGKILLed mid-run, the view equals the single-process one byte for byte, no live tile is lost or counted twice, the DLQ holds exactly the bad tiles, and two serve processes answer the same",
    { timeout: 300_000 },
    async (t) => {
      // The reference: one process, worker_threads, the files archive and views.
      const reference = await makeDataDir(set, "reference");
      const refReport = await createBatchRunner(reference.config({ LANEMAP_BATCH_WORKERS: "1" }), {
        logger: testLogger(),
      }).run({ model: set.modelPath });
      assert.equal(refReport.tiles.failed, 0);
      const refCurrent = await readCurrentBatch(reference.dataDir);
      assert.ok(refCurrent, "the reference view is published");
      const expected = await viewRasters(refCurrent.dir);
      assert.equal(expected.size, GRID * GRID);

      await using cluster = await startNatsCluster();
      await using coordDir = await tempDir("lanemap-scale-coord-");
      await using probeDir = await tempDir("lanemap-scale-probe-");
      const workerDirs = [
        await tempDir("lanemap-scale-w1-"),
        await tempDir("lanemap-scale-w2-"),
        await tempDir("lanemap-scale-w3-"),
      ];
      const serveDirs = [await tempDir("lanemap-scale-sa-"), await tempDir("lanemap-scale-sb-")];
      await using _dirs = {
        [Symbol.asyncDispose]: async () => {
          for (const d of [...workerDirs, ...serveDirs]) await d[Symbol.asyncDispose]();
        },
      };
      const env = (dataDir: string, extra: Record<string, string> = {}) =>
        testEnv(dataDir, {
          NATS_URL: cluster.natsUrl,
          LANEMAP_STORAGE: "nats",
          LANEMAP_NATS_REPLICAS: "3",
          LANEMAP_BATCH_EXECUTOR: "stream",
          LANEMAP_BATCH_WORKERS: "1",
          // Room for a redelivery after a node's loss on top of a worker's.
          LANEMAP_MAX_DELIVER: "6",
          LANEMAP_OPERATOR_TOKEN: "",
          LANEMAP_LOG_LEVEL: "info",
          ...extra,
        });

      // The model every lane uses, active in the R3 registry.
      const registry = await NatsModelRegistry.open(cluster.nc, { replicas: 3 });
      await registry.upload(set.model.version, new TextEncoder().encode(serializeModel(set.model)));
      await registry.activate(set.model.version);

      // The master archive in JetStream, loaded by the CLI from the coordinator's (empty) machine.
      const loaded = await runLanemap(["archive", "add", set.tilesDir, "--json"], env(coordDir.path));
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.equal((JSON.parse(loaded.stdout) as { added: number }).added, GRID * GRID, loaded.stdout);

      const processes: CliProcess[] = [];
      await using _processes = {
        [Symbol.asyncDispose]: async () => {
          for (const p of processes) await p[Symbol.asyncDispose]();
        },
      };
      // Each batch tile costs 400 ms more in a worker's thread, so the run lasts long enough to
      // lose a node and a worker in the middle of it.
      const startWorker = (i: number) => {
        const w = lanemap(
          ["worker", "--name", `w${i + 1}`],
          env(workerDirs[i]!.path, { LANEMAP_TEST_TILE_DELAY_MS: "400" }),
        );
        processes.push(w);
        return w;
      };
      // The first worker creates the streams and buckets at R3; the others then find them (several
      // processes creating the same R3 streams at once on a loaded machine time out their requests).
      const workers = [startWorker(0)];
      await workers[0]!.waitForLine("w1 ready", workerReady, 90_000);
      workers.push(startWorker(1), startWorker(2));
      const serves = serveDirs.map((d) => lanemap(["serve", "--port", "0"], env(d.path)));
      processes.push(...serves);
      await Promise.all(workers.map((w) => w.waitForLine("worker ready", workerReady, 90_000)));
      const urls = await Promise.all(serves.map(servingUrl));
      for (const url of urls) {
        const views = await getJson(`${url}/v1/views`);
        assert.equal((views.body["batch"] as { state: string }).state, "none-yet", "no view before the run");
      }

      const jsm = await jetstreamManager(cluster.nc);
      const coordinator = lanemap(["batch", "run", "--model", set.modelPath, "--json"], env(coordDir.path));
      processes.push(coordinator);
      // The run set is read before the first task goes out: live tiles sent from now on are the
      // speed lane's alone, so the batch view holds exactly the 64 archive tiles.
      const [w1] = workers as [CliProcess, CliProcess, CliProcess];
      await w1.waitForLine("w1's first batch tile", batchTileDone, 120_000);

      const good = new Map<string, PublishedTile>();
      const bad = new Map<string, PublishedTile>();
      const garbage = new TextEncoder().encode("this is not a GeoTIFF");
      const sendLive = async (i: number) => {
        const t = generateTile({
          seed: SEED,
          // Cells east of the archive: the batch view and the live view never share a cell.
          col: GRID + (i % 3),
          row: Math.floor(i / 3),
          tileSize: TILE_PX,
          acquired: "2025-03-01T10:00:00Z",
        });
        const isBad = i % LIVE_BAD_EVERY === LIVE_BAD_EVERY - 1;
        const meta = {
          cell: t.cell,
          acquired: "2025-03-01T10:00:00Z",
          tileId: isBad ? `${t.cell}-bad-${i}` : `${t.cell}-20250301T100000Z`,
        };
        // Retried while the cluster elects new leaders; Nats-Msg-Id makes a retry that did land a no-op.
        const sent = await waitFor(
          `publishing live tile ${i}`,
          () => publishTile(js(cluster.nc), isBad ? garbage : t.bytes, meta, { timeoutMs: 2000 }),
          60_000,
        );
        (isBad ? bad : good).set(meta.tileId, sent);
      };
      for (let i = 0; i < LIVE_TILES / 2; i++) await sendLive(i);

      // Mid-run: batch tasks are queued or held by workers when the task stream's leader dies, then w1.
      const queue = await jsm.consumers.info(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER);
      assert.ok(
        queue.num_pending + queue.num_ack_pending > 0,
        `batch tasks in flight at the kill (pending ${queue.num_pending}, unacknowledged ${queue.num_ack_pending})`,
      );
      const leader = (await jsm.streams.info(BATCH_TASK_STREAM)).cluster?.leader;
      const victim = NODE_NAMES.indexOf(leader as (typeof NODE_NAMES)[number]);
      assert.ok(victim >= 0, `the task stream has a leader among the nodes (got ${String(leader)})`);
      await cluster.kill(victim);
      w1.child.kill("SIGKILL");
      assert.equal(await w1.exited, "SIGKILL");
      for (let i = LIVE_TILES / 2; i < LIVE_TILES; i++) await sendLive(i);
      // The node comes back while the run still has most of its tiles to do. It has to: nats-server
      // before 2.12 (Debian's is 2.9.10) may place an ephemeral R1 consumer — every object store
      // read and list is one — on an offline peer, about one time in three (nats-server PR #7165),
      // so with the node gone a third of archive reads time out (the workers retry those tiles on a
      // redelivery) and so would the publisher's listing of the views.
      await cluster.restart(victim);
      t.diagnostic(
        `node ${NODE_NAMES[victim]} back; the coordinator ${coordinator.child.exitCode === null ? "still running" : "already done"}`,
      );

      // The run finishes on the two workers left, and publishes.
      const code = await exitWithin(coordinator, "the coordinator", 180_000);
      const warnings = () =>
        workers
          .flatMap((w) => w.lines.filter((l) => Number(l["level"]) >= 40))
          .map((l) => JSON.stringify(l))
          .join("\n");
      assert.equal(code, 0, `${coordinator.stderr().slice(-3000)}\nthe workers' warnings:\n${warnings()}`);
      const report = JSON.parse(coordinator.out.join("\n")) as {
        version: string;
        modelVersion: string;
        tiles: { total: number; classified: number; failed: number };
      };
      assert.equal(report.modelVersion, set.model.version);
      assert.equal(report.tiles.total, GRID * GRID);
      assert.equal(report.tiles.failed, 0, `no archive tile failed; the workers' warnings:\n${warnings()}`);
      const redelivered = workers.flatMap((w) =>
        w.lines.filter((l) => batchTileDone(l) && Number(l["deliveries"]) > 1),
      );
      t.diagnostic(
        `tasks finished on a redelivery: ${redelivered.length}; worker warnings: ${warnings().split("\n").filter(Boolean).length}`,
      );
      if (process.env["LANEMAP_TEST_LOG"]) t.diagnostic(warnings());
      const survivors = workers.slice(1).flatMap((w) => w.lines.filter(batchTileDone));
      assert.ok(survivors.length > 0, "the two workers left classified batch tiles");

      // The published view, read the way any machine reads it: CURRENT in KV, the files from the
      // object store into a local cache.
      const views = await NatsPublishedViews.open(cluster.nc, {
        cacheDir: join(probeDir.path, "views"),
        replicas: 3,
      });
      const current = await views.current();
      assert.equal(current?.name, report.version, "CURRENT names the run's version");
      const streamed = await viewRasters(await views.materialize(report.version));
      assert.deepEqual(
        [...streamed.keys()],
        [...expected.keys()],
        "the same tiles as the single-process view",
      );
      for (const [tileId, raster] of expected)
        assert.ok(raster.equals(streamed.get(tileId)!), `class raster of ${tileId} equals byte for byte`);

      // Live: every good tile once, at its one ingest sequence; the DLQ holds exactly the bad ones.
      const live = await LiveView.open(cluster.nc, { replicas: 3 });
      const snapshot = await waitFor(
        "every good live tile in the live view",
        async () => {
          const entries = await live.list();
          return entries.length >= good.size ? entries : undefined;
        },
        90_000,
      );
      const byTile = new Map<string, number>();
      for (const e of snapshot) byTile.set(e.result.tileId, (byTile.get(e.result.tileId) ?? 0) + 1);
      assert.deepEqual([...byTile.keys()].sort(), [...good.keys()].sort(), "every good live tile, no other");
      assert.ok(
        [...byTile.values()].every((n) => n === 1),
        `each live tile once: ${JSON.stringify([...byTile])}`,
      );
      for (const e of snapshot)
        assert.equal(
          e.result.ingestSeq,
          good.get(e.result.tileId)?.seq,
          `${e.result.tileId}: its ingest seq`,
        );
      const letters = await waitFor(
        "every bad live tile dead-lettered",
        async () => {
          const l = await (await DeadLetterQueue.open(cluster.nc)).list();
          return l.length >= bad.size ? l : undefined;
        },
        90_000,
      );
      assert.deepEqual(letters.map((l) => l.tileId).sort(), [...bad.keys()].sort(), "exactly the bad tiles");

      // Serving: both instances switch to the new version and answer the same.
      const answers: { views: unknown; point: unknown }[] = [];
      const tiles = await waitFor(
        "serve A's batch tiles",
        async () => {
          const r = await getJson(`${urls[0]}/v1/tiles?limit=500`);
          const items = (r.body["items"] ?? []) as { cell: string; lane: string; bbox: number[] }[];
          return items.some((t) => t.lane === "batch") ? items : undefined;
        },
        60_000,
      );
      const probe = tiles.find((t) => t.lane === "batch")!;
      const [minLon, minLat, maxLon, maxLat] = probe.bbox as [number, number, number, number];
      for (const url of urls) {
        const v = await waitFor(
          `${url} serving ${report.version}`,
          async () => {
            const r = await getJson(`${url}/v1/views`);
            const batch = r.body["batch"] as { current: string | null };
            return r.status === 200 && batch.current === report.version ? r.body : undefined;
          },
          90_000,
        );
        const point = await getJson(
          `${url}/v1/point?lon=${(minLon + maxLon) / 2}&lat=${(minLat + maxLat) / 2}`,
        );
        assert.equal(point.status, 200, JSON.stringify(point.body));
        answers.push({ views: answerFacts(v), point: answerFacts(point.body) });
      }
      const [a, b] = answers as [(typeof answers)[number], (typeof answers)[number]];
      assert.deepEqual(a.views, b.views, "both instances list the same views");
      assert.deepEqual(a.point, b.point, "both instances answer the point the same");
      const versionNumber = Number(report.version.replace(/^v0*/, ""));
      assert.match(
        JSON.stringify(a.point),
        new RegExp(`"batchVersion":${versionNumber}\\b`),
        `the point names view ${report.version}: ${JSON.stringify(a.point)}`,
      );
    },
  );
});
