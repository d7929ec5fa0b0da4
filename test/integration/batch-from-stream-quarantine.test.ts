/**
 * Kappa mode and the catalogue agree on a tile the speed lane dead-lettered after cataloguing it
 * (issue 14): `batch run --from-stream` sets it apart as quarantined (exit 0), as the catalogue-driven
 * run does, instead of failing it again (exit 1). Real nats-server, the speed worker, DuckDB.
 */
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createBatchRunner } from "../../batch/index.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import { parseConfig } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { publishTile, startSpeedWorker, type TileFailedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { activateModel, js, testConfig, waitFor } from "./speed-fixtures.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 1, height: 1 });
});
after(() => set?.dispose());

test(
  "a replay of the ingest stream quarantines a tile the speed lane dead-lettered after cataloguing it, as the catalogue run does, and exits 0",
  { skip: natsMissing(), timeout: 180_000 },
  async () => {
    await using nats = await natsFixture();
    const dataDir = join(set.root, "kappa");
    mkdirSync(dataDir, { recursive: true });
    const archive = new ArchiveStore(dataDir);
    const logger = testLogger();
    await activateModel(nats.nc, set.model);
    const models = await NatsModelRegistry.open(nats.nc);
    await using worker = await startSpeedWorker(testConfig(dataDir), { nc: nats.nc, logger, archive });
    const failed: TileFailedEvent[] = [];
    worker.on((e) => e.type === "tile-failed" && failed.push(e));
    const acquired = "2024-08-01T10:00:00Z";
    const good = generateTile({ seed: 7, col: 0, row: 0, tileSize: 64, bands: 6, acquired });
    await publishTile(js(nats.nc), good.bytes, { cell: good.cell, tileId: "good-tile", acquired });
    // Sound header and strip table, garbage deflate stream: it registers, then cannot be decoded.
    const corrupt = generateTile({ seed: 7, col: 1, row: 1, tileSize: 64, bands: 6, acquired }).bytes.slice();
    for (let i = 9000; i < 12000; i++) corrupt[i] = (i * 37) & 0xff;
    await publishTile(js(nats.nc), corrupt, { cell: "c0001r0001", tileId: "corrupt-tile", acquired });
    await waitFor("the corrupt tile dead-lettered", () => failed.length >= 1);
    assert.equal(failed[0]?.code, "TILE_DECODE");
    await worker.stop();

    const config = parseConfig({
      LANEMAP_DATA_DIR: dataDir,
      LANEMAP_BATCH_WORKERS: "1",
      LANEMAP_LOG_LEVEL: "silent",
    });
    const runner = createBatchRunner(config, { logger, archive, models, nc: nats.nc });
    try {
      const kappa = await runner.run({ fromStream: {} });
      assert.deepEqual(kappa.failures, [], "no failure: the exit code stays 0");
      assert.deepEqual(
        kappa.quarantined.map((q) => [q.tileId, q.code]),
        [["corrupt-tile", "TILE_DECODE"]],
      );
      const catalogue = await runner.run({ full: true });
      assert.deepEqual(
        catalogue.quarantined.map((q) => q.tileId),
        kappa.quarantined.map((q) => q.tileId),
        "the catalogue run quarantines the same tile",
      );
      assert.equal(kappa.tiles.total, catalogue.tiles.total);
    } finally {
      await runner.close();
    }
  },
);
