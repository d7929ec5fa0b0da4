/**
 * Replicas that are missing rather than diverged (issue 14 B2): an operator's repair failed with
 * "3 current replicas did not happen within 30 s" and left OBJ_lanemap-views at num_replicas 3 with
 * 2 peers; `ops status` then said "1 replica(s) unplaced" and `ops repair-replicas` "every stream's
 * copies agree: nothing to repair" (exit 0), since the two copies it could compare agreed.
 *
 * The states are made by hand on a real 3-node cluster, never a mock, one cluster per test and the
 * three tests at once (each its own stream): a PEER.REMOVE with no spare server (what a repair's
 * first step leaves, R3 with 2 peers), replicas lowered behind lanemap's back, a node stopped and
 * its copy of a stream deleted while the cluster is idle (an empty copy on restart), and a
 * placement the cluster cannot make (a node stopped).
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { jetstream, jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { OpsStatus, RepairReplicasReport } from "../../infra/ops/index.js";
import { nodeReport } from "../../shared/adapters/nats/index.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { runLanemap, tempDir, testEnv, waitFor } from "./speed-fixtures.js";

const peersOf = (i: StreamInfo): string[] => [
  ...(i.cluster?.leader ? [i.cluster.leader] : []),
  ...(i.cluster?.replicas ?? []).map((r) => r.name),
];

/**
 * For a repair whose missing peer cannot come back by itself (PEER.REMOVEd, lowered by hand, its
 * node stopped): the repair's first wait for it (LANEMAP_REPLICA_SETTLE_S, 6 s) waits for nothing
 * there. A repair right after a node restarted keeps the default.
 */
const noSettle = { LANEMAP_REPLICA_SETTLE_S: "0" };

/** A 3-node cluster of a case's own and what the case does on it; dispose stops it. */
async function placementCluster() {
  const cluster = await startNatsCluster();
  const data = await tempDir("lanemap-replica-placement-").catch(async (err: unknown) => {
    await cluster[Symbol.asyncDispose]();
    throw err;
  });

  const ops = (args: string[], env: Record<string, string> = {}) =>
    runLanemap(
      ["ops", ...args, "--json"],
      testEnv(data.path, {
        NATS_URL: cluster.natsUrl,
        LANEMAP_NATS_MONITOR_URLS: cluster.servers.map((s) => s.monitoringUrl).join(","),
        ...env,
      }),
    );

  /** A new R3 stream holding `n` messages of 100 bytes. */
  async function stream(name: string, n: number): Promise<void> {
    const jsm = await jetstreamManager(cluster.nc);
    await jsm.streams.add({ name, subjects: [`${name.toLowerCase()}.>`], num_replicas: 3 });
    const js = jetstream(cluster.nc);
    for (let i = 0; i < n; i++) await js.publish(`${name.toLowerCase()}.${i % 5}`, new Uint8Array(100));
  }

  /** Every node's copy of `name` as [messages, first_seq, last_seq], in NODE_NAMES order. */
  async function copies(name: string): Promise<(number[] | null)[]> {
    const reports = await Promise.all(cluster.servers.map((s) => nodeReport(s.monitoringUrl!)));
    return reports.map((r) => {
      const c = r.node === null ? undefined : r.streams.get(name);
      return c ? [c.messages, c.firstSeq, c.lastSeq] : null;
    });
  }

  /** Removes `node` from `name`'s group by hand; resolves once STREAM.INFO names the 2 others. */
  async function removePeer(name: string, node: string): Promise<void> {
    await cluster.nc.request(`$JS.API.STREAM.PEER.REMOVE.${name}`, JSON.stringify({ peer: node }), {
      timeout: 5_000,
    });
    const jsm = await jetstreamManager(cluster.nc);
    await waitFor(`${node} out of ${name}'s group`, async () => {
      const i = await jsm.streams.info(name).catch(() => null);
      return i !== null && !!i.cluster?.leader && !peersOf(i).includes(node);
    });
  }

  const nonLeader = async (name: string): Promise<number> => {
    const leader = (await (await jetstreamManager(cluster.nc)).streams.info(name)).cluster?.leader;
    return NODE_NAMES.findIndex((n) => n !== leader);
  };

  return {
    cluster,
    ops,
    stream,
    copies,
    removePeer,
    nonLeader,
    async [Symbol.asyncDispose]() {
      await data[Symbol.asyncDispose]();
      await cluster[Symbol.asyncDispose]();
    },
  };
}

