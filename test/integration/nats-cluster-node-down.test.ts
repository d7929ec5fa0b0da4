/**
 * Cluster test (3-node JetStream cluster on loopback, one node SIGKILLed): the ordinary commands
 * succeed every time, not two times in three.
 *
 * Why: nats-server before 2.12 (Debian ships 2.9.10) may place an ephemeral R1 consumer on an
 * offline peer (nats-server PR #7165), and every KV `keys()`, object store `list()`/`get()` and
 * ordered consumer is one. A new operator with one node down saw `lanemap worker` die 6 times in 8
 * with a bare "lanemap: timeout" (the model registry's `keys()` at start-up), `model list`,
 * `dlq list` and batch retention fail at random (issue 14, F1). Each step below runs 5 times in a
 * row, so a read that meets the dead node about one time in three fails the test almost surely.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { applyRetention } from "../../batch/index.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { BatchViewSource } from "../../serving/view/batch-source.js";
import { LruCache } from "../../serving/view/lru-cache.js";
import {
  DeadLetterQueue,
  NatsModelRegistry,
  NatsPublishedViews,
  ensureStreams,
} from "../../shared/adapters/nats/index.js";
import { dataPaths, versionName, type ClassRaster } from "../../shared/index.js";
import { startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.js";
import { natsMissing } from "../helpers/nats.js";
import { writeNumberedVersion } from "../helpers/serving-views.js";
import {
  lanemap,
  runLanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
} from "./speed-fixtures.js";

const workerReady = (l: Record<string, unknown>): boolean => l["msg"] === "worker ready: speed + batch";

/** A switch slower than this fails the test (all nodes up it takes about 0.5 s; with a consumer on the dead node it took 11-37 s before issue 14 F7). */
const SWITCH_BOUND_MS = 10_000;
/** A run of a repeated step slower than this fails the test (a consumer on the dead node made one take 10-60 s before issue 14). */
const RUN_BOUND_MS = 10_000;
/**
 * One `lanemap` command slower than this fails the test: a command that met a consumer on the dead
 * node waited out a request timeout and failed, or took 10-60 s retrying (issue 14). Each command is
 * bounded on its own, not a model list and a dlq list together: the pair also pays two Node
 * start-ups and module loads, which say how busy the machine is, not whether a command waited on the
 * dead node (a pair took 3.0-3.4 s here at load 4-12, and missed a 10 s bound at 11.5-13.1 s at load
 * 10-12).
 */
const COMMAND_BOUND_MS = 10_000;
/** Times each step runs in a row with the node down. */
const RUNS = 5;
/** Dead letters stored before the node is killed. */
const LETTERS = 3;
/** The node killed: not the one the test's connection prefers (it reconnects either way). */
const DEAD = 2;

/**
 * Waits until every stream (and so every bucket) has a leader again. The streams the killed node
 * led elect a new one a few seconds after the kill (up to 11 s at load 9-15 on 2 cores): that is
 * the kill's cost, paid once, not what the cases below measure — each run of a step with the
 * node down, bounded by RUN_BOUND_MS.
 */
