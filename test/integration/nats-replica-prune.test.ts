/**
 * A work-queue stream's copy placed anew (issue 14, an operator's check): nats-server 2.9.10 catches
 * the new copy up by replaying the stream's RAFT log, which holds every task ever published but not
 * their removals (a work queue removes a message when its consumer's group records the ack, outside
 * the stream's log). The new copy held 166 acknowledged batch tasks where its peers held none; every
 * `ops repair-replicas` replaced it and brought them back, so the repair timer exited 3 forever, and
 * a worker reading from that copy once it led would be handed a finished run's tasks again.
 * `ops repair-replicas` now prunes such a copy to its leader's (shared/adapters/nats/replicas.ts
 * `pruneToLeader`): a purge below the leader's first sequence and a delete of each sequence the
 * leader lists as deleted, both through the stream's log. On a real 3-node cluster.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AckPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { repairReplicas, repairExitCode } from "../../infra/ops/index.js";
import { nodeReport, pruneToLeader } from "../../shared/adapters/nats/index.js";
import { natsMissing } from "../helpers/nats.js";
import { startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.js";
import { testLogger, waitFor } from "./speed-fixtures.js";

const TASKS = 60;

let cluster: NatsCluster;
const skip = natsMissing();
before(async () => {
  if (!skip) cluster = await startNatsCluster();
});
after(async () => {
  await cluster?.[Symbol.asyncDispose]();
});

/** Every node's copy of `stream` as "messages/first_seq/last_seq", by node name. */
async function copies(stream: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of await Promise.all(cluster.servers.map((s) => nodeReport(s.monitoringUrl!)))) {
    const c = r.node === null ? undefined : r.streams.get(stream);
    if (r.node !== null && c) out[r.node] = `${c.messages}/${c.firstSeq}/${c.lastSeq}`;
  }
  return out;
}

