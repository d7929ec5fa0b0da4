/**
 * A batch task delivered twice never puts its class raster over an existing object (issue 14). A
 * raster too large for the result message is an object of `lanemap-batch-rasters`; a redelivered
 * task (its worker killed after the put, before the ack; a slow worker's task redelivered) put it
 * again over the same name, which purges the old chunks in place (a filtered STREAM.PURGE), and on
 * nats-server 2.9.10 a node SIGKILLed seconds after such a purge came back with only the last
 * object's messages (nats-removals-node-kill.test.ts). Real nats-server (a small max_payload, so
 * every raster is spilled), the real task worker and tile threads, the real files archive.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createBatchRunner } from "../../batch/index.js";
import { decodeResult, type ResultHead } from "../../batch/task-wire.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { BATCH_RASTER_BUCKET, readObjectBytes } from "../../shared/adapters/nats/index.js";
import { listObjectInfos } from "../../shared/adapters/nats/object-reads.js";
import { natsMissing, natsFixture } from "../helpers/nats.js";
import {
  catalogued,
  coordinator,
  currentViewRasters,
  makeDataDir,
  makeSampleSet,
  oneTaskWorker,
  testLogger,
  type SampleSet,
} from "./batch-fixture.js";
import { waitFor } from "./speed-fixtures.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 1, tileSize: 64, seed: 11 });
});
after(() => set?.dispose());

test(
  "a task delivered again leaves one readable raster object per tile, equal to the threads run's, and never purges the raster bucket",
  { skip: natsMissing(), timeout: 120_000 },
  async () => {
    // The reference: the same tiles classified by the in-process (threads) executor.
    const a = await makeDataDir(set, "threads");
    const threads = await createBatchRunner(a.config(), { logger: testLogger() }).run({
      model: set.modelPath,
    });
    assert.equal(threads.tiles.failed, 0);
    const reference = await currentViewRasters(a.dataDir);

    // Messages of 32 KiB, less than the 64 KiB the worker keeps for a result's head: every raster
    // spills to the bucket (a 64 px tile's compresses to ~55 bytes).
    await using nats = await natsFixture({ maxPayload: 32 * 1024 });
    const { fx, config, entries } = await catalogued(set, "twice", nats.server.url);
    const models = await openModelRegistry(config, nats.nc);
    const runId = "20260101T000000Z-twice1";
    // What goes over the wire: the tasks (to deliver them again), the results, and purge requests.
    const spy = await connect({ servers: nats.server.url, name: "spy" });
    const tasks: Uint8Array[] = [];
    const results: ResultHead[] = [];
    const purges: string[] = [];
    spy.subscribe("batch.task.>", { callback: (_, m) => void tasks.push(m.data) });
    spy.subscribe("batch.result.>", { callback: (_, m) => void results.push(decodeResult(m.data).head) });
    spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    await spy.flush();

    const executor = await coordinator(
      set,
      config,
      nats.nc,
      models,
      runId,
      entries.map((e) => e.tileId),
    );
    const w = await oneTaskWorker(config, nats.nc, models, fx.store);
    try {
      const outcomes = await Promise.all(entries.map((e) => executor.process(e)));
      assert.ok(
        outcomes.every((o) => o.ok),
        "every tile is classified",
      );
      assert.ok(tasks.length > 0, "the tasks were seen");
      // Each task delivered again, as a redelivery after the put and before the ack delivers it.
      const js = jetstream(nats.nc);
      const distinct = new Map(tasks.map((t) => [Buffer.from(t).toString("hex"), t]));
      for (const t of distinct.values()) await js.publish(`batch.task.${runId}`, t);
      await waitFor("the second delivery's results", () => results.length >= 2 * entries.length);
      await spy.flush();

      assert.deepEqual(purges, [], "no purge request was sent");
      const spilled = results.map((r) => (r.outcome.ok ? r.outcome.rasterObject : undefined));
      assert.ok(
        spilled.every((name) => name !== undefined),
        "every result names its raster object",
      );
      const infos = await listObjectInfos(await jetstreamManager(nats.nc), BATCH_RASTER_BUCKET);
      assert.deepEqual(
        infos.map((i) => i.name).sort(),
        [...new Set(spilled)].sort(),
        "one object per tile, named by both deliveries' results",
      );
      assert.equal(infos.length, entries.length);
      for (const r of results) {
        assert.ok(r.outcome.ok && r.outcome.rasterObject);
        const bytes = await readObjectBytes(nats.nc, BATCH_RASTER_BUCKET, r.outcome.rasterObject);
        assert.ok(bytes, `${r.outcome.rasterObject} is readable`);
        assert.ok(
          Buffer.from(bytes).equals(reference.get(r.tileId)!),
          `the raster of ${r.tileId} equals the threads run's`,
        );
      }
    } finally {
      await executor.close();
      await w.stop();
      await spy.close();
    }
  },
);
