/**
 * The version reservation of a publisher whose bucket's leader stops answering as it reserves
 * (issue 14, an operator's check): with the node leading `KV_lanemap-view-reservations` SIGKILLed
 * mid-run, a run whose every tile was classified failed at publish, `STORAGE: published views in
 * NATS: reserving v000002 failed: timeout` — the reservation was tried once. It is now retried
 * through an election, and a first try that landed unanswered is recognised as this publisher's
 * own. Here the leader is frozen (SIGSTOP) as the reservation is sent, on a real 3-node cluster.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { NatsPublishedViews } from "../../shared/adapters/nats/index.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { tempDir } from "./speed-fixtures.js";

test(
  "a version reserved while the reservation bucket's leader does not answer is reserved once a new leader is elected, not a failed publish",
  { skip: natsMissing() },
  async () => {
    await using cluster = await startNatsCluster();
    await using dir = await tempDir("lanemap-views-frozen-");
    await NatsPublishedViews.open(cluster.nc, { cacheDir: join(dir.path, "a"), replicas: 3 });
    const jsm = await jetstreamManager(cluster.nc);
    const leader = (await jsm.streams.info("KV_lanemap-view-reservations")).cluster?.leader;
    const frozen = NODE_NAMES.indexOf(leader as (typeof NODE_NAMES)[number]);
    assert.ok(frozen >= 0, `the bucket's leader is a node of the cluster (${leader})`);
    // The publisher's connection is to another node, as a coordinator's on another machine.
    const nc = await connect({ servers: cluster.servers[(frozen + 1) % 3]!.url });
    try {
      const views = await NatsPublishedViews.open(nc, { cacheDir: join(dir.path, "b"), replicas: 3 });
      cluster.freeze(frozen, true);
      let reserved;
      try {
        reserved = await views.reserve("v000002", "run r (pid 1 on a)");
      } finally {
        cluster.freeze(frozen, false);
      }
      assert.equal(reserved, null, "reserved for this publisher, not refused");
      const kv = await new Kvm(nc).open("lanemap-view-reservations");
      assert.deepEqual((await kv.get("v000002"))?.json(), { holder: "run r (pid 1 on a)" });
      assert.equal(
        (await views.reserve("v000002", "run s (pid 2 on b)"))?.holder,
        "run r (pid 1 on a)",
        "and another publisher is refused it, naming this one",
      );
    } finally {
      await nc.close();
    }
  },
);
