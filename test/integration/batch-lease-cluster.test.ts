/**
 * The batch coordinator lease on a 3-node cluster whose lease bucket's leader stops answering
 * writes. An operator's check (issue 14): with the node leading `KV_lanemap-batch-lease` SIGKILLed
 * mid-run and restarted, nats-server 2.9.10 twice in five tries left a leader that took every write
 * and answered none, for minutes, until a leader step-down; the holder lost its lease
 * (BATCH_LEASE_LOST, blaming a pause) and every rerun failed "timeout". A holder whose refresh times
 * out now asks the bucket's leader to step down and tries again. Here the leader is frozen (SIGSTOP)
 * as the refresh is sent: the write times out the same way, on a real cluster.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { BatchLeases } from "../../shared/adapters/nats/index.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { testLogger } from "./batch-fixture.js";

test(
  "a lease refresh that times out at a leader that does not answer asks it to step down, and the lease is refreshed, not lost",
  { skip: natsMissing() },
  async () => {
    await using cluster = await startNatsCluster();
    await BatchLeases.open(cluster.nc, { ttlMs: 30_000, replicas: 3, logger: testLogger() });
    const jsm = await jetstreamManager(cluster.nc);
    const leader = (await jsm.streams.info("KV_lanemap-batch-lease")).cluster?.leader;
    const frozen = NODE_NAMES.indexOf(leader as (typeof NODE_NAMES)[number]);
    assert.ok(frozen >= 0, `the bucket's leader is a node of the cluster (${leader})`);
    // The coordinator's connection is to another node, as a coordinator's on another machine.
    const nc = await connect({ servers: cluster.servers[(frozen + 1) % 3]!.url });
    try {
      const lines: { msg: string; [k: string]: unknown }[] = [];
      const leases = await BatchLeases.open(nc, { ttlMs: 30_000, replicas: 3, logger: testLogger(lines) });
      const held = await leases.acquire({ runId: "run-a", startedAt: "now", building: "v000001" });
      const before = (await BatchLeases.read(nc))!.revision;
      cluster.freeze(frozen, true);
      try {
        await held.confirm();
      } finally {
        cluster.freeze(frozen, false);
      }
      assert.equal(held.signal.aborted, false, "the lease is still held");
      const line = lines.find((l) => l.msg.startsWith("batch coordinator lease refresh timed out"));
      assert.ok(line, `the timeout is one warn line: ${JSON.stringify(lines.map((l) => l.msg))}`);
      assert.match(line.msg, /asked the bucket's leader to step down \(/);
      assert.ok(
        (await BatchLeases.read(nc))!.revision > before,
        "refreshed since, on the bucket's new leader",
      );
      await held.release();
      assert.equal(await BatchLeases.read(nc), null);
    } finally {
      await nc.close();
    }
  },
);
