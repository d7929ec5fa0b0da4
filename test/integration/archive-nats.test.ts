/**
 * Issue 14, the archive half: with LANEMAP_STORAGE=nats nothing but NATS is shared. A speed worker
 * on one machine registers a fresh tile in the JetStream archive; a batch run (threads executor) on
 * "another machine", with an empty data directory of its own, finds it in the NATS catalogue, reads
 * its object through the run's thread and classifies it exactly as a direct classification does.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tableFromIPC } from "apache-arrow";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { openTileArchive } from "../../infra/platform/storage.js";
import { ArchiveStore, readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { LiveView } from "../../shared/adapters/nats/index.js";
import { BATCH_VIEW_FILES, ConfigError } from "../../shared/index.js";
import { publishTile, startSpeedWorker } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  directCounts,
  js,
  tempDir,
  testConfig,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

describe("the master archive on NATS", { skip: natsMissing() }, () => {
  test("a tile a speed worker registers on one machine is classified by a batch run on another that shares only NATS", async () => {
    await using nats = await natsFixture();
    await using speedDir = await tempDir("lanemap-machine-a-");
    await using batchDir = await tempDir("lanemap-machine-b-");
    const logger = testLogger();
    const speedConfig = testConfig(speedDir.path, { LANEMAP_STORAGE: "nats" });
    const batchConfig = testConfig(batchDir.path, {
      LANEMAP_STORAGE: "nats",
      LANEMAP_BATCH_EXECUTOR: "threads",
      LANEMAP_BATCH_WORKERS: "1",
    });

    const model = await testModel();
    const speedModels = await openModelRegistry(speedConfig, nats.nc);
    await speedModels.put(model, { trainedBy: "test" });
    await speedModels.activate(model.version);

    await using worker = await startSpeedWorker(speedConfig, { nc: nats.nc, logger, models: speedModels });
    const tile = testTile(2, 1, "2024-06-01T10:40:00Z");
    const sent = await publishTile(js(nats.nc), tile.bytes, tile);
    const live = await LiveView.open(nats.nc);
    await waitFor("the live result", () => live.get(tile.cell, tile.tileId));
    await worker.stop();

    // Machine A registered the tile in NATS, not in its data directory.
    const archive = await openTileArchive(speedConfig, nats.nc);
    assert.equal(archive.backend, "nats");
    const entry = await archive.get(tile.tileId);
    assert.equal(entry?.ingestSeq, sent.seq);
    assert.equal(entry?.source, "stream");
    assert.equal(await new ArchiveStore(speedDir.path).get(tile.tileId), undefined);

    // Machine B: its own empty data directory; the model comes from the NATS registry.
    assert.deepEqual(await readdir(batchDir.path), []);
    const { runner } = await buildBatchRunner(batchConfig, {
      logger,
      nc: nats.nc,
      models: await openModelRegistry(batchConfig, nats.nc),
    });
    try {
      const report = await runner.run();
      assert.equal(report.tiles.total, 1);
      assert.equal(report.tiles.classified, 1);
      assert.equal(report.tiles.failed, 0);
      assert.equal(report.modelVersion, model.version);
    } finally {
      await runner.close();
    }
    const current = await readCurrentBatch(batchDir.path);
    assert.ok(current, "machine B published a view");
    const table = tableFromIPC(readFileSync(join(current.dir, BATCH_VIEW_FILES.arrow)));
    assert.equal(table.numRows, 1);
    const row = table.get(0)!.toJSON() as { tile_id: string; counts: Iterable<bigint> };
    assert.equal(row.tile_id, tile.tileId);
    assert.deepEqual([...row.counts].map(Number), await directCounts(model, tile.bytes));
  });

  test("LANEMAP_STORAGE=nats without a NATS connection is refused with one CONFIG line", async () => {
    await using dir = await tempDir();
    await assert.rejects(
      openTileArchive(testConfig(dir.path, { LANEMAP_STORAGE: "nats" })),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.code, "CONFIG");
        assert.doesNotMatch(err.message, /\n/);
        return true;
      },
    );
  });
});
