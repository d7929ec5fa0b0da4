/**
 * Batch runners are built in one place (infra/platform/batch-runners.ts) for start, serve, `batch
 * run` and `batch schedule`; with NATS there, the speed consumer's ack floor is the watermark. Here
 * the scheduled runner runs repeatedly while fresh tiles stream in through a real nats-server and a
 * deliberately slow speed worker: no batch view may absorb a tile that is not yet in the catalogue,
 * nor one the speed lane has not acknowledged.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { tableFromIPC } from "apache-arrow";
import { scheduleBatchRuns, type RunReport } from "../../batch/index.js";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { ArchiveStore, FileModelRegistry, readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { speedLaneStatus } from "../../shared/adapters/nats/index.js";
import { BATCH_VIEW_FILES } from "../../shared/index.js";
import { publishTile, startSpeedWorker } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  lanemap,
  runLanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

const started = (l: Record<string, unknown>) => l["msg"] === "speed worker started";
const classified = (l: Record<string, unknown>) => l["msg"] === "tile classified";

/** The tile ids and the watermark of the current batch view of `dataDir`. */
async function currentView(dataDir: string): Promise<{ watermark: number; tiles: Set<string> }> {
  const current = await readCurrentBatch(dataDir);
  assert.ok(current, "a view is published");
  const table = tableFromIPC(readFileSync(join(current.dir, BATCH_VIEW_FILES.arrow)));
  const tiles = new Set<string>();
  for (let r = 0; r < table.numRows; r++) tiles.add((table.get(r)!.toJSON() as { tile_id: string }).tile_id);
  return { watermark: current.manifest.watermark, tiles };
}

