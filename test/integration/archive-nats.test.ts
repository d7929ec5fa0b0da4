/**
 * Issue 14, the archive half: with LANEMAP_STORAGE=nats nothing but NATS is shared. A speed worker
 * on one machine registers a fresh tile in the JetStream archive; a batch run (threads executor) on
 * "another machine", with an empty data directory of its own, finds it in the NATS catalogue, reads
 * its object through the run's thread and classifies it exactly as a direct classification does, and
 * serves the tile's source GeoTIFF from the NATS object store.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tableFromIPC } from "apache-arrow";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { openTileArchive } from "../../infra/platform/storage.js";
import { openPublishedViews } from "../../infra/platform/views.js";
import { addArchiveFolder } from "../../batch/index.js";
import { modelTrainerFor } from "../../infra/platform/trainer.js";
import { ArchiveStore, FileModelRegistry, LabelStore } from "../../shared/adapters/archive/index.js";
import { LiveView, NatsTileArchive } from "../../shared/adapters/nats/index.js";
import {
  BATCH_VIEW_FILES,
  ConfigError,
  TrainPool,
  dataPaths,
  labelInputCrs,
  parseLabelFeatures,
  type TileArchive,
} from "../../shared/index.js";
import { generateArchive } from "../../sample/index.js";
import { createServer } from "../../serving/index.js";
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
    // With LANEMAP_STORAGE=nats the view is published to the NATS store and CURRENT moves there.
    const views = await openPublishedViews(batchConfig, nats.nc);
    const current = await views.current();
    assert.ok(current, "machine B published a view");
    const dir = await views.materialize(current.name);
    const table = tableFromIPC(readFileSync(join(dir, BATCH_VIEW_FILES.arrow)));
    assert.equal(table.numRows, 1);
    const row = table.get(0)!.toJSON() as { tile_id: string; counts: Iterable<bigint> };
    assert.equal(row.tile_id, tile.tileId);
    assert.deepEqual([...row.counts].map(Number), await directCounts(model, tile.bytes));

    // Machine B serves the tile's source GeoTIFF out of the NATS archive (no object file here).
    const server = createServer(batchConfig, {
      logger,
      archive: await openTileArchive(batchConfig, nats.nc),
      views,
    });
    const listening = await server.listen();
    try {
      // Serving opens the view CURRENT names once it has downloaded it into its cache.
      const res = await waitFor("the tile served from the view", async () => {
        const r = await fetch(`${listening.url}/v1/tiles/${tile.tileId}/source.tif`);
        return r.status === 200 ? r : undefined;
      });
      assert.equal(res.headers.get("lanemap-tile-id"), tile.tileId);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), tile.bytes);
      const missing = await fetch(`${listening.url}/v1/tiles/nope/source.tif`);
      assert.equal(missing.status, 404);
    } finally {
      await listening.close();
      await server.close();
    }
  });

  test("the trainer on a NATS archive sends the tiles inline to its thread and trains the model the files archive trains", async () => {
    await using nats = await natsFixture();
    await using filesDir = await tempDir("lanemap-train-files-");
    await using natsDir = await tempDir("lanemap-train-nats-");
    await using sampleDir = await tempDir("lanemap-train-sample-");
    await generateArchive({
      out: sampleDir.path,
      grid: { width: 2, height: 2 },
      tileSize: 64,
      seed: 3,
      polygonsPerClass: 4,
    });
    const logger = testLogger();
    const geojson: unknown = JSON.parse(await readFile(join(sampleDir.path, "training.geojson"), "utf8"));
    const drafts = parseLabelFeatures(geojson, {
      crs: await labelInputCrs(geojson),
      author: "test",
      now: "2024-06-01T00:00:00Z",
    });
    const pool = new TrainPool({ timeoutMs: 120_000 });
    try {
      const trainOn = async (dataDir: string, archive: TileArchive) => {
        await addArchiveFolder(archive, join(sampleDir.path, "tiles"), { logger, maxPixels: 1e8 });
        await new LabelStore(dataDir).add(drafts);
        const trainer = modelTrainerFor({
          dataDir,
          registry: await FileModelRegistry.open(dataDir),
          pool,
          maxPixels: 1e8,
          archive,
        });
        return trainer.train({}, () => undefined, new AbortController().signal);
      };
      const onFiles = await trainOn(filesDir.path, new ArchiveStore(filesDir.path));
      const onNats = await trainOn(natsDir.path, await NatsTileArchive.open(nats.nc, { replicas: 1 }));
      assert.ok(onFiles.tiles > 0);
      assert.equal(onNats.tiles, onFiles.tiles);
      assert.equal(onNats.samples, onFiles.samples);
      assert.equal(onNats.version, onFiles.version, "the same labels on the same bytes make the same model");
      assert.equal(existsSync(dataPaths(filesDir.path).objects), true);
      assert.equal(existsSync(dataPaths(natsDir.path).objects), false, "no tile object on this machine");
    } finally {
      await pool.close();
    }
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