// The three cases at once, each on a cluster of its own: a case mostly waits on `lanemap ops`
// processes, RAFT and node restarts, and each one's `ops status` looks at every stream of its cluster.
describe(
  "replicas missing from a stream on a 3-node cluster",
  { skip: natsMissing(), concurrency: true },
  () => {
    test("a stream whose replica is unplaced (PEER.REMOVE with no spare server: R3, 2 peers) is degraded in ops status, listed by the dry run though its placed copies agree, placed by ops repair-replicas, and ok afterwards; so is one lowered to R2 behind lanemap's back", async () => {
      await using f = await placementCluster();
      const { cluster, ops, stream, copies, removePeer, nonLeader } = f;
      const name = "LANEMAP_UNPLACED_TEST";
      await stream(name, 200);
      const node = NODE_NAMES[await nonLeader(name)]!;
      await removePeer(name, node);
      const jsm = await jetstreamManager(cluster.nc);
      const left = await jsm.streams.info(name);
      assert.equal(left.config.num_replicas, 3, "the server keeps num_replicas 3 with 2 peers");
      assert.equal(peersOf(left).length, 2);

      const bad = await ops(["status"]);
      assert.equal(bad.code, 3, `${bad.stderr}\n${bad.stdout}`);
      const s = JSON.parse(bad.stdout) as OpsStatus;
      assert.deepEqual(s.replicaCopies?.divergences, [], "the two placed copies agree");
      assert.ok(
        s.degraded.some((l) =>
          l.startsWith(
            `${name}: num_replicas 3 but 2 placed (${peersOf(left).join(", ")}): 1 replica(s) unplaced; repair: lanemap ops repair-replicas --stream ${name}`,
          ),
        ),
        s.degraded.join("\n"),
      );

      const dry = await ops(["repair-replicas", "--dry-run"]);
      assert.equal(dry.code, 0, `${dry.stderr}\n${dry.stdout}`);
      const d = JSON.parse(dry.stdout) as RepairReplicasReport;
      assert.deepEqual(
        d.placements.map((p) => [p.stream, p.wanted, p.placed.length, p.steps.length]),
        [[name, 3, 2, 0]],
      );
      assert.equal(peersOf(await jsm.streams.info(name)).length, 2, "a dry run changes nothing");

      const repaired = await ops(["repair-replicas"], noSettle);
      assert.equal(repaired.code, 0, `${repaired.stderr}\n${repaired.stdout}`);
      const r = JSON.parse(repaired.stdout) as RepairReplicasReport;
      assert.deepEqual(
        r.placements.map((p) => [p.stream, p.failed]),
        [[name, undefined]],
      );
      assert.ok(
        r.placements[0]!.steps.some((x) => /^rescaled R2 -> R3: 1 new replica\(s\) placed$/.test(x)),
        r.placements[0]!.steps.join("\n"),
      );
      assert.deepEqual(r.unplaced, []);
      const all = [200, 1, 200];
      assert.deepEqual(await copies(name), [all, all, all], `${node} holds the whole stream again`);
      const ok = await ops(["status"]);
      assert.equal(ok.code, 0, `${ok.stderr}\n${ok.stdout}`);

      // Lowered behind lanemap's back: a shortfall only against config (nothing else remembers R3).
      const info = await jsm.streams.info(name);
      await jsm.streams.update(name, { ...info.config, num_replicas: 2 });
      await waitFor("R2", async () => peersOf(await jsm.streams.info(name)).length === 2);
      const r3 = { LANEMAP_NATS_REPLICAS: "3" };
      const lowered = await ops(["status"], r3);
      assert.equal(lowered.code, 3, `${lowered.stderr}\n${lowered.stdout}`);
      assert.match(
        lowered.stderr,
        new RegExp(`${name}: num_replicas 2 \\(.*\\) where LANEMAP_NATS_REPLICAS asks 3: lowered`),
      );
      const raised = await ops(["repair-replicas", "--stream", name], { ...r3, ...noSettle });
      assert.equal(raised.code, 0, `${raised.stderr}\n${raised.stdout}`);
      assert.deepEqual((JSON.parse(raised.stdout) as RepairReplicasReport).unplaced, []);
      const back = await jsm.streams.info(name);
      assert.deepEqual([back.config.num_replicas, peersOf(back).length], [3, 3]);
      assert.deepEqual(await copies(name), [all, all, all]);
    });

    test("a node stopped while the cluster is idle whose copy of a stream is gone comes back empty: ops status names it, ops repair-replicas replaces it from the others, and no message of theirs is lost", async () => {
      await using f = await placementCluster();
      const { cluster, ops, stream, copies, nonLeader } = f;
      const name = "LANEMAP_EMPTY_COPY_TEST";
      await stream(name, 150);
      const all = [150, 1, 150];
      // Idle means every copy current: a follower still applying when it stops catches up from the
      // others' log on restart instead of coming back empty (CI once waited 30 s for an empty copy).
      await waitFor("every copy holding the 150 messages", async () =>
        (await copies(name)).every((c) => c?.join() === all.join()),
      );
      const victim = await nonLeader(name);
      await cluster.kill(victim, "SIGTERM");
      await rm(join(cluster.servers[victim]!.storeDir, "jetstream", "jetstream", "$G", "streams", name), {
        recursive: true,
      });
      await cluster.restart(victim);
      let seen: (number[] | null)[] = [];
      await waitFor(`node ${NODE_NAMES[victim]} back with an empty copy`, async () => {
        seen = await copies(name);
        return seen[victim]?.[0] === 0;
      }).catch((err: unknown) => {
        throw new Error(`${(err as Error).message} (copies last seen: ${JSON.stringify(seen)})`);
      });
      const bad = await ops(["status"]);
      assert.equal(bad.code, 3, `${bad.stderr}\n${bad.stdout}`);
      const s = JSON.parse(bad.stdout) as OpsStatus;
      assert.deepEqual(
        s.replicaCopies?.divergences.filter((x) => x.stream === name).map((x) => [x.node, x.copy?.messages]),
        [[NODE_NAMES[victim], 0]],
      );
      const repaired = await ops(["repair-replicas", "--stream", name]);
      assert.equal(repaired.code, 0, `${repaired.stderr}\n${repaired.stdout}`);
      assert.deepEqual(await copies(name), [all, all, all]);
      const jsm = await jetstreamManager(cluster.nc);
      for (const seq of [1, 75, 150])
        assert.equal((await jsm.streams.getMessage(name, { seq }))?.data.length, 100);
      const ok = await ops(["status"]);
      assert.equal(ok.code, 0, `${ok.stderr}\n${ok.stdout}`);
    });

    test("a replica the cluster cannot place (its node stopped) fails the repair after bounded attempts with one line naming the stream, its peers, the refusal and the command to run again (exit 1), leaves num_replicas at the peers it has, and the same command places it once the node is back", async () => {
      await using f = await placementCluster();
      const { cluster, ops, stream, copies, removePeer, nonLeader } = f;
      const name = "LANEMAP_REFUSED_PLACEMENT_TEST";
      await stream(name, 100);
      const victim = await nonLeader(name);
      const node = NODE_NAMES[victim]!;
      await removePeer(name, node);
      const r3 = { LANEMAP_NATS_REPLICAS: "3" };
      // A clean stop: the node says goodbye, so the meta leader counts it offline at once.
      await cluster.kill(victim, "SIGTERM");
      try {
        const failed = await ops(["repair-replicas", "--stream", name], { ...r3, ...noSettle });
        assert.equal(failed.code, 1, `${failed.stderr}\n${failed.stdout}`);
        const jsm = await jetstreamManager(cluster.nc);
        const left = await jsm.streams.info(name);
        const peers = peersOf(left);
        assert.equal(peers.length, 2);
        assert.equal(left.config.num_replicas, 2, "left consistent: num_replicas = the peers it has");
        const line = failed.stderr.split("\n").find((l) => l.startsWith("lanemap: "));
        assert.match(
          line ?? "",
          new RegExp(
            `^lanemap: NATS_SETUP: ${name}: 3 replicas not placed after 3 attempt\\(s\\) \\(last: R3 refused: .*(no suitable peers for placement|insufficient resources).*\\); left at num_replicas 2 with 2 placed \\(${peers.join(", ")}\\); run again once every node is up and current: lanemap ops repair-replicas --stream ${name}$`,
          ),
          failed.stderr,
        );
        const r = JSON.parse(failed.stdout) as RepairReplicasReport;
        assert.equal(r.placements[0]?.failed, line?.slice("lanemap: NATS_SETUP: ".length));
      } finally {
        await cluster.restart(victim);
      }
      const again = await ops(["repair-replicas", "--stream", name], r3);
      assert.equal(again.code, 0, `${again.stderr}\n${again.stdout}`);
      const all = [100, 1, 100];
      assert.deepEqual(await copies(name), [all, all, all]);
    });
  },
);
