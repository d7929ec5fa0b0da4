/**
 * Serving's live view (`LiveView.follow()`) keeps hearing changes when its KV watch is gone and
 * cannot be created again: the follower reads what the watch held back from the bucket itself.
 *
 * Why: after a node dies, nats-server 2.9 may place each new watch consumer on the dead node again
 * (nats-server PR #7165), and each creation then times out; a follower that only recreated its
 * watch missed a 10 s bound when three creations in a row landed there (live-follow-node-down,
 * under load). Here every creation fails, made exact with an account limit of one consumer per
 * stream: the test deletes the watch's consumer and takes the only slot.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { LiveView, liveKey } from "../../shared/adapters/nats/index.js";
import { LIVE_BUCKET } from "../../shared/adapters/nats/names.js";
import { liveRaster, liveResult } from "../helpers/live-results.js";
import { natsMissing, startBareNatsServer } from "../helpers/nats.js";
import { waitFor } from "./speed-fixtures.js";

/** One consumer per stream in the account every connection lands in (no_auth_user). */
const ONE_CONSUMER = `
accounts: {
  LANEMAP: {
    jetstream: { max_mem: -1, max_file: -1, max_streams: -1, max_consumers: 1 }
    users: [{ user: lanemap, password: lanemap }]
  }
}
no_auth_user: lanemap
`;

/** Results put while the watch cannot be created. */
const RESULTS = 5;
/** A result heard later than this after its put fails the test (ms). */
const HEARD_BOUND_MS = 8_000;

test(
  "a follower whose watch is deleted and cannot be created again hears every later change once, in order, from the bucket",
  { skip: natsMissing() },
  async (t) => {
    await using server = await startBareNatsServer({ jetstream: true, config: ONE_CONSUMER });
    const nc = await connect({ servers: server.url });
    const view = await LiveView.open(nc);
    await view.put({ result: liveResult("t0", "c0001r0001", 0), k: 5, raster: liveRaster });
    const heard: { key: string; position: number }[] = [];
    const follower = await view.follow((c) => heard.push({ key: c.key, position: c.position }));
    try {
      assert.equal(follower.snapshot().size, 1);
      const jsm = await jetstreamManager(nc);
      const stream = `KV_${LIVE_BUCKET}`;
      const [watch] = await jsm.consumers.list(stream).next();
      assert.ok(watch, "the watch is the stream's one consumer");
      await jsm.consumers.delete(stream, watch.name);
      await jsm.consumers.add(stream, { durable_name: "slot-taken", ack_policy: AckPolicy.Explicit });
      await assert.rejects(
        jsm.consumers.add(stream, { name: "another", ack_policy: AckPolicy.None }),
        /maximum consumers/,
        "no consumer can be created on the stream now",
      );

      const tookMs: number[] = [];
      for (let i = 1; i <= RESULTS; i++) {
        const t0 = performance.now();
        const revision = await view.put({
          result: liveResult(`t${i}`, "c0001r0001", i),
          k: 5,
          raster: liveRaster,
        });
        await waitFor(
          `result ${i} (revision ${revision})`,
          () => heard.some((c) => c.position === revision),
          HEARD_BOUND_MS,
        );
        tookMs.push(Math.round(performance.now() - t0));
      }
      t.diagnostic(`heard after ${tookMs.join(", ")} ms`);
      assert.deepEqual(
        heard.filter((c) => c.position > 1).map((c) => c.key),
        Array.from({ length: RESULTS }, (_, i) => liveKey("c0001r0001", `t${i + 1}`)),
        "every change heard once, in order",
      );
      await view.remove("c0001r0001", "t2");
      const removal = (await view.list()).length;
      await waitFor("the removal", () => follower.snapshot().size === removal, HEARD_BOUND_MS);
      assert.deepEqual(
        [...follower.snapshot().byTile.keys()].sort(),
        (await view.list()).map((e) => e.result.tileId).sort(),
        "the follower's snapshot is what list() reads",
      );
    } finally {
      follower.stop();
      await nc.close();
    }
  },
);
