/**
 * A producer survives a JetStream leader election (issue 14's operator check): while the ingest
 * stream's leader is SIGKILLed, `publishTile` — what `lanemap ingest` and `lanemap start`'s feed
 * publish through — retries a publish the stream cannot take for the moment, with the same
 * Nats-Msg-Id, so every tile lands exactly once; without a quorum it gives up after its bound with
 * one line that says what is wrong. A real 3-node cluster on loopback.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { HEADERS, INGEST_STREAM, ensureStreams } from "../../shared/adapters/nats/index.js";
import { LanemapError } from "../../shared/index.js";
import { publishTile } from "../../speed/index.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { natsMissing } from "../helpers/nats.js";
import { js, tempDir, testConfig, testTile } from "./speed-fixtures.js";

describe("publishing to the ingest stream on a 3-node cluster", { skip: natsMissing() }, () => {
  test("with the stream's leader SIGKILLed mid-ingest every tile lands once; without a quorum the publish fails after its bound with one line", async () => {
    await using cluster = await startNatsCluster();
    await using dir = await tempDir();
    const jsm = await jetstreamManager(cluster.nc);
    await ensureStreams(jsm, testConfig(dir.path).stream, 3);
    const leaderOf = async () => {
      const leader = (await jsm.streams.info(INGEST_STREAM)).cluster?.leader;
      const i = NODE_NAMES.indexOf(leader as (typeof NODE_NAMES)[number]);
      assert.ok(i >= 0, `${INGEST_STREAM} has a leader (got ${String(leader)})`);
      return i;
    };
    await leaderOf();

    const tileIds: string[] = [];
    let victim = -1;
    for (let i = 0; i < 40; i++) {
      const t = testTile(i % 8, Math.floor(i / 8), "2024-08-03T10:00:00Z");
      const meta = { ...t, tileId: `${t.tileId}-${i}` };
      // No retry here: publishTile must ride out the election itself.
      await publishTile(js(cluster.nc), t.bytes, meta, { timeoutMs: 2000 });
      tileIds.push(meta.tileId);
      if (i === 10) {
        victim = await leaderOf();
        await cluster.kill(victim);
      }
    }
    const leader = await leaderOf();
    assert.notEqual(leader, victim, "a new leader was elected among the two left");

    // Every tile exactly once: count the stored messages' tile ids.
    const info = await jsm.streams.info(INGEST_STREAM);
    const stored: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(INGEST_STREAM, { seq }).catch(() => null);
      const id = m?.header?.get(HEADERS.tileId);
      if (id) stored.push(id);
    }
    assert.deepEqual(stored.sort(), [...tileIds].sort(), "each tile is stored once, none lost");

    // Two of three nodes gone: no quorum, no leader. The publish gives up after its bound.
    await cluster.kill(victim === 0 ? 1 : 0);
    const t = testTile(0, 7, "2024-08-03T11:00:00Z");
    const t0 = performance.now();
    await assert.rejects(
      publishTile(
        js(cluster.nc),
        t.bytes,
        { ...t, tileId: `${t.tileId}-noquorum` },
        { timeoutMs: 1000, retryForMs: 4000 },
      ),
      (err: unknown) => {
        assert.ok(err instanceof LanemapError);
        assert.equal(err.code, "INGEST_PUBLISH");
        assert.match(
          err.message,
          /^stream LANEMAP_TILES did not take tile \S+ in \d+ attempts over \d+\.\d s/,
        );
        assert.match(err.message, /majority of the JetStream cluster/);
        assert.ok(!err.message.includes("\n"), "one line");
        return true;
      },
    );
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(seconds < 12, `it gave up within its bound (${seconds.toFixed(1)} s)`);
  });
});
