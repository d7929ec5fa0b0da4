/**
 * Replicas that diverge (issue 14 F3): nats-server 2.9 can leave one node's copy of a stream with
 * other messages than its peers after abrupt stops during catch-up, while the stream's leader
 * reports that replica current. `lanemap ops status` compares every node's own copy (its /jsz,
 * through LANEMAP_NATS_MONITOR_URLS) and `lanemap ops repair-replicas` replaces the odd one.
 *
 * The divergence is made the way it was reproduced on nats-server 2.9.10: a node stopped cleanly
 * (SIGTERM: it snapshots its RAFT state, so its log starts after the stream's last message), its
 * message blocks removed, the stream written meanwhile, the node started again: RAFT replays nothing
 * before its snapshot and the node serves the 30 newer messages alone (first_seq 201) where its
 * peers hold all 230, and STREAM.INFO calls it current. On a real 3-node cluster, never a mock.
 */
import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { OpsStatus, RepairReplicasReport } from "../../infra/ops/index.js";
import { createBatchRunner } from "../../batch/index.js";
import {
  BatchLeases,
  NatsPublishedViews,
  viewVersionBucket,
  nodeReport,
  objectStoreStreamName,
} from "../../shared/adapters/nats/index.js";
import { Objm } from "@nats-io/obj";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, testLogger } from "./batch-fixture.js";
import { NODE_NAMES, startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.js";
import { runLanemap, tempDir, testEnv, waitFor } from "./speed-fixtures.js";

const STREAM = "LANEMAP_DIVERGENCE_TEST";
/** The three-way case's stream (the same subjects: it is made once STREAM is gone). */
const THREE_WAY = "LANEMAP_DIVERGENCE_THREE_WAY_TEST";

const monitorUrls = (cluster: NatsCluster): string => cluster.servers.map((s) => s.monitoringUrl).join(",");

/** Every node's copy of `stream` as [messages, first_seq, last_seq], in NODE_NAMES order. */
async function copies(cluster: NatsCluster, stream = STREAM): Promise<(number[] | null)[]> {
  const reports = await Promise.all(cluster.servers.map((s) => nodeReport(s.monitoringUrl!)));
  return reports.map((r) => {
    const c = r.node === null ? undefined : r.streams.get(stream);
    return c ? [c.messages, c.firstSeq, c.lastSeq] : null;
  });
}

/**
 * Makes node `victim`'s copy of `stream` diverge (see the header): stopped cleanly, its message
 * blocks removed, messages `from`..`to - 1` published without it, restarted; resolves once its copy
 * is back at last_seq `to` and unchanged for half a second (right after the start it shows an empty
 * copy, then replays its log).
 */
async function diverge(
  cluster: NatsCluster,
  victim: number,
  from: number,
  to: number,
  stream = STREAM,
  subject = (i: number) => `lanemap-divergence.${i % 5}`,
): Promise<void> {
  await cluster.kill(victim, "SIGTERM");
  const blocks = join(
    cluster.servers[victim]!.storeDir,
    "jetstream",
    "jetstream",
    "$G",
    "streams",
    stream,
    "msgs",
  );
  for (const f of await readdir(blocks)) await rm(join(blocks, f));
  const js = jetstream(cluster.nc);
  for (let i = from; i < to; i++) await js.publish(subject(i), new Uint8Array(100));
  await cluster.restart(victim);
  let seen = "";
  await waitFor(`node ${NODE_NAMES[victim]}'s copy at last_seq ${to}, settled`, async () => {
    const now = JSON.stringify((await copies(cluster, stream))[victim]);
    const settled = now === seen && (JSON.parse(now) as number[] | null)?.[2] === to;
    seen = now;
    if (!settled) await new Promise((r) => setTimeout(r, 500));
    return settled;
  });
}

describe("replicas that diverge on a 3-node cluster", { skip: natsMissing() }, () => {
  // One cluster for the two cases that need one: each makes a stream of its own (the first drops
  // its stream once done, the second drops it too should the first fail before) and leaves every
  // node up again; neither needs a fresh cluster (a start and stop: ~3 s at load 8).
  let cluster: NatsCluster;
  before(async () => {
    cluster = await startNatsCluster();
  });
  after(async () => {
    await cluster?.[Symbol.asyncDispose]();
  });

  test("ops status says ok while every node's copy agrees, names the stream and the node of a copy that diverged (exit 3), and ops repair-replicas steps it down and brings it back from the new leader", async () => {
    await using data = await tempDir("lanemap-replica-divergence-");
    const jsm = await jetstreamManager(cluster.nc);
    await jsm.streams.add({ name: STREAM, subjects: ["lanemap-divergence.>"], num_replicas: 3 });
    const js = jetstream(cluster.nc);
    for (let i = 0; i < 200; i++) await js.publish(`lanemap-divergence.${i % 5}`, new Uint8Array(100));
    const ops = (args: string[]) =>
      runLanemap(
        ["ops", ...args, "--json"],
        testEnv(data.path, { NATS_URL: cluster.natsUrl, LANEMAP_NATS_MONITOR_URLS: monitorUrls(cluster) }),
      );

    const healthy = await ops(["status"]);
    assert.equal(healthy.code, 0, `${healthy.stderr}\n${healthy.stdout}`);
    const ok = JSON.parse(healthy.stdout) as OpsStatus;
    assert.equal(ok.health, "ok");
    assert.deepEqual(
      ok.replicaCopies?.nodes.map((n) => n.node),
      [...NODE_NAMES],
      "every node's monitoring answered",
    );
    assert.deepEqual(ok.replicaCopies?.divergences, []);
    // What infra/systemd/lanemap-repair-replicas.timer runs every 5 minutes: on a healthy cluster it
    // replaces nothing and exits 0.
    const idle = await ops(["repair-replicas"]);
    assert.equal(idle.code, 0, `${idle.stderr}\n${idle.stdout}`);
    const nothing = JSON.parse(idle.stdout) as RepairReplicasReport;
    assert.deepEqual([nothing.repairs, nothing.placements, nothing.remaining], [[], [], []]);
    assert.deepEqual(
      await copies(cluster),
      [0, 1, 2].map(() => [200, 1, 200]),
      "no copy touched",
    );

    const leader = (await jsm.streams.info(STREAM)).cluster?.leader;
    const victim = NODE_NAMES.findIndex((n) => n !== leader);
    const node = NODE_NAMES[victim]!;
    await diverge(cluster, victim, 200, 230);
    const expected = [230, 1, 230];
    const diverged = await copies(cluster);
    assert.deepEqual(diverged[victim], [30, 201, 230], "the made divergence: the node lost messages 1-200");
    const peers = (await jsm.streams.info(STREAM)).cluster?.replicas ?? [];
    assert.ok(
      peers.every((p) => p.current),
      "STREAM.INFO calls every replica current: the leader's view does not show it",
    );
    // The worst case: the odd copy leads (every read is served from it). A step-down elects one of
    // the two other peers at random; a few of them make the diverged node the leader.
    for (let i = 0; i < 12 && (await jsm.streams.info(STREAM)).cluster?.leader !== node; i++) {
      await cluster.nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM}`, "", { timeout: 5_000 });
      await waitFor("a new leader", async () => {
        const l = (await jsm.streams.info(STREAM).catch(() => null))?.cluster?.leader;
        return l !== undefined && l !== null;
      });
    }
    assert.equal((await jsm.streams.info(STREAM)).cluster?.leader, node, `${node} leads`);

    const bad = await ops(["status"]);
    assert.equal(bad.code, 3, `degraded is exit 3:\n${bad.stderr}\n${bad.stdout}`);
    const s = JSON.parse(bad.stdout) as OpsStatus;
    assert.equal(s.health, "degraded");
    assert.deepEqual(
      s.replicaCopies?.divergences.map((d) => [d.stream, d.node, d.isLeader]),
      [[STREAM, node, true]],
    );
    const line = s.degraded.find((l) => l.startsWith(`${STREAM} diverged on node ${node} (its leader): `));
    assert.ok(line, s.degraded.join("\n"));
    assert.match(
      line,
      /holds 30 msgs, first_seq 201, last_seq 230, .* where the others hold 230 msgs, first_seq 1, last_seq 230/,
    );
    assert.match(line, /repair: lanemap ops repair-replicas --stream LANEMAP_DIVERGENCE_TEST/);
    assert.match(bad.stderr, new RegExp(`DEGRADED: .*${STREAM} diverged on node ${node}`));

    const dry = await ops(["repair-replicas", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual((await copies(cluster))[victim], [30, 201, 230], "a dry run changes nothing");

    const repaired = await ops(["repair-replicas", "--stream", STREAM]);
    assert.equal(repaired.code, 0, `${repaired.stderr}\n${repaired.stdout}`);
    const r = JSON.parse(repaired.stdout) as RepairReplicasReport;
    assert.deepEqual(
      r.repairs.map((x) => [x.stream, x.node, x.refused]),
      [[STREAM, node, undefined]],
    );
    assert.match(r.repairs[0]?.steps[0] ?? "", new RegExp(`^${node} stepped down as leader`));
    assert.deepEqual(r.remaining, []);
    assert.deepEqual(await copies(cluster), [expected, expected, expected], "every copy holds all 230 again");
    const after = await ops(["status"]);
    assert.equal(after.code, 0, `${after.stderr}\n${after.stdout}`);
    await jsm.streams.delete(STREAM);
  });

  test("when all three copies differ, ops repair-replicas refuses (no majority to trust) and --trust-leader replaces both others from the leader's", async () => {
    await using data = await tempDir("lanemap-replica-three-way-");
    const jsm = await jetstreamManager(cluster.nc);
    // The first case's stream, when that case failed before dropping it (it holds the same subjects).
    await jsm.streams.delete(STREAM).catch(() => false);
    await jsm.streams.add({ name: THREE_WAY, subjects: ["lanemap-divergence.>"], num_replicas: 3 });
    const js = jetstream(cluster.nc);
    for (let i = 0; i < 200; i++) await js.publish(`lanemap-divergence.${i % 5}`, new Uint8Array(100));
    const leader = (await jsm.streams.info(THREE_WAY)).cluster?.leader;
    const [x, y] = NODE_NAMES.flatMap((n, i) => (n === leader ? [] : [i]));
    await diverge(cluster, x!, 200, 230, THREE_WAY);
    await diverge(cluster, y!, 230, 250, THREE_WAY);
    assert.equal((await jsm.streams.info(THREE_WAY)).cluster?.leader, leader, "the leader stayed");
    const three = await copies(cluster, THREE_WAY);
    assert.equal(
      new Set(three.map((c) => JSON.stringify(c))).size,
      3,
      `three different copies: ${JSON.stringify(three)}`,
    );
    const ops = (args: string[]) =>
      runLanemap(
        ["ops", ...args, "--json"],
        testEnv(data.path, { NATS_URL: cluster.natsUrl, LANEMAP_NATS_MONITOR_URLS: monitorUrls(cluster) }),
      );

    const refused = await ops(["repair-replicas"]);
    assert.equal(refused.code, 3, `${refused.stderr}\n${refused.stdout}`);
    const r1 = JSON.parse(refused.stdout) as RepairReplicasReport;
    assert.deepEqual(
      r1.repairs.map((r) => [r.node, /no majority/.test(r.refused ?? "")]),
      [x, y].map((i) => [NODE_NAMES[i!], true]),
    );
    assert.deepEqual(await copies(cluster, THREE_WAY), three, "nothing changed");

    const trusted = await ops(["repair-replicas", "--trust-leader"]);
    assert.equal(trusted.code, 0, `${trusted.stderr}\n${trusted.stdout}`);
    const all = [250, 1, 250];
    assert.deepEqual(await copies(cluster, THREE_WAY), [all, all, all], "every copy is the leader's");
  });

  test("the coordinator lease's copies all differing: a plain ops repair-replicas (the timer's) is refused naming the holder while a coordinator holds it, and creates the bucket afresh once the lease is free", async () => {
    await using data = await tempDir("lanemap-replica-lease-");
    // The real bucket, as a coordinator opens it (a TTL long enough to outlive the test).
    const leases = await BatchLeases.open(cluster.nc, { ttlMs: 600_000, replicas: 3, logger: testLogger() });
    const stream = "KV_lanemap-batch-lease";
    const key = (i: number) => `$KV.lanemap-batch-lease.k${i % 40}`;
    const js = jetstream(cluster.nc);
    for (let i = 0; i < 40; i++) await js.publish(key(i), new Uint8Array(100));
    const jsm = await jetstreamManager(cluster.nc);
    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    const [x, y] = NODE_NAMES.flatMap((n, i) => (n === leader ? [] : [i]));
    await diverge(cluster, x!, 40, 60, stream, key);
    await diverge(cluster, y!, 60, 70, stream, key);
    // A run starts on the diverged bucket.
    const held = await leases.acquire({ runId: "run-lease-repair", startedAt: "now", building: "v000001" });
    const three = await copies(cluster, stream);
    assert.equal(
      new Set(three.map((c) => JSON.stringify(c))).size,
      3,
      `three different copies: ${JSON.stringify(three)}`,
    );
    const { created } = await jsm.streams.info(stream);
    const env = testEnv(data.path, {
      NATS_URL: cluster.natsUrl,
      LANEMAP_NATS_MONITOR_URLS: monitorUrls(cluster),
    });
    const refused = await runLanemap(["ops", "repair-replicas", "--json"], env);
    assert.equal(refused.code, 3, `${refused.stderr}\n${refused.stdout}`);
    const whyNot = (JSON.parse(refused.stdout) as RepairReplicasReport).repairs.map((r) => r.refused);
    assert.ok(whyNot.length > 0);
    for (const why of whyNot)
      assert.match(why ?? "", /a coordinator holds the lease \(host .*run run-lease-repair/);
    assert.equal(
      (await jsm.streams.info(stream)).created,
      created,
      "the bucket is the same stream under the holder",
    );
    assert.equal(new Set((await copies(cluster, stream)).map((c) => JSON.stringify(c))).size, 3);

    await held.release();
    const repaired = await runLanemap(["ops", "repair-replicas", "--json"], env);
    assert.equal(repaired.code, 0, `${repaired.stderr}\n${repaired.stdout}`);
    const report = JSON.parse(repaired.stdout) as RepairReplicasReport;
    assert.deepEqual(
      report.repairs.filter((r) => r.refused !== undefined || r.failed !== undefined),
      [],
      "none refused (no majority needed) or failed",
    );
    assert.ok(
      report.repairs.some((r) =>
        r.steps.some((step) => /created KV_lanemap-batch-lease again: R3/.test(step)),
      ),
    );
    const now = await copies(cluster, stream);
    assert.equal(
      new Set(now.map((c) => JSON.stringify(c))).size,
      1,
      `three equal copies: ${JSON.stringify(now)}`,
    );
    const info = await jsm.streams.info(stream);
    assert.equal(info.config.max_age, 600_000 * 1_000_000, "its TTL kept");
    assert.equal(info.config.num_replicas, 3);
    // A coordinator takes the fresh bucket's lease as before.
    const next = await (
      await BatchLeases.open(cluster.nc, { ttlMs: 600_000, replicas: 3, logger: testLogger() })
    ).acquire({ runId: "run-after-repair", startedAt: "now", building: "v000002" });
    await next.release();
    const again = await runLanemap(["ops", "repair-replicas", "--json"], env);
    assert.equal(again.code, 0, `a second repair finds nothing: ${again.stderr}\n${again.stdout}`);
    assert.deepEqual((JSON.parse(again.stdout) as RepairReplicasReport).repairs, []);
    await jsm.streams.delete(stream);
  });

  test("a published view whose objects lost messages without a delete marker is reported by ops status (degraded, exit 3), naming the version and the object, though views list still shows it", async () => {
    await using nats = await natsFixture();
    const set = await makeSampleSet({ width: 2, height: 2, tileSize: 64, seed: 5 });
    try {
      const a = await makeDataDir(set, "publisher");
      const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(a.dataDir, "cache", "views") });
      const report = await createBatchRunner(a.config(), { logger: a.logger, views }).run();
      const published = (await views.list()).find((v) => v.name === report.version);
      const file = Object.keys(published?.manifest.files ?? {}).sort()[0]!;
      // One chunk of the file gone, as from a replica that lost messages (no delete marker).
      const bucket = viewVersionBucket(report.version);
      const info = await new Objm(nats.nc).open(bucket).then((os) => os.info(file));
      const jsm = await jetstreamManager(nats.nc);
      const stream = objectStoreStreamName(bucket);
      const chunk = await jsm.streams.getMessage(stream, { last_by_subj: `$O.${bucket}.C.${info!.nuid}` });
      await jsm.streams.deleteMessage(stream, chunk!.seq, false);
      // Still listed (its objects' infos are whole): only the chunk count shows the loss, and a
      // serve instance would fail its download's checksum.
      assert.deepEqual(
        (await views.list()).map((v) => v.name),
        [report.version],
      );

      await using empty = await tempDir("lanemap-damaged-view-");
      const r = await runLanemap(
        ["ops", "status", "--json"],
        testEnv(empty.path, { NATS_URL: nats.server.url, LANEMAP_STORAGE: "nats" }),
      );
      assert.equal(r.code, 3, `${r.stderr}\n${r.stdout}`);
      const s = JSON.parse(r.stdout) as OpsStatus;
      assert.deepEqual(s.batch.damaged, [
        { name: report.version, problems: [`${file} has ${info!.chunks - 1} of ${info!.chunks} chunks`] },
      ]);
      assert.match(
        s.degraded.join("\n"),
        new RegExp(`published view ${report.version} lost objects \\(${file} has`),
      );
    } finally {
      await set.dispose();
    }
  });
});
