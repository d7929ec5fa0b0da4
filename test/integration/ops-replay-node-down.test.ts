/**
 * Cluster test (3-node JetStream cluster on loopback, one node SIGKILLed): `lanemap ops replay`
 * (infra/ops/replay.ts `replayIngest`) republishes exactly the range asked for, every time.
 *
 * Why: it read the range through an ordered consumer, which nats-server before 2.12 (Debian ships
 * 2.9.10) may place on an offline peer (nats-server PR #7165), as the kappa replay's read did
 * (test/integration/ingest-reader-node-down.test.ts): such a replay failed with a bare "timeout",
 * or, had its fetch come back empty, would have ended early and republished part of the range.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  HEADERS,
  INGEST_STREAM,
  INGEST_SUBJECT_PREFIX,
  ensureStreams,
} from "../../shared/adapters/nats/index.js";
import { REPLAY_OF_HEADER, replayIngest } from "../../infra/ops/index.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig, testLogger, waitFor } from "./speed-fixtures.js";

/** Messages in the stream before the first replay. */
const MESSAGES = 30;
/** The range replayed. */
const FROM = 3;
const TO = 26;
/** Replays in a row with the node down: one placed on it about one time in two fails almost surely. */
const RUNS = 6;
/** A replay slower than this fails the test (24 reads and publishes on loopback). */
const REPLAY_BOUND_MS = 4_000;
/** The node killed: not the one the test's connection prefers. */
const DEAD = 2;

const tileIdOf = (seq: number) => `c0000r0000-t${String(seq).padStart(3, "0")}`;

/** The lane's streams at R3 with MESSAGES ingest messages, sequences 1..MESSAGES; the manager. */
async function seedIngest(nc: NatsConnection, dataDir: string): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, testConfig(dataDir).stream, 3);
  const js = jetstream(nc);
  for (let i = 1; i <= MESSAGES; i++) {
    const h = natsHeaders();
    h.set(HEADERS.tileId, tileIdOf(i));
    await js.publish(`${INGEST_SUBJECT_PREFIX}.c0000r0000`, new Uint8Array(32).fill(i), {
      headers: h,
      msgID: tileIdOf(i),
    });
  }
  return jsm;
}

test(
  "with one node of a 3-node cluster SIGKILLed, ops replay republishes exactly the range, every time, without a consumer",
  { skip: natsMissing() },
  async () => {
    await using cluster = await startNatsCluster();
    await using dir = await tempDir("lanemap-ops-replay-");
    const jsm = await seedIngest(cluster.nc, dir.path);
    await cluster.kill(DEAD);
    await cluster.waitForMetaLeader();
    // The kill's cost, paid once (an election when the dead node led the stream), not measured.
    await waitFor("a leader of the ingest stream", async () => {
      const info = await jsm.streams.info(INGEST_STREAM).catch(() => null);
      return Boolean(info?.cluster?.leader);
    });

    const consumerCalls: string[] = [];
    const sub = cluster.nc.subscribe("$JS.API.CONSUMER.>", {
      callback: (_e, m) => void consumerCalls.push(m.subject),
    });
    await cluster.nc.flush();
    const logger = testLogger();
    const range = Array.from({ length: TO - FROM + 1 }, (_, i) => FROM + i);
    const failures: string[] = [];
    try {
      for (let run = 1; run <= RUNS; run++) {
        const t0 = performance.now();
        const lastBefore = (await jsm.streams.info(INGEST_STREAM)).state.last_seq;
        let report;
        try {
          report = await replayIngest({ nc: cluster.nc, fromSeq: FROM, toSeq: TO, dryRun: false, logger });
        } catch (err) {
          failures.push(`run ${run}: ${err instanceof Error ? err.message : String(err)}`);
          continue;
        }
        const ms = performance.now() - t0;
        assert.deepEqual(
          report.messages.map((m) => m.origSeq),
          range,
          `run ${run}: every message from ${FROM} to ${TO}, once, in order`,
        );
        assert.equal(report.republished, range.length, `run ${run}: each one republished`);
        assert.ok(ms < REPLAY_BOUND_MS, `run ${run} took ${Math.round(ms)} ms with a node down`);

        // What the stream got: exactly one copy of each, after what it held, with fresh ids.
        const lastAfter = (await jsm.streams.info(INGEST_STREAM)).state.last_seq;
        assert.equal(lastAfter - lastBefore, range.length, `run ${run}: one copy per message, no more`);
        const ids = new Set<string>();
        for (let seq = lastBefore + 1; seq <= lastAfter; seq++) {
          const copy = await jsm.streams.getMessage(INGEST_STREAM, { seq });
          assert.ok(copy, `run ${run}: copy at ${seq}`);
          const of = Number(copy.header.get(REPLAY_OF_HEADER));
          assert.equal(of, range[seq - lastBefore - 1], `run ${run}: the copy at ${seq} says what it copies`);
          assert.equal(copy.header.get(HEADERS.tileId), tileIdOf(of), "the producer's headers travel");
          assert.equal(copy.data[0], of, "the payload travels");
          const id = copy.header.get("Nats-Msg-Id");
          assert.ok(id.startsWith(`${tileIdOf(of)}-replay-${of}-`), `a fresh Nats-Msg-Id: ${id}`);
          ids.add(id);
        }
        assert.equal(ids.size, range.length, "every copy has its own id");
      }
      await cluster.nc.flush();
    } finally {
      sub.unsubscribe();
    }
    assert.deepEqual(failures, [], `every replay succeeded (${failures.length} of ${RUNS} failed)`);
    assert.deepEqual(consumerCalls, [], "no consumer was created");
  },
);

