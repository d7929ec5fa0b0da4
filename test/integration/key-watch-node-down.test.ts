/**
 * Cluster test (3-node JetStream cluster on loopback): the key watch every worker and serve instance
 * follows the active model and CURRENT with (shared/adapters/nats/key-watch.ts `watchKvKey`) hears
 * every move when the node its KV watch's consumer lives on is SIGKILLed, and has a watch again.
 *
 * Why: a KV watch is an ephemeral R1 ordered consumer; when its node dies it delivers nothing more,
 * and nats-server 2.9 may place the one created in its stead on the dead node as well (nats-server
 * PR #7165). A long-lived follower must outlive that: the moves come by the read of the key in the
 * meantime, and the watch is recreated on a live node.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstreamManager, type ConsumerInfo } from "@nats-io/jetstream";
import { Kvm, type KvEntry } from "@nats-io/kv";
import { watchKvKey } from "../../shared/adapters/nats/key-watch.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { natsMissing } from "../helpers/nats.js";
import { testLogger, waitFor } from "./speed-fixtures.js";

const BUCKET = "lanemap-test-key-watch";
const KEY = "pointer";
/** Moves made after the kill. */
const MOVES = 5;
/** The read of the key beside the watch (ms). */
const POLL_MS = 500;
/** A move heard later than this fails the test (the read alone hears it within about a period). */
const HEARD_BOUND_MS = 4_000;

interface Pointer {
  readonly revision: number;
  readonly value: string;
}

const valueOf = (e: KvEntry | null): Pointer | null =>
  e && e.operation === "PUT" ? { revision: e.revision, value: e.string() } : null;

test(
  "a key watch hears every move when the node of its watch's consumer is SIGKILLed, and watches again from a live node",
  { skip: natsMissing() },
  async () => {
    await using cluster = await startNatsCluster();
    const kv = await new Kvm(cluster.nc).create(BUCKET, { replicas: 3 });
    await kv.put(KEY, "v0");
    const jsm = await jetstreamManager(cluster.nc);
    const watchConsumers = async (): Promise<ConsumerInfo[]> =>
      (await jsm.consumers.list(`KV_${BUCKET}`).next()).filter((c) => c.config.durable_name === undefined);
    const heard: Pointer[] = [];
    const logger = testLogger();
    const watch = watchKvKey(kv, KEY, { what: "test pointer", valueOf, pollMs: POLL_MS, logger }, (v) => {
      if (v) heard.push(v);
    });
    // Its node, whichever it is: when it is the one the connection uses, the client reconnects to
    // another and re-creates its consumer, which nats-server 2.9 may place on the dead node again.
    const home = await waitFor("the watch's consumer", async () => {
      const [c] = await watchConsumers();
      return c?.cluster?.leader;
    });
    try {
      await waitFor("the first value", () => heard.length === 1);
      const dead = NODE_NAMES.indexOf(home as (typeof NODE_NAMES)[number]);
      await cluster.kill(dead);
      await cluster.waitForMetaLeader();
      await waitFor("a leader of the bucket's stream", async () => {
        const info = await jsm.streams.info(`KV_${BUCKET}`).catch(() => null);
        return Boolean(info?.cluster?.leader);
      });

      for (let i = 1; i <= MOVES; i++) {
        const t0 = performance.now();
        const revision = await kv.put(KEY, `v${i}`);
        await waitFor(
          `move ${i} (revision ${revision})`,
          () => heard.at(-1)?.revision === revision,
          HEARD_BOUND_MS,
        );
        const ms = performance.now() - t0;
        assert.ok(ms < HEARD_BOUND_MS, `move ${i} heard after ${Math.round(ms)} ms`);
      }
      assert.deepEqual(
        heard.map((p) => p.value),
        Array.from({ length: MOVES + 1 }, (_, i) => `v${i}`),
        "every move heard once, in order",
      );
      // The watch is back: a consumer of it answers from a node that is alive.
      await waitFor(
        "a watch consumer on a live node",
        async () =>
          (await watchConsumers().catch(() => [])).some(
            (c) => c.cluster?.leader && c.cluster.leader !== home,
          ),
        15_000,
      );
    } finally {
      await watch.stop();
    }
  },
);