async function streamLeadersElected(cluster: NatsCluster, timeoutMs = 60_000): Promise<void> {
  const jsm = await jetstreamManager(cluster.nc, { checkAPI: false, timeout: 2_000 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leaderless: string[] = [];
    try {
      for (const name of await jsm.streams.names().next()) {
        const info = await jsm.streams.info(name).catch(() => null);
        if (!info?.cluster?.leader) leaderless.push(name);
      }
      if (leaderless.length === 0) return;
    } catch {
      leaderless.push("(stream names)");
    }
    if (Date.now() > deadline) throw new Error(`no leader after ${timeoutMs} ms: ${leaderless.join(", ")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("cluster test: with one node of a 3-node cluster SIGKILLed", { skip: natsMissing() }, () => {
  let cluster: NatsCluster;
  let dir: { path: string } & AsyncDisposable;
  let modelVersion: string;

  before(async () => {
    cluster = await startNatsCluster();
    dir = await tempDir("lanemap-node-down-");
    const registry = await NatsModelRegistry.open(cluster.nc, { replicas: 3 });
    const model = await testModel();
    await registry.put(model);
    await registry.activate(model.version);
    modelVersion = model.version;
    const config = testConfig(dir.path, { LANEMAP_NATS_REPLICAS: "3" });
    await ensureStreams(await jetstreamManager(cluster.nc), config.stream, 3);
    const dlq = await DeadLetterQueue.open(cluster.nc);
    for (let i = 1; i <= LETTERS; i++)
      await dlq.add({
        originalSeq: i,
        subject: `tiles.in.c000${i}r0000`,
        headers: headers(),
        data: new TextEncoder().encode("not a tiff"),
        code: "TILE_DECODE",
        reason: "not a TIFF",
        deliveries: 1,
      });
    {
      // A deployment that ran before the node died: one worker has made every stream and bucket at
      // R3 (a new R3 stream cannot be placed on two nodes; that is not what this test is about).
      await using data = await tempDir("lanemap-node-down-worker-");
      await using worker = lanemap(
        ["worker", "--name", "w0"],
        testEnv(data.path, {
          NATS_URL: cluster.natsUrl,
          LANEMAP_NATS_REPLICAS: "3",
          LANEMAP_LOG_LEVEL: "info",
        }),
      );
      await worker.waitForLine("w0 ready", workerReady, 60_000);
    }
    await cluster.kill(DEAD);
    await cluster.waitForMetaLeader();
    await streamLeadersElected(cluster);
  });

  after(async () => {
    await dir?.[Symbol.asyncDispose]();
    await cluster?.[Symbol.asyncDispose]();
  });

  test(`the model registry is listed, watched and reconciled with a data directory ${RUNS} times in a row (what every worker and serve start does)`, async (t) => {
    const config = testConfig(join(dir.path, "worker"), { LANEMAP_NATS_REPLICAS: "3" });
    const took: string[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const at = performance.now();
      const registry = await openModelRegistry(config, cluster.nc, testLogger());
      const opened = performance.now();
      assert.deepEqual(
        (await registry.list()).map((e) => e.version),
        [modelVersion],
        `run ${run}: the one model is listed`,
      );
      assert.equal((await registry.active())?.version, modelVersion, `run ${run}: it is active`);
      const listed = performance.now();
      let heard: string | null | undefined;
      const watch = await registry.watch((p) => (heard = p?.version ?? null));
      for (let t = 0; heard === undefined && t < 100; t++) await new Promise((r) => setTimeout(r, 50));
      watch.stop();
      assert.equal(heard, modelVersion, `run ${run}: the watch hears the active model`);
      const ms = performance.now() - at;
      took.push(`${Math.round(ms)} (open ${Math.round(opened - at)}, list ${Math.round(listed - opened)})`);
      assert.ok(ms < RUN_BOUND_MS, `run ${run}: took ${took.at(-1)} ms, under ${RUN_BOUND_MS} ms`);
    }
    t.diagnostic(`each run, ms: ${took.join(", ")}`);
  });

  test(`the dead letters are listed, all of them, ${RUNS} times in a row`, async () => {
    for (let run = 1; run <= RUNS; run++) {
      const dlq = await DeadLetterQueue.open(cluster.nc);
      const letters = await dlq.list();
      assert.deepEqual(
        letters.map((l) => l.originalSeq),
        [1, 2, 3],
        `run ${run}: every dead letter, oldest first`,
      );
    }
  });

  test(`a version is published, made current and old ones removed by retention ${RUNS} times in a row`, async () => {
    const source = join(dir.path, "publisher");
    const views = await NatsPublishedViews.open(cluster.nc, {
      cacheDir: join(source, "cache", "views"),
      replicas: 3,
    });
    const logger = testLogger();
    for (let v = 1; v <= RUNS + 2; v++) {
      const name = await writeNumberedVersion(source, v);
      await views.publish(join(dataPaths(source).batchViews, name), name);
      await views.setCurrent(name);
      const retention = await applyRetention(source, 2, { logger, views });
      assert.deepEqual(
        retention.deletedVersions,
        v >= 3 ? [versionName(v - 2)] : [],
        `v${v}: the version that fell out of the newest two is removed now, not left for later`,
      );
      const listed = (await views.list()).map((p) => p.version);
      assert.deepEqual(listed, v === 1 ? [1] : [v - 1, v], `v${v}: the newest two are kept, older removed`);
      assert.equal((await views.current())?.name, name);
    }
  });

  test("`lanemap model list` and `lanemap dlq list` succeed 3 times in a row each", async (t) => {
    const env = testEnv(join(dir.path, "cli"), {
      NATS_URL: cluster.natsUrl,
      LANEMAP_NATS_REPLICAS: "3",
    });
    const took: string[] = [];
    const timed = async (run: number, args: string[]) => {
      const at = performance.now();
      const r = await runLanemap(args, env);
      const ms = Math.round(performance.now() - at);
      took.push(`${args[0]} ${ms}`);
      assert.equal(r.code, 0, `run ${run}: lanemap ${args.join(" ")}: ${r.stderr}`);
      assert.ok(
        ms < COMMAND_BOUND_MS,
        `run ${run}: lanemap ${args.join(" ")} took ${ms} ms, under ${COMMAND_BOUND_MS} ms`,
      );
      return r;
    };
    for (let run = 1; run <= 3; run++) {
      const models = await timed(run, ["model", "list"]);
      assert.match(models.stdout, new RegExp(modelVersion.slice(0, 12)));
      const dlq = await timed(run, ["dlq", "list", "--json"]);
      assert.equal((JSON.parse(dlq.stdout) as unknown[]).length, LETTERS);
    }
    t.diagnostic(`each command, ms: ${took.join(", ")}`);
  });

  test("`lanemap worker` starts and is ready 3 times in a row, each on an empty data directory", async () => {
    for (let run = 1; run <= 3; run++) {
      await using data = await tempDir("lanemap-node-down-worker-");
      await using worker = lanemap(
        ["worker", "--name", `w${run}`],
        testEnv(data.path, {
          NATS_URL: cluster.natsUrl,
          LANEMAP_NATS_REPLICAS: "3",
          LANEMAP_LOG_LEVEL: "info",
        }),
      );
      await worker.waitForLine(`run ${run}: worker ready`, workerReady, 60_000);
    }
  });

  // The CURRENT watch is an ordered consumer nats-server 2.9 may place on the dead peer; the view
  // source also reads CURRENT every second by direct get and downloads with the stream API (no
  // consumer), so the switch is bounded whichever way the watch went (issue 14, F7).
  test(`a serving view source switches to each of ${RUNS} newly published versions`, async (t) => {
    const publisher = join(dir.path, "switch-publisher");
    const views = await NatsPublishedViews.open(cluster.nc, {
      cacheDir: join(publisher, "cache", "views"),
      replicas: 3,
    });
    const follower = await NatsPublishedViews.open(cluster.nc, {
      cacheDir: join(dir.path, "switch-serve", "cache", "views"),
      replicas: 3,
    });
    const source = new BatchViewSource({
      dataDir: join(dir.path, "switch-serve"),
      views: follower,
      cache: new LruCache<ClassRaster>(1 << 20, (r) => r.classes.length * 2),
      logger: testLogger(),
    });
    await source.start();
    try {
      // Every version is uploaded first, all at once: each creates a stream of its own whose group
      // elects a leader, up to a RAFT election when its first candidate is the dead node (about 4 s
      // a publish here, one after the other). The switch measured below starts at the CURRENT move.
      const names: string[] = [];
      for (let v = 101; v < 101 + RUNS; v++) names.push(await writeNumberedVersion(publisher, v));
      await Promise.all(
        names.map((name) => views.publish(join(dataPaths(publisher).batchViews, name), name)),
      );
      const took: number[] = [];
      for (const name of names) {
        const at = performance.now();
        await views.setCurrent(name);
        while (source.peek()?.name !== name) {
          assert.ok(
            performance.now() - at < SWITCH_BOUND_MS,
            `${name}: switched within ${SWITCH_BOUND_MS} ms`,
          );
          await new Promise((r) => setTimeout(r, 20));
        }
        took.push(Math.round(performance.now() - at));
      }
      t.diagnostic(`switch after CURRENT moved, ms: ${took.join(", ")}`);
    } finally {
      await source.close();
    }
  });
});