test(
  "ops replay skips a removed message and the copies of its own range, ends at the frozen end, and creates no consumer",
  { skip: natsMissing() },
  async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("lanemap-ops-replay-");
    const jsm = await jetstreamManager(nats.nc);
    await ensureStreams(jsm, testConfig(dir.path).stream);
    const js = jetstream(nats.nc);
    for (let i = 1; i <= 6; i++) {
      const h = natsHeaders();
      h.set(HEADERS.tileId, tileIdOf(i));
      await js.publish(`${INGEST_SUBJECT_PREFIX}.c0000r0000`, new Uint8Array(8).fill(i), { headers: h });
    }
    await jsm.streams.deleteMessage(INGEST_STREAM, 2);
    const consumerCalls: string[] = [];
    const sub = nats.nc.subscribe("$JS.API.CONSUMER.>", {
      callback: (_e, m) => void consumerCalls.push(m.subject),
    });
    await nats.nc.flush();
    const logger = testLogger();
    try {
      const dry = await replayIngest({ nc: nats.nc, fromSeq: 1, dryRun: true, logger });
      assert.deepEqual(
        dry.messages.map((m) => [m.origSeq, m.newSeq]),
        [1, 3, 4, 5, 6].map((n) => [n, null]),
        "a dry run lists the stored range, the removed message left out, and publishes nothing",
      );
      assert.equal((await jsm.streams.info(INGEST_STREAM)).state.last_seq, 6);

      const first = await replayIngest({ nc: nats.nc, fromSeq: 1, dryRun: false, logger });
      assert.deepEqual(
        first.messages.map((m) => m.origSeq),
        [1, 3, 4, 5, 6],
        "the end is frozen when the replay starts: its own copies are not read back",
      );
      assert.deepEqual(
        first.messages.map((m) => m.newSeq),
        [7, 8, 9, 10, 11],
      );
      const again = await replayIngest({ nc: nats.nc, fromSeq: 1, dryRun: false, logger });
      assert.equal(again.read, 10);
      assert.deepEqual(
        again.messages.filter((m) => m.skipped !== null).map((m) => m.origSeq),
        [7, 8, 9, 10, 11],
        "copies of messages inside the range are skipped",
      );
      assert.equal(again.republished, 5);
      await nats.nc.flush();
      assert.deepEqual(consumerCalls, [], "no consumer was created");
    } finally {
      sub.unsubscribe();
    }
  },
);

test(
  "with the ingest stream's leader SIGKILLed as it starts, ops replay republishes exactly the range once, through the election",
  { skip: natsMissing() },
  async () => {
    await using cluster = await startNatsCluster();
    await using dir = await tempDir("lanemap-ops-replay-leader-");
    const jsm = await seedIngest(cluster.nc, dir.path);
    const leader = (await jsm.streams.info(INGEST_STREAM)).cluster?.leader;
    const node = NODE_NAMES.indexOf(leader as (typeof NODE_NAMES)[number]);
    assert.ok(node >= 0, `the stream's leader is a node of the cluster (${leader})`);
    await cluster.kill(node);
    // No wait for the election: the replay meets a stream without a leader (an operator's replay
    // ended in a bare "timeout" there, copies published up to that point, 2 of 3 tries).
    const report = await replayIngest({
      nc: cluster.nc,
      fromSeq: FROM,
      toSeq: TO,
      dryRun: false,
      logger: testLogger(),
    });
    const range = Array.from({ length: TO - FROM + 1 }, (_, i) => FROM + i);
    assert.deepEqual(
      report.messages.map((m) => m.origSeq),
      range,
      "every message of the range, once, in order",
    );
    assert.equal(report.republished, range.length);
    const info = await jsm.streams.info(INGEST_STREAM);
    assert.equal(
      info.state.last_seq,
      MESSAGES + range.length,
      "one copy of each message in the stream, no more",
    );
    for (let seq = MESSAGES + 1; seq <= info.state.last_seq; seq++) {
      const copy = await jsm.streams.getMessage(INGEST_STREAM, { seq });
      assert.equal(
        Number(copy?.header.get(REPLAY_OF_HEADER)),
        range[seq - MESSAGES - 1],
        `the copy at ${seq}`,
      );
    }
  },
);
