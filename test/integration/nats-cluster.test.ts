import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  DLQ_STREAM,
  INGEST_STREAM,
  LIVE_BUCKET,
  LiveView,
  MODEL_BUCKET,
  MODEL_OBJECT_BUCKET,
  NatsModelRegistry,
  SPEED_CONSUMER,
  TILE_OBJECT_BUCKET,
  DeadLetterQueue,
  ensureSpeedResources,
  kvStreamName,
  lanemapStreamPlacements,
  objectStoreStreamName,
} from "../../shared/adapters/nats/index.js";
import { serializeModel } from "../../shared/index.js";
import { publishTile, type PublishedTile } from "../../speed/index.js";
import { NODE_NAMES, startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.js";
import { collectStatus, formatStatus } from "../../infra/ops/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { DEFAULT_GRID, lonLatTile, makeRaster, putLive } from "../helpers/serving-views.js";
import {
  js,
  lanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
  type CliProcess,
} from "./speed-fixtures.js";

/** Every stream and bucket the speed lane and the model registry create. */
const LANE_STREAMS = [
  INGEST_STREAM,
  DLQ_STREAM,
  objectStoreStreamName(TILE_OBJECT_BUCKET),
  kvStreamName(LIVE_BUCKET),
  kvStreamName(MODEL_BUCKET),
  objectStoreStreamName(MODEL_OBJECT_BUCKET),
];

async function activateR3(cluster: NatsCluster): Promise<string> {
  const model = await testModel();
  const registry = await NatsModelRegistry.open(cluster.nc, { replicas: 3 });
  await registry.upload(model.version, new TextEncoder().encode(serializeModel(model)));
  await registry.activate(model.version);
  return model.version;
}

/** The index of the node that leads `stream`'s RAFT group. */
async function leaderOf(cluster: NatsCluster, stream: string): Promise<number> {
  const info = await (await jetstreamManager(cluster.nc)).streams.info(stream);
  const i = NODE_NAMES.indexOf(info.cluster?.leader as (typeof NODE_NAMES)[number]);
  assert.ok(i >= 0, `${stream} has a leader among the nodes (got ${String(info.cluster?.leader)})`);
  return i;
}

describe("lanemap on a 3-node JetStream cluster", { skip: natsMissing() }, () => {
  test("every lanemap stream and bucket gets config's replicas, and R1 ones are rescaled to R3 in place with their data", async () => {
    await using cluster = await startNatsCluster();
    await using dir = await tempDir();
    const jsm = await jetstreamManager(cluster.nc);

    // What a single-server deployment left behind: everything at R1, with a tile and a model in it.
    const r1 = testConfig(dir.path, { LANEMAP_NATS_REPLICAS: "1" });
    await ensureSpeedResources(cluster.nc, jsm, r1);
    const live1 = await LiveView.open(cluster.nc, { replicas: 1 });
    const registry1 = await NatsModelRegistry.open(cluster.nc, { replicas: 1 });
    const model = await testModel();
    await registry1.upload(model.version, new TextEncoder().encode(serializeModel(model)));
    await registry1.activate(model.version);
    const tile = testTile(1, 1, "2024-08-01T10:00:00Z");
    const sent = await publishTile(js(cluster.nc), tile.bytes, tile);
    for (const s of LANE_STREAMS) assert.equal((await jsm.streams.info(s)).config.num_replicas, 1, s);
    assert.equal((await live1.list()).length, 0);

    // The same deployment with LANEMAP_NATS_REPLICAS=3.
    const r3 = testConfig(dir.path, { LANEMAP_NATS_REPLICAS: "3" });
    assert.equal(r3.storage.replicas, 3);
    await ensureSpeedResources(cluster.nc, jsm, r3);
    const live3 = await LiveView.open(cluster.nc, { replicas: r3.storage.replicas });
    // A rescaled stream re-forms its RAFT group: a write before it has a leader meets "no responders".
    for (const s of [kvStreamName(LIVE_BUCKET), ...LANE_STREAMS]) {
      const until = Date.now() + 20_000;
      while (!(await jsm.streams.info(s).catch(() => null))?.cluster?.leader) {
        assert.ok(Date.now() < until, `${s} elected no leader after the rescale`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // A raster over the inline limit goes to the live view's object store, created at R3 too.
    const big = lonLatTile(DEFAULT_GRID, {
      col: 0,
      row: 0,
      tileId: "big",
      lane: "live",
      acquired: "2026-01-05T10:00:00Z",
      ingestSeq: 1,
      raster: makeRaster(4, () => 1),
    });
    await live3.put({ result: big.result, k: big.raster.k, raster: randomBytes(800 * 1024) });
    // The raster's bucket is its month's (lanemap-live-rasters-<yyyymm>), named in the entry.
    const rasterBucket = (await live3.list()).find((e) => e.result.tileId === "big")?.rasterBucket;
    assert.ok(rasterBucket, "the big raster is spilled to a bucket");
    assert.equal((await jsm.streams.info(objectStoreStreamName(rasterBucket))).config.num_replicas, 3);
    const registry3 = await NatsModelRegistry.open(cluster.nc, { replicas: r3.storage.replicas });
    for (const s of LANE_STREAMS) assert.equal((await jsm.streams.info(s)).config.num_replicas, 3, s);
    assert.equal((await registry3.current())?.version, model.version, "the active pointer survives");
    const ingest = await jsm.streams.info(INGEST_STREAM);
    assert.equal(ingest.state.last_seq, sent.seq, "the ingest stream keeps its messages and sequences");

    // The speed consumer follows its stream's replicas (num_replicas 0 = as the stream).
    await waitFor("the speed consumer at 3 replicas", async () => {
      const c = await jsm.consumers.info(INGEST_STREAM, SPEED_CONSUMER);
      return (c.cluster?.replicas?.length ?? 0) === 2;
    });

    // What `lanemap ops status` shows: each stream's replicas, leader and two current peers.
    const placements = await waitFor("every replica caught up", async () => {
      const p = await lanemapStreamPlacements(cluster.nc, jsm);
      const lane = p.filter((s) => LANE_STREAMS.includes(s.stream));
      const ok = lane.length === LANE_STREAMS.length && lane.every((s) => s.peers.every((r) => r.current));
      return ok ? lane : undefined;
    });
    for (const p of placements) {
      assert.equal(p.replicas, 3, p.stream);
      assert.equal(p.cluster, cluster.name);
      assert.ok(NODE_NAMES.includes(p.leader as (typeof NODE_NAMES)[number]), `${p.stream} has a leader`);
      assert.deepEqual(
        [p.leader, ...p.peers.map((r) => r.name)].sort(),
        [...NODE_NAMES],
        `${p.stream} lives on all three nodes`,
      );
    }

    const status = await collectStatus({
      dataDir: dir.path,
      nats: { nc: cluster.nc, url: cluster.natsUrl },
      logger: testLogger(),
    });
    assert.deepEqual(
      status.streams
        ?.map((p) => p.stream)
        .filter((s) => LANE_STREAMS.includes(s))
        .sort(),
      [...LANE_STREAMS].sort(),
    );
    assert.match(
      formatStatus(status),
      new RegExp(
        `^(?:streams)? +KV_lanemap-live {2}R3 {2}cluster ${cluster.name} {2}leader n[123] {2}peers n[123], n[123] {2}1 msg$`,
        "m",
      ),
    );

    // And not back: a config of 1 replica leaves R3 streams at R3; lowering is an operator's act
    // (README "Scaling out"), never a side effect of a command run without the env file (issue 14, F4).
    await ensureSpeedResources(cluster.nc, jsm, r1);
    assert.equal((await jsm.streams.info(INGEST_STREAM)).config.num_replicas, 3);
  });

  test("a single server refuses to create R3 streams and buckets: NATS_SETUP naming the stream, not a silent R1", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const jsm = await jetstreamManager(nats.nc);
    await assert.rejects(
      ensureSpeedResources(nats.nc, jsm, testConfig(dir.path, { LANEMAP_NATS_REPLICAS: "3" })),
      (err: Error & { code?: string }) =>
        err.code === "NATS_SETUP" && err.message.includes(INGEST_STREAM) && /replicas/.test(err.message),
    );
    await assert.rejects(
      LiveView.open(nats.nc, { replicas: 3 }),
      /NATS_SETUP: KV_lanemap-live asks for 3 replicas \(LANEMAP_NATS_REPLICAS=3\), but this nats-server is not clustered and offers 1; set LANEMAP_NATS_REPLICAS=1/,
    );
    await assert.rejects(jsm.streams.info(INGEST_STREAM), /stream not found/);

    await ensureSpeedResources(nats.nc, jsm, testConfig(dir.path));
    const status = await collectStatus({
      dataDir: dir.path,
      nats: { nc: nats.nc, url: nats.server.url },
      logger: testLogger(),
    });
    assert.match(formatStatus(status), /^streams {3}LANEMAP_DLQ {2}R1 {2}single server {2}0 msg$/m);
  });

  test("with the model bucket's leader SIGKILLed, the active model and the live view stay readable and writable", async () => {
    await using cluster = await startNatsCluster();
    const version = await activateR3(cluster);
    const live = await LiveView.open(cluster.nc, { replicas: 3 });
    const registry = await NatsModelRegistry.open(cluster.nc, { replicas: 3 });
    const jsm = await jetstreamManager(cluster.nc);
    const tile = (id: string, seq: number) =>
      lonLatTile(DEFAULT_GRID, {
        col: 1,
        row: 1,
        tileId: id,
        lane: "live",
        acquired: "2026-01-05T10:00:00Z",
        ingestSeq: seq,
        raster: makeRaster(4, () => 2),
      });
    const first = tile("t1", 1);
    await putLive(live, [first]);

    const victim = await leaderOf(cluster, kvStreamName(MODEL_BUCKET));
    await cluster.kill(victim);
    // A new leader is elected among the two left (quorum 2 of 3); reads and writes wait for it.
    assert.equal(
      (await waitFor("the active model with a node down", () => registry.current()))?.version,
      version,
    );
    const read = await waitFor("the live entry with a node down", () => live.get(first.result.cell, "t1"));
    assert.equal(read.result.ingestSeq, 1);
    await waitFor("a live write with a node down", () => putLive(live, [tile("t2", 2)]));
    // What `lanemap ops status` then shows: a leader among the living, the dead node a peer behind.
    await waitFor("the dead node reported as a lagging peer of the live bucket", async () => {
      const i = await jsm.streams.info(kvStreamName(LIVE_BUCKET));
      return (
        i.cluster?.leader !== NODE_NAMES[victim] &&
        i.cluster?.replicas?.some((p) => p.name === NODE_NAMES[victim] && (!p.current || p.offline))
      );
    });

    await cluster.restart(victim);
    // The restarted node catches up: it holds both live entries again.
    await waitFor("the restarted node current on the live bucket", async () => {
      const i = await jsm.streams.info(kvStreamName(LIVE_BUCKET));
      const peer = [
        i.cluster?.leader,
        ...(i.cluster?.replicas ?? []).filter((p) => p.current).map((p) => p.name),
      ];
      return peer.includes(NODE_NAMES[victim]) && i.state.messages === 2;
    });
  });

  // Flaky in 1 of 3 full suites on this 2-core machine: with nats-server 2.9 a killed and restarted
  // node can leave JetStream API requests timing out for longer than the test waits. The same
  // guarantees under a node kill are asserted by cluster-scale.test.ts, which runs every time.
  const speedFaults = process.env["LANEMAP_TEST_CLUSTER_SPEED_FAULTS"] === "1";
  test(
    "2 speed workers ingest while a nats-server node is SIGKILLed and restarted: no tile lost or counted twice, the DLQ holds exactly the bad tiles",
    {
      skip: speedFaults
        ? false
        : "flaky under load on nats-server 2.9; LANEMAP_TEST_CLUSTER_SPEED_FAULTS=1 runs it (cluster-scale.test.ts covers a node kill every run)",
    },
    async () => {
      await using cluster = await startNatsCluster();
      await using dir = await tempDir();
      await activateR3(cluster);
      const env = testEnv(dir.path, {
        NATS_URL: cluster.natsUrl,
        LANEMAP_NATS_REPLICAS: "3",
        LANEMAP_LOG_LEVEL: "info",
        // Workers lag a little behind the producer, so tiles are in flight when the node dies.
        LANEMAP_TEST_TILE_DELAY_MS: "100",
      });
      await using a = lanemap(["speed", "--name", "a"], env);
      await using b = lanemap(["speed", "--name", "b"], env);
      const started = (l: Record<string, unknown>) => l["msg"] === "speed worker started";
      await Promise.all([a.waitForLine("worker a", started), b.waitForLine("worker b", started)]);
      const jsm = await jetstreamManager(cluster.nc);
      assert.equal((await jsm.streams.info(INGEST_STREAM)).config.num_replicas, 3);

      // 30 tiles: every 10th is not a GeoTIFF. Publishing retries while the cluster elects a new
      // leader; Nats-Msg-Id makes a retry of a publish that did land a no-op.
      const good = new Map<string, PublishedTile>();
      const bad = new Map<string, PublishedTile>();
      const garbage = new TextEncoder().encode("this is not a GeoTIFF");
      let victim = -1;
      for (let i = 0; i < 30; i++) {
        const t = testTile(i % 8, Math.floor(i / 8), "2024-08-03T10:00:00Z");
        const isBad = i % 10 === 9;
        const meta = { ...t, tileId: isBad ? `${t.cell}-bad-${i}` : `${t.tileId}-${i}` };
        const sent = await waitFor(`publishing tile ${i}`, () =>
          publishTile(js(cluster.nc), isBad ? garbage : t.bytes, meta, { timeoutMs: 2000 }),
        );
        (isBad ? bad : good).set(meta.tileId, sent);
        if (i === 10) {
          // Mid-stream: the leader of the ingest stream dies, with tiles queued and in flight.
          const c = await jsm.consumers.info(INGEST_STREAM, SPEED_CONSUMER);
          assert.ok(c.num_pending + c.num_ack_pending > 0, "tiles are still queued or in flight at the kill");
          victim = await leaderOf(cluster, INGEST_STREAM);
          await cluster.kill(victim);
        }
        if (i === 20) await cluster.restart(victim);
      }

      // Right after the restart a JetStream API request may time out while the node rejoins (the
      // workers retry theirs): the test's own open retries too.
      const live = await waitFor("the live view to open", () =>
        LiveView.open(cluster.nc).catch(() => undefined),
      );
      const snapshot = await waitFor(
        "every good tile in the live view",
        async () => {
          const entries = await live.list();
          return entries.length >= good.size ? entries : undefined;
        },
        60_000,
      );
      const byTile = new Map<string, number>();
      for (const e of snapshot) byTile.set(e.result.tileId, (byTile.get(e.result.tileId) ?? 0) + 1);
      assert.deepEqual([...byTile.keys()].sort(), [...good.keys()].sort(), "every good tile, no other");
      assert.ok(
        [...byTile.values()].every((n) => n === 1),
        "each tile once",
      );
      for (const e of snapshot)
        assert.equal(
          e.result.ingestSeq,
          good.get(e.result.tileId)?.seq,
          `${e.result.tileId}: its one ingest seq`,
        );
      const ingest = await jsm.streams.info(INGEST_STREAM);
      assert.equal(ingest.state.messages, good.size + bad.size, "no tile entered the stream twice");

      const letters = await waitFor("every bad tile dead-lettered", async () => {
        const l = await (await DeadLetterQueue.open(cluster.nc)).list();
        return l.length >= bad.size ? l : undefined;
      });
      assert.deepEqual(letters.map((l) => l.tileId).sort(), [...bad.keys()].sort(), "exactly the bad tiles");
      for (const l of letters) assert.equal(l.originalSeq, bad.get(l.tileId ?? "")?.seq);

      await waitFor("every tile acknowledged", async () => {
        const c = await jsm.consumers.info(INGEST_STREAM, SPEED_CONSUMER);
        return c.num_ack_pending === 0 && c.num_pending === 0;
      });
      await stopWorkers(a, b);
    },
  );
});

/** SIGTERM both workers: each finishes what it holds and exits 0. */
async function stopWorkers(...workers: CliProcess[]): Promise<void> {
  for (const w of workers) w.child.kill("SIGTERM");
  assert.deepEqual(
    await Promise.all(workers.map((w) => w.exited)),
    workers.map(() => 0),
  );
}
