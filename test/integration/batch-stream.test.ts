/**
 * The batch lane as a stream (issue 14): a run publishes one task per tile on the JetStream work
 * queue, `lanemap worker` processes classify them through the same TilePool as the speed lane, and
 * the coordinator's view equals the in-process (threads) view byte for byte — even when a worker
 * is SIGKILLed mid-tile (its task is redelivered) and a tile in the archive is a broken TIFF (it
 * fails with its reason, the run goes on). Real nats-server, real child processes, real DuckDB.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { StreamTileExecutor, createBatchRunner } from "../../batch/index.js";
import { encodeResult, type ResultHead } from "../../batch/task-wire.js";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { batchResultSubject } from "../../shared/adapters/nats/index.js";
import {
  classifyTileBytes,
  createClassifier,
  registerTile,
  serializeModel,
  type CatalogueEntry,
} from "../../shared/index.js";
import { publishTile } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  currentViewRasters,
  makeDataDir,
  makeSampleSet,
  testLogger,
  type SampleSet,
} from "./batch-fixture.js";
import {
  lanemap,
  tempDir,
  testConfig,
  testEnv,
  testModel,
  testTile,
  waitFor,
  type CliProcess,
} from "./speed-fixtures.js";

const workerStarted = (l: Record<string, unknown>) => l["msg"] === "worker ready: speed + batch";

describe("batch runs on the JetStream work queue", { skip: natsMissing() }, () => {
  let set: SampleSet;
  /** The in-process (threads) view of the sample, tile id -> class raster: what every stream run must equal. */
  let reference: Map<string, Buffer>;
  before(async () => {
    set = await makeSampleSet({ width: 4, height: 3, tileSize: 64, seed: 7 });
    // One reference run for the file: the threads executor's view of one sample is the same every
    // run, and each run costs a pool of threads (6-8 s at load 12 on 2 cores).
    const a = await makeDataDir(set, "threads");
    const threads = await createBatchRunner(a.config(), { logger: testLogger() }).run({
      model: set.modelPath,
    });
    assert.equal(threads.tiles.failed, 0);
    assert.equal(
      threads.redeliveredTasks,
      undefined,
      "the threads executor reports replaced threads instead",
    );
    reference = await currentViewRasters(a.dataDir);
  });
  after(() => set?.dispose());

  test("two `lanemap worker` processes build the threads view byte for byte; a SIGKILLed worker's task is redelivered, a broken TIFF fails with its reason", async () => {
    await using nats = await natsFixture();
    const logger = testLogger();
    const b = await makeDataDir(set, "stream");
    const entries: CatalogueEntry[] = [];
    for await (const e of b.store.entries()) entries.push(e);
    entries.sort((x, y) => x.tileId.localeCompare(y.tileId));
    const poisoned = entries[entries.length - 1]!;
    writeFileSync(b.store.objectPath(poisoned.contentHash), "this is not a TIFF at all");

    const env = testEnv(b.dataDir, {
      NATS_URL: nats.server.url,
      LANEMAP_BATCH_WORKERS: "1",
      LANEMAP_DECODE_TIMEOUT_MS: "3000",
      LANEMAP_TEST_TILE_DELAY_MS: "300",
      LANEMAP_LOG_LEVEL: "info",
    });
    const workers: CliProcess[] = [
      lanemap(["worker", "--name", "w1"], env),
      lanemap(["worker", "--name", "w2"], env),
    ];
    try {
      await Promise.all(workers.map((w) => w.waitForLine("worker ready", workerStarted, 60_000)));
      const config = b.config({ NATS_URL: nats.server.url, LANEMAP_DECODE_TIMEOUT_MS: "3000" });
      const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc });
      const run = runner.run({ model: set.modelPath, executor: "stream" });
      // Kill w1 right after its first tile: it has taken its next task and holds it unacknowledged.
      await workers[0]!.waitForLine("w1's first tile", (l) => l["msg"] === "batch tile classified", 60_000);
      workers[0]!.child.kill("SIGKILL");
      const report = await run;

      assert.equal(report.tiles.total, entries.length);
      assert.deepEqual(
        report.failures.map((f) => f.tileId),
        [poisoned.tileId],
        "only the broken TIFF failed",
      );
      assert.ok(report.failures[0]!.reason.length > 0, "the failure names its reason");
      const redelivered = workers[1]!.lines.filter(
        (l) =>
          (l["msg"] === "batch tile classified" || l["msg"] === "batch tile failed") &&
          Number(l["deliveries"]) > 1,
      );
      assert.ok(redelivered.length >= 1, "w2 classified the task w1 died holding, on its redelivery");
      // The summary says what happened: two worker processes, tiles redelivered (not "0 replaced").
      assert.equal(report.workers, 2, "both worker processes returned results");
      assert.ok(
        report.redeliveredTasks !== undefined &&
          report.redeliveredTasks >= 1 &&
          report.redeliveredTasks <= redelivered.length,
        `redelivered tiles reported: ${report.redeliveredTasks} (w2 classified ${redelivered.length} redeliveries)`,
      );

      const streamed = await currentViewRasters(b.dataDir);
      const good = new Map(reference);
      good.delete(poisoned.tileId);
      assert.deepEqual([...streamed.keys()], [...good.keys()], "every good tile is in the view");
      for (const [tileId, raster] of good)
        assert.ok(
          raster.equals(streamed.get(tileId)!),
          `class raster of ${tileId} equals the threads view's`,
        );
    } finally {
      for (const w of workers) await w[Symbol.asyncDispose]();
    }
  });

  test("a stopped coordinator resumes: the next run keeps the queue id, re-publishes only what is missing, and every tile is classified exactly once", async () => {
    await using nats = await natsFixture();
    const logger = testLogger();
    const c = await makeDataDir(set, "resume-stream");
    await using worker = lanemap(
      ["worker", "--name", "w1"],
      testEnv(c.dataDir, {
        NATS_URL: nats.server.url,
        LANEMAP_BATCH_WORKERS: "1",
        LANEMAP_TEST_TILE_DELAY_MS: "300",
        LANEMAP_LOG_LEVEL: "info",
      }),
    );
    await worker.waitForLine("worker ready", workerStarted, 60_000);
    const config = c.config({ NATS_URL: nats.server.url, LANEMAP_BATCH_EXECUTOR: "stream" });
    const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc });
    const ac = new AbortController();
    const first = runner.run({ model: set.modelPath, signal: ac.signal });
    await waitFor(
      "three batch tiles",
      () => worker.lines.filter((l) => l["msg"] === "batch tile classified").length >= 3 || undefined,
      60_000,
    );
    ac.abort(new Error("operator stop"));
    await assert.rejects(first);

    const report = await runner.run({ model: set.modelPath });
    assert.ok(report.resumedFrom, "the second run adopted the first one's checkpoint");
    assert.equal(report.tiles.failed, 0);
    const done = worker.lines.filter((l) => l["msg"] === "batch tile classified");
    const classified = done.map((l) => String(l["tileId"]));
    assert.equal(new Set(classified).size, classified.length, "no tile was classified twice");
    assert.equal(classified.length, reference.size, "every tile was classified once, across both runs");
    assert.ok(
      done.every((l) => l["runId"] === report.resumedFrom),
      "every task carried the first run's queue id",
    );
    const streamed = await currentViewRasters(c.dataDir);
    assert.deepEqual([...streamed.keys()], [...reference.keys()]);
    for (const [tileId, raster] of reference)
      assert.ok(raster.equals(streamed.get(tileId)!), `class raster of ${tileId} equals the threads view's`);
  });

  test("a `lanemap worker` SIGTERMed mid-run hands back the task it pulled early in one info line naming it (its metrics served at --metrics-port count such tasks), and another worker classifies it", async () => {
    await using nats = await natsFixture();
    const d = await makeDataDir(set, "handed-back");
    const env = testEnv(d.dataDir, {
      NATS_URL: nats.server.url,
      LANEMAP_BATCH_WORKERS: "1",
      LANEMAP_TEST_TILE_DELAY_MS: "300",
      LANEMAP_LOG_LEVEL: "info",
    });
    await using w1 = lanemap(["worker", "--name", "w1", "--metrics-port", "0"], env);
    await w1.waitForLine("w1 ready", workerStarted, 60_000);
    const port = (await w1.waitForLine("w1's metrics port", (l) => l["msg"] === "metrics at /metrics"))[
      "port"
    ];
    const metrics = await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text();
    assert.match(metrics, /^# TYPE lanemap_batch_tasks_handed_back_total counter$/m, "the batch side's");
    assert.match(
      metrics,
      /^lanemap_batch_tasks_dropped_total\{reason="run-over"\} 0$/m,
      "a counter that has counted nothing yet has its sample at 0, not none",
    );
    assert.match(metrics, /^lanemap_batch_tasks_handed_back_total\{reason="deadline"\} 0$/m);
    assert.match(metrics, /^# TYPE lanemap_speed_tiles_total counter$/m, "and the speed side's, together");
    const config = d.config({ NATS_URL: nats.server.url, LANEMAP_BATCH_EXECUTOR: "stream" });
    const { runner } = await buildBatchRunner(config, { logger: testLogger(), nc: nats.nc });
    // Tasks of four 64² tiles: once three of w1's first task are out, its last one runs (300 ms)
    // and the slot has asked for the next task (the ask precedes that third result's publish).
    const run = runner.run({ model: set.modelPath });
    await waitFor(
      "three tiles of w1's first task",
      () => w1.lines.filter((l) => l["msg"] === "batch tile classified").length >= 3 || undefined,
      60_000,
    );
    w1.child.kill("SIGTERM");
    assert.equal(await w1.exited, 0, "w1 stops cleanly");
    const firstTask = w1.lines.filter((l) => l["msg"] === "batch tile classified").map((l) => l["tileId"]);
    assert.equal(firstTask.length, 4, "w1 finished the task it had started");
    const handedBack = w1.lines.filter((l) => l["msg"] === "batch task handed back to the queue");
    assert.equal(handedBack.length, 1, "one line for the one task w1 handed back");
    const line = handedBack[0]!;
    assert.equal(line["level"], 30, "at info");
    assert.equal(line["reason"], "stopping");
    assert.equal(line["worker"], "w1");
    assert.equal(typeof line["runId"], "string");
    assert.ok(Number.isInteger(line["seq"]), "the task's stream sequence");
    const tiles = line["tiles"] as string[];
    assert.equal(tiles.length, 4, "the task's tiles");
    assert.ok(
      tiles.every((t) => !firstTask.includes(t)),
      "none of them classified by w1",
    );

    await using w2 = lanemap(["worker", "--name", "w2"], env);
    const report = await run;
    assert.equal(report.tiles.failed, 0);
    assert.equal(line["runId"], report.runId, "the task handed back was the run's");
    const byW2 = w2.lines.filter((l) => l["msg"] === "batch tile classified");
    for (const t of tiles)
      assert.ok(
        byW2.some((l) => l["tileId"] === t && l["runId"] === line["runId"]),
        `w2 classified ${t}, handed back by w1`,
      );
    const streamed = await currentViewRasters(d.dataDir);
    assert.deepEqual([...streamed.keys()], [...reference.keys()]);
  });

  test("a duplicate result of a tile is ignored: the first one wins", async () => {
    await using nats = await natsFixture();
    const b = await makeDataDir(set, "duplicates");
    const config = b.config({ NATS_URL: nats.server.url });
    const entries: CatalogueEntry[] = [];
    for await (const e of b.store.entries()) entries.push(e);
    const tile = entries[0]!;
    const models = await openModelRegistry(config, nats.nc);
    const executor = await StreamTileExecutor.start({
      nc: nats.nc,
      config,
      logger: testLogger(),
      runId: "20260101T000000Z-dup001",
      artifact: new TextEncoder().encode(serializeModel(set.model)),
      models,
      tileIds: new Set([tile.tileId]),
    });
    try {
      const js = jetstream(nats.nc);
      const real = await classifyTileBytes(
        await b.store.readObject(tile.contentHash),
        createClassifier(set.model),
        tile,
        "batch",
        { maxPixels: 1e8 },
      );
      const head: ResultHead = {
        runId: "20260101T000000Z-dup001",
        tileId: tile.tileId,
        modelVersion: set.model.version,
        worker: "test",
        outcome: { ok: true, k: real.k, result: real.result },
      };
      // Two results of one tile (a worker that died after publishing, before its ack): they differ
      // here only so that the test can tell which one was taken.
      await js.publish(batchResultSubject(head.runId), encodeResult(head, new Uint8Array([1])));
      await js.publish(batchResultSubject(head.runId), encodeResult(head, new Uint8Array([2])));
      await waitFor("the duplicate is seen", () => executor.duplicates === 1 || undefined, 10_000);
      const o = await executor.process(tile);
      assert.ok(o.ok);
      assert.deepEqual([...o.raster], [1], "the first result wins");
    } finally {
      await executor.close();
    }
  });

  test("live first: with batch tasks queued, a fresh tile on the speed lane is classified before the batch queue drains", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("lanemap-live-first-");
    const config = testConfig(dir.path, { NATS_URL: nats.server.url, LANEMAP_BATCH_WORKERS: "1" });
    const models = await openModelRegistry(config, nats.nc);
    const model = await testModel();
    await models.put(model);
    await models.activate(model.version);
    const store = new ArchiveStore(dir.path);
    const entries: CatalogueEntry[] = [];
    for (let i = 0; i < 8; i++) {
      const t = testTile(i % 4, Math.floor(i / 4), "2024-01-01T00:00:00Z");
      entries.push(
        (
          await registerTile(store, t.bytes, {
            ingestSeq: i + 1,
            source: "bulk",
            fileName: `${t.tileId}.tif`,
          })
        ).entry,
      );
    }
    await using worker = lanemap(
      ["worker"],
      testEnv(dir.path, {
        NATS_URL: nats.server.url,
        LANEMAP_BATCH_WORKERS: "1",
        LANEMAP_TEST_TILE_DELAY_MS: "400",
        LANEMAP_LOG_LEVEL: "info",
      }),
    );
    await worker.waitForLine("worker ready", workerStarted, 60_000);
    const executor = await StreamTileExecutor.start({
      nc: nats.nc,
      config,
      logger: testLogger(),
      runId: "20260101T000000Z-live01",
      artifact: new TextEncoder().encode(serializeModel(model)),
      models,
      tileIds: new Set(entries.map((e) => e.tileId)),
    });
    try {
      let batchDone = 0;
      const all = Promise.all(entries.map((e) => executor.process(e).then((o) => (batchDone++, o))));
      await waitFor("the first batch tile", () => batchDone >= 1 || undefined, 60_000);
      const fresh = testTile(0, 2, "2024-02-01T00:00:00Z");
      await publishTile(jetstream(nats.nc), fresh.bytes, {
        tileId: fresh.tileId,
        cell: fresh.cell,
        acquired: fresh.acquired,
      });
      await worker.waitForLine(
        "the live tile",
        (l) => l["msg"] === "tile classified" && l["tileId"] === fresh.tileId,
        30_000,
      );
      const atLive = batchDone;
      const outcomes = await all;
      assert.ok(
        outcomes.every((o) => o.ok),
        "every batch tile classified",
      );
      assert.ok(
        atLive < entries.length - 2,
        `the live tile came after ${atLive} of ${entries.length} batch tiles`,
      );
    } finally {
      await executor.close();
    }
  });
});