describe("batch runners built by the one factory", { skip: natsMissing() }, () => {
  test("under live ingest, every scheduled run's watermark stays at or below the speed ack floor and its view holds only catalogued tiles", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("lanemap-factory-");
    const config = testConfig(dir.path, { LANEMAP_BATCH_WORKERS: "1" });
    const logger = testLogger();
    const models = await openModelRegistry(config, nats.nc);
    const model = await testModel();
    await models.put(model, { trainedBy: "test" });
    await models.activate(model.version);
    // The registry is mirrored: a process without NATS on this data directory applies the same model.
    assert.equal((await (await FileModelRegistry.open(dir.path)).active())?.version, model.version);

    // A slow speed worker: each tile waits after it is registered, so the ack floor lags the stream.
    await using worker = await startSpeedWorker(config, {
      nc: nats.nc,
      logger,
      models,
      hooks: { beforeClassify: () => sleep(150) },
    });
    const js = jetstream(nats.nc);
    const jsm = await jetstreamManager(nats.nc);
    const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc, models });
    const schedule = scheduleBatchRuns(runner, config, { logger, options: {} });

    const published: number[] = [];
    let feeding = true;
    const feeder = (async () => {
      for (let i = 0; feeding && i < 24; i++) {
        const t = testTile(i % 4, Math.floor(i / 4) % 3, new Date(Date.UTC(2024, 0, 1 + i)).toISOString());
        published.push(
          (await publishTile(js, t.bytes, { tileId: t.tileId, cell: t.cell, acquired: t.acquired })).seq,
        );
        await sleep(40);
      }
    })();

    const store = new ArchiveStore(dir.path);
    const reports: { report: RunReport; floorAfter: number; catalogued: Map<string, number> }[] = [];
    try {
      // Runs while tiles stream in, from the first acknowledged tile on (a run over nothing is refused).
      await waitFor(
        "a first acknowledged tile",
        async () => ((await speedLaneStatus(jsm)).consumer?.ackFloorSeq ?? 0) >= 1,
      );
      for (let i = 0; i < 3; i++) {
        const report = await schedule.tick();
        assert.ok(report, "the tick ran and published");
        const current = await readCurrentBatch(dir.path);
        assert.ok(current, "a view is published");
        assert.equal(current.name, report.version);
        const floorAfter = (await speedLaneStatus(jsm)).consumer?.ackFloorSeq ?? 0;
        const catalogued = new Map<string, number>();
        for await (const e of store.entries()) catalogued.set(e.tileId, e.ingestSeq);
        reports.push({ report, floorAfter, catalogued });
        const table = tableFromIPC(readFileSync(join(current.dir, BATCH_VIEW_FILES.arrow)));
        for (let r = 0; r < table.numRows; r++) {
          const row = table.get(r)!.toJSON() as { tile_id: string; ingest_seq: bigint | number };
          const seq = Number(row.ingest_seq);
          assert.ok(catalogued.has(row.tile_id), `${row.tile_id} is in the catalogue`);
          assert.ok(
            seq <= current.manifest.watermark,
            `${row.tile_id} (seq ${seq}) is at or below watermark ${current.manifest.watermark}`,
          );
        }
        // Nothing at or below the watermark is lost: the view holds every such catalogued tile.
        const inView = new Set<string>();
        for (let r = 0; r < table.numRows; r++)
          inView.add((table.get(r)!.toJSON() as { tile_id: string }).tile_id);
        for (const [tileId, seq] of catalogued)
          if (seq <= current.manifest.watermark)
            assert.ok(inView.has(tileId), `${tileId} (seq ${seq}) is in the view`);
        assert.equal(current.manifest.modelVersion, model.version, "the registry's active model is applied");
        await sleep(200);
      }
    } finally {
      feeding = false;
      await feeder;
      await schedule.stop();
    }
    const watermarks = reports.map((r) => r.report.watermark);
    for (const r of reports)
      assert.ok(
        r.report.watermark <= r.floorAfter,
        `watermark ${r.report.watermark} <= ack floor ${r.floorAfter}`,
      );
    assert.deepEqual(
      [...watermarks].sort((a, b) => a - b),
      watermarks,
      "watermarks never move back",
    );
    assert.ok(
      watermarks.some((w) => w < Math.max(...published)),
      `some run happened while tiles were still with the speed lane (watermarks ${watermarks.join(", ")}, last seq ${Math.max(...published)})`,
    );
    await waitFor("the speed lane to catch up", async () => {
      const s = await speedLaneStatus(jsm);
      return (s.consumer?.ackFloorSeq ?? 0) >= Math.max(...published);
    });
    void worker;
  });

  test("`lanemap batch run` beside a speed worker SIGKILLed in the middle of a tile leaves that tile to the speed lane until it is acknowledged", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("lanemap-factory-kill-");
    const env = testEnv(dir.path, { NATS_URL: nats.server.url, LANEMAP_LOG_LEVEL: "info" });
    const models = await openModelRegistry(testConfig(dir.path), nats.nc);
    const model = await testModel();
    await models.put(model, { trainedBy: "test" });
    await models.activate(model.version);

    // A first tile, classified and acknowledged by an ordinary worker.
    const first = testTile(0, 0, "2024-08-01T10:00:00Z");
    {
      await using worker = lanemap(["speed", "--name", "first"], env);
      await worker.waitForLine("the first worker to start", started);
      const sent = await publishTile(jetstream(nats.nc), first.bytes, first);
      await worker.waitForLine(
        "the first tile classified",
        (l) => classified(l) && l["streamSeq"] === sent.seq,
      );
    }
    // A second tile: the slow worker registers it in the catalogue, then dies before classifying it.
    const second = testTile(1, 0, "2024-08-02T10:00:00Z");
    await using slow = lanemap(["speed", "--name", "slow"], { ...env, LANEMAP_TEST_TILE_DELAY_MS: "60000" });
    await slow.waitForLine("the slow worker to start", started);
    const sentSecond = await publishTile(jetstream(nats.nc), second.bytes, second);
    await slow.waitForLine("the slow worker in the tile", (l) => l["msg"] === "tile started (test delay)");
    slow.child.kill("SIGKILL");
    assert.equal(await slow.exited, "SIGKILL");

    // The CLI's runner (built by the one factory) takes the ack floor, not the catalogue's highest sequence.
    const run = await runLanemap(["batch", "run"], env);
    assert.equal(run.code, 0, run.stderr);
    const before = await currentView(dir.path);
    assert.ok(before.watermark < sentSecond.seq, `watermark ${before.watermark} < ${sentSecond.seq}`);
    assert.ok(before.tiles.has(first.tileId), "the acknowledged tile is in the view");
    assert.ok(!before.tiles.has(second.tileId), "the unacknowledged tile is left to the speed lane");

    // Redelivered to a new worker, acknowledged, then absorbed by the next run.
    {
      await using rescuer = lanemap(["speed", "--name", "rescuer"], env);
      await rescuer.waitForLine(
        "the second tile classified by the rescuer",
        (l) => classified(l) && l["tileId"] === second.tileId,
      );
      await waitFor("the second tile acknowledged", async () => {
        const s = await speedLaneStatus(await jetstreamManager(nats.nc));
        return (s.consumer?.ackFloorSeq ?? 0) >= sentSecond.seq;
      });
    }
    const again = await runLanemap(["batch", "run"], env);
    assert.equal(again.code, 0, again.stderr);
    const after = await currentView(dir.path);
    assert.ok(after.watermark >= sentSecond.seq, `watermark ${after.watermark} >= ${sentSecond.seq}`);
    assert.ok(after.tiles.has(second.tileId), "the acknowledged tile is absorbed");
  });
});