/** Resolves with the copies of `stream` once all three are alike (or as they are after `ms`). */
async function settledCopies(stream: string, ms = 5_000): Promise<Record<string, string>> {
  const until = Date.now() + ms;
  for (;;) {
    const c = await copies(stream);
    const values = Object.values(c);
    if ((values.length === 3 && new Set(values).size === 1) || Date.now() > until) return c;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A fresh R3 work-queue stream like LANEMAP_BATCH_TASKS, with its durable pull consumer and `TASKS`
 * tasks published: its RAFT log still holds every task (no snapshot yet), as a run's does.
 */
async function taskStream(stream: string, subject: string): Promise<void> {
  const jsm = await jetstreamManager(cluster.nc);
  await jsm.streams.add({
    name: stream,
    subjects: [`${subject}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: 3,
  });
  await jsm.consumers.add(stream, {
    durable_name: "workers",
    ack_policy: AckPolicy.Explicit,
    ack_wait: 60e9,
  });
  const js = jetstream(cluster.nc);
  for (let i = 0; i < TASKS; i++) await js.publish(`${subject}.${i}`, new Uint8Array(64));
}

/**
 * Pulls up to `n` tasks of `stream` and acknowledges those `keep` does not keep: the sequences
 * pulled, and a function handing the kept ones back to the queue (-NAK).
 */
async function consume(
  stream: string,
  n: number,
  keep: (seq: number) => boolean,
): Promise<{ seqs: number[]; handBack: () => Promise<void> }> {
  const c = await jetstream(cluster.nc).consumers.get(stream, "workers");
  const seqs: number[] = [];
  const kept: JsMsg[] = [];
  for await (const m of await c.fetch({ max_messages: n, expires: 3_000 })) {
    seqs.push(m.seq);
    if (keep(m.seq)) kept.push(m);
    else await m.ackAck();
    if (seqs.length === n) break;
  }
  return { seqs, handBack: async () => void (await Promise.all(kept.map((m) => m.nak()))) };
}

/**
 * Moves the leadership of `stream`'s consumer, as a node loss does: its new leader snapshots the
 * consumer's RAFT state (nats-server 2.9.10 `monitorConsumer`, on every leader change), so a copy
 * placed later gets the acknowledgements as a snapshot rather than replayed one by one, and a
 * work-queue stream's new copy keeps the messages they removed (what the operator's cluster, its
 * leaders moved by node kills, showed; without it the new copy replays the acks and heals).
 */
async function moveConsumerLeader(stream: string): Promise<void> {
  const jsm = await jetstreamManager(cluster.nc);
  const was = (await jsm.consumers.info(stream, "workers")).cluster?.leader;
  await cluster.nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.workers`, "", { timeout: 5_000 });
  await waitFor("another leader of the consumer", async () => {
    const now = (await jsm.consumers.info(stream, "workers").catch(() => null))?.cluster?.leader;
    return !!now && now !== was;
  });
}

/** Drops a follower's copy of `stream` as an operator does by hand (PEER.REMOVE, no spare server). */
async function removePeer(stream: string): Promise<string> {
  const jsm = await jetstreamManager(cluster.nc);
  const follower = (await jsm.streams.info(stream)).cluster!.replicas![0]!.name;
  await cluster.nc.request(`$JS.API.STREAM.PEER.REMOVE.${stream}`, JSON.stringify({ peer: follower }), {
    timeout: 5_000,
  });
  await waitFor(`${follower} out of ${stream}'s group`, async () => {
    const i = await jsm.streams.info(stream);
    return (
      !!i.cluster?.leader &&
      i.cluster.leader !== follower &&
      (i.cluster.replicas ?? []).every((r) => r.name !== follower)
    );
  });
  return follower;
}

const repair = (stream: string) =>
  repairReplicas({
    nc: cluster.nc,
    monitorUrls: cluster.servers.map((s) => s.monitoringUrl!),
    stream,
    dryRun: false,
    replicas: 3,
    logger: testLogger(),
  });

describe("a work-queue stream's copies after a repair", { ...(skip ? { skip } : {}) }, () => {
  test("a copy placed anew holds only the tasks its leader holds once ops repair-replicas has run, and the tasks in flight are still delivered", async () => {
    const stream = "LANEMAP_PRUNE_PLACED_TEST";
    await taskStream(stream, "lanemap-prune-placed");
    // Every 7th task stays in flight (unacknowledged), the rest are done: gaps inside the stream.
    const first = await consume(stream, TASKS, (seq) => seq % 7 === 0);
    const inFlight = first.seqs.filter((seq) => seq % 7 === 0);
    assert.equal(inFlight.length, 8);
    const healthy = await settledCopies(stream);
    assert.deepEqual(new Set(Object.values(healthy)), new Set([`8/7/${TASKS}`]));

    // What the operator did, and what ops repair-replicas does with a replica it replaces: a
    // follower's copy dropped, the stream left with 2 peers, the repair placing the third again.
    await moveConsumerLeader(stream);
    const follower = await removePeer(stream);
    const report = await repair(stream);
    assert.ok(
      report.placements.some(
        (p) => p.stream === stream && p.steps.some((s) => /new replica\(s\) placed/.test(s)),
      ),
      JSON.stringify(report.placements),
    );
    assert.deepEqual(report.remaining, [], "no copy disagrees afterwards");
    assert.equal(repairExitCode(report), 0, JSON.stringify(report));
    const pruned = report.repairs.find((r) => r.stream === stream && r.node === follower);
    assert.ok(pruned, `the copy just placed on ${follower} was pruned: ${JSON.stringify(report.repairs)}`);
    assert.ok(
      pruned.steps.some((s) => /^deleted from every copy the \d+ message\(s\) from seq \d+ on/.test(s)),
      pruned.steps.join("; "),
    );
    assert.deepEqual(
      await settledCopies(stream),
      healthy,
      "every copy holds the leader's 8 tasks, no done one came back",
    );

    // The 5-minute timer's next run finds nothing to do.
    const again = await repair(stream);
    assert.deepEqual([again.repairs, again.placements, again.remaining], [[], [], []]);

    // The tasks in flight, handed back, are delivered again: those, and no done one.
    await first.handBack();
    const redelivered = (await consume(stream, TASKS, () => false)).seqs;
    assert.deepEqual(
      redelivered.sort((a, b) => a - b),
      inFlight,
      "exactly the tasks in flight",
    );
    assert.deepEqual(
      new Set(Object.values(await settledCopies(stream))),
      new Set([`0/${TASKS + 1}/${TASKS}`]),
    );
  });

  test("a follower's copy found holding tasks its leader removed is pruned in place, not replaced", async () => {
    const stream = "LANEMAP_PRUNE_FOUND_TEST";
    await taskStream(stream, "lanemap-prune-found");
    await consume(stream, TASKS, () => false);
    // The fault made by hand, without lanemap: a follower's copy dropped, the stream rescaled.
    await moveConsumerLeader(stream);
    const jsm = await jetstreamManager(cluster.nc);
    await removePeer(stream);
    const at2 = await jsm.streams.info(stream);
    await jsm.streams.update(stream, { ...at2.config, num_replicas: 2 });
    await new Promise((r) => setTimeout(r, 1_000));
    await jsm.streams.update(stream, { ...at2.config, num_replicas: 3 });
    const odd = await waitFor("a copy holding done tasks again", async () => {
      const c = Object.values(await copies(stream));
      return c.length === 3 &&
        c.some((x) => x !== `0/${TASKS + 1}/${TASKS}`) &&
        c.every((x) => x.endsWith(`/${TASKS}`))
        ? c
        : undefined;
    });
    const report = await repair(stream);
    assert.deepEqual(report.remaining, [], `no copy disagrees afterwards (were ${odd.join(", ")})`);
    assert.deepEqual(report.placements, []);
    const steps = report.repairs.flatMap((r) => r.steps);
    assert.ok(steps.length > 0 && steps.every((s) => /^deleted from every copy/.test(s)), steps.join("; "));
    assert.deepEqual(
      new Set(Object.values(await settledCopies(stream))),
      new Set([`0/${TASKS + 1}/${TASKS}`]),
    );
  });

  test("a prune takes nothing the leader holds: a KV bucket with a watcher keeps every key's last value, and a task in flight is still delivered", async () => {
    const kv = await new Kvm(cluster.nc).create("lanemap-prune-kv-test", { history: 1, replicas: 3 });
    for (let round = 0; round < 3; round++)
      for (let k = 0; k < 10; k++) await kv.put(`key${k}`, `round ${round}`);
    await kv.delete("key0");
    await kv.put("key5", "round 3"); // its round-2 revision: a gap inside the leader's range
    const watch = await kv.watch();
    const jsm = await jetstreamManager(cluster.nc);
    const before = (await jsm.streams.info("KV_lanemap-prune-kv-test")).state;
    assert.ok(before.first_seq > 1, "older revisions removed below the first");
    const steps = await pruneToLeader(jsm, "KV_lanemap-prune-kv-test", { fromSeq: 1 });
    assert.equal(steps.length, 1, steps.join("; "));
    assert.match(
      steps[0]!,
      /^deleted from every copy the \d+ message\(s\) from seq 1 on/,
      "below the leader's first sequence, and key5's older revision (a gap): deletes, never a purge",
    );

    for (let k = 1; k < 10; k++)
      assert.equal((await kv.get(`key${k}`))?.string(), k === 5 ? "round 3" : "round 2");
    assert.equal((await kv.get("key0"))?.operation, "DEL");
    assert.deepEqual((await jsm.streams.info("KV_lanemap-prune-kv-test")).state.messages, before.messages);
    watch.stop();

    const stream = "LANEMAP_PRUNE_SAFE_TEST";
    await taskStream(stream, "lanemap-prune-safe");
    const held = await consume(stream, TASKS, (seq) => seq === 30);
    assert.equal(held.seqs.length, TASKS);
    const pruned = await pruneToLeader(jsm, stream, { fromSeq: 1 });
    assert.match(
      pruned.join("; "),
      /^deleted from every copy the 59 message\(s\)/,
      "deletes, so the task in flight keeps its place",
    );
    await held.handBack();
    assert.deepEqual(
      (await consume(stream, TASKS, () => false)).seqs,
      [30],
      "the task in flight is delivered again",
    );
  });
});
