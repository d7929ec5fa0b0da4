/**
 * Cluster test (3-node JetStream cluster on loopback): serving's live view (serving/view/live-source.ts,
 * following with `LiveView.follow()`) hears every result put after the node its KV watch's consumer
 * lives on is SIGKILLed, once each, within a bound, and ends with the snapshot `LiveView.list()` reads.
 *
 * Why: the watch is an ephemeral R1 ordered push consumer. When its node dies it delivers nothing
 * more; the client's ordered consumer recreates itself only after missed heartbeats or a reconnect,
 * and nats-server 2.9 may place the new one on the dead node as well (nats-server PR #7165). Only
 * the initial replay had a bound; a follower that went deaf later stayed deaf, unnoticed (issue 14).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstreamManager, type ConsumerInfo } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { LiveView, liveKey } from "../../shared/adapters/nats/index.js";
import { LIVE_BUCKET } from "../../shared/adapters/nats/names.js";
import { LiveSource, type LiveChange } from "../../serving/view/live-source.js";
import { LruCache } from "../../serving/view/lru-cache.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { liveRaster, liveResult } from "../helpers/live-results.js";
import { natsMissing } from "../helpers/nats.js";
import { testLogger, waitFor } from "./speed-fixtures.js";

/** The cell every result is of. */
const CELL = "c0001r0001";
/** Results put after the kill. */
const RESULTS = 5;
/** A result heard later than this after its put fails the test (ms). */
const HEARD_BOUND_MS = 10_000;

test(
  "serving's live view hears every result once within 10 s after the node of its watch's consumer is SIGKILLed, and its snapshot equals list()",
  { skip: natsMissing() },
  async (t) => {
    await using cluster = await startNatsCluster();
    const writerNc = await connect({ servers: [...cluster.urls], maxReconnectAttempts: -1 });
    const source = new LiveSource({
      nc: cluster.nc,
      cache: new LruCache(1 << 20, () => 1),
      logger: testLogger(),
      replicas: 3,
    });
    try {
      const writer = await LiveView.open(writerNc, { replicas: 3 });
      await writer.put({ result: liveResult("t0", CELL, 0), k: 5, raster: liveRaster });
      const heard: LiveChange[] = [];
      source.onChange((c) => heard.push(c));
      await source.start();
      assert.equal(source.state().state, "following");
      assert.equal(source.snapshot()?.size, 1);

      const jsm = await jetstreamManager(writerNc);
      const stream = `KV_${LIVE_BUCKET}`;
      const watchConsumers = async (): Promise<ConsumerInfo[]> =>
        (await jsm.consumers.list(stream).next()).filter((c) => c.config.durable_name === undefined);
      const home = await waitFor("the watch's consumer", async () => {
        const [c] = await watchConsumers();
        return c?.cluster?.leader;
      });
      await cluster.kill(NODE_NAMES.indexOf(home as (typeof NODE_NAMES)[number]));
      await cluster.waitForMetaLeader();
      await waitFor("a leader of the bucket's stream", async () => {
        const info = await jsm.streams.info(stream).catch(() => null);
        return Boolean(info?.cluster?.leader);
      });

      // What readiness says meanwhile ("behind" while a change waits for the recreated watch).
      const states = new Set<string>();
      const watchState = setInterval(() => states.add(source.state().state), 50);
      watchState.unref();
      const tookMs: number[] = [];
      for (let i = 1; i <= RESULTS; i++) {
        const t0 = performance.now();
        const revision = await writer.put({ result: liveResult(`t${i}`, CELL, i), k: 5, raster: liveRaster });
        await waitFor(
          `result ${i} (revision ${revision})`,
          () => heard.some((c) => c.position === revision),
          HEARD_BOUND_MS,
        );
        tookMs.push(Math.round(performance.now() - t0));
      }
      clearInterval(watchState);
      t.diagnostic(`heard after ${tookMs.join(", ")} ms; states seen: ${[...states].join(", ")}`);
      const keys = heard.filter((c) => c.position > 1).map((c) => c.key);
      assert.deepEqual(
        keys,
        Array.from({ length: RESULTS }, (_, i) => liveKey("c0001r0001", `t${i + 1}`)),
        `every result heard once, in order (heard after ${tookMs.join(", ")} ms)`,
      );
      const listed = await writer.list();
      const snap = source.snapshot();
      assert.ok(snap);
      assert.deepEqual(
        [...snap.byTile.values()].map((e) => [e.result.tileId, e.revision]).sort(),
        listed.map((e) => [e.result.tileId, e.revision]).sort(),
        "the snapshot is what list() reads",
      );
      assert.equal(snap.position, Math.max(...listed.map((e) => e.revision)));
      assert.equal(source.state().state, "following");
    } finally {
      source.close();
      await writerNc.close();
    }
  },
);
