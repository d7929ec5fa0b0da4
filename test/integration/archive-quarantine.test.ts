/**
 * Issue 14: a tile the speed lane dead-letters as permanently bad (an undecodable TIFF, a band layout
 * the model cannot use) is registered in the master archive before it fails. Batch runs leave such
 * a tile out as quarantined instead of failing it again in every run; `lanemap archive list --bad`
 * shows it, `lanemap archive remove` takes it out, and `lanemap dlq retry` after a fix brings it back.
 * Everything is real, on both storages: nats-server, a speed worker, worker threads, DuckDB.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { addArchiveFolder, createBatchRunner, readRunSet, type RunReport } from "../../batch/index.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import {
  DeadLetterQueue,
  LiveView,
  NatsModelRegistry,
  NatsTileArchive,
} from "../../shared/adapters/nats/index.js";
import { BATCH_VIEW_FILES, LanemapError, parseConfig, type TileArchive } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { publishTile, startSpeedWorker, type TileFailedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { lanemap, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { activateModel, js, testConfig, testModel, waitFor } from "./speed-fixtures.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 2 });
});
after(() => set?.dispose());

/** A sample-grid tile whose deflate stream is garbage: its header and strip table are sound, so it registers, and then it cannot be decoded. */
function undecodableTile(): { bytes: Uint8Array; cell: string; tileId: string; acquired: string } {
  const acquired = "2024-08-01T10:00:00Z";
  const t = generateTile({ seed: 7, col: 1, row: 1, tileSize: 64, bands: 6, acquired });
  const bytes = t.bytes.slice();
  for (let i = 9000; i < 12000; i++) bytes[i] = (i * 37) & 0xff;
  return { bytes, cell: t.cell, tileId: "corrupt-tile", acquired };
}

async function viewTileIds(report: RunReport): Promise<string[]> {
  const db = await DuckDbDatabase.open(join(report.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
  try {
    const rows = await db.allJS<{ tile_id: string }>("SELECT tile_id FROM tiles ORDER BY tile_id");
    return rows.map((r) => r.tile_id);
  } finally {
    db.closeSync();
  }
}

function scenario(backend: "files" | "nats"): void {
  test(
    `with LANEMAP_STORAGE=${backend}, a dead-lettered tile is quarantined by batch runs, ` +
      "listed and removed with lanemap archive, and a dead letter retried after a fix is classified again",
    { timeout: 240_000 },
    async () => {
      await using nats = await natsFixture();
      const dataDir = join(set.root, `data-${backend}`);
      mkdirSync(dataDir, { recursive: true });
      const archive: TileArchive =
        backend === "files"
          ? new ArchiveStore(dataDir)
          : await NatsTileArchive.open(nats.nc, { replicas: 1 });
      const logger = testLogger();
      await addArchiveFolder(archive, set.tilesDir, { logger, maxPixels: 1e8 });
      const good = (await readRunSet(archive)).entries.map((e) => e.tileId).sort();
      await activateModel(nats.nc, set.model);
      const models = await NatsModelRegistry.open(nats.nc);

      // The speed lane dead-letters an undecodable tile and one with 4 bands for a 6-band model.
      await using worker = await startSpeedWorker(testConfig(dataDir), { nc: nats.nc, logger, archive });
      const failed: TileFailedEvent[] = [];
      worker.on((e) => e.type === "tile-failed" && failed.push(e));
      const corrupt = undecodableTile();
      await publishTile(js(nats.nc), corrupt.bytes, corrupt);
      const fourBand = generateTile({
        seed: 7,
        col: 0,
        row: 1,
        tileSize: 64,
        bands: 4,
        acquired: "2024-08-02T10:00:00Z",
      });
      const misfit = { cell: fourBand.cell, tileId: "four-band-tile", acquired: "2024-08-02T10:00:00Z" };
      await publishTile(js(nats.nc), fourBand.bytes, misfit);
      await waitFor("both tiles dead-lettered", () => failed.length >= 2);
      assert.deepEqual(failed.map((f) => [f.tileId, f.code]).sort(), [
        ["corrupt-tile", "TILE_DECODE"],
        ["four-band-tile", "TILE_INVALID"],
      ]);
      const corruptEntry = await archive.get("corrupt-tile");
      assert.ok(corruptEntry, "the speed lane registered the tile before it failed");

      // A tile a bulk load adds that fails in the batch run itself (3 bands) is not quarantined.
      const bulkDir = join(set.root, `bulk-${backend}`);
      mkdirSync(bulkDir, { recursive: true });
      const threeBand = generateTile({
        seed: 7,
        col: 0,
        row: 0,
        tileSize: 64,
        bands: 3,
        acquired: "2024-08-03T10:00:00Z",
      });
      writeFileSync(join(bulkDir, "three-band.tif"), threeBand.bytes);
      const bulk = await addArchiveFolder(archive, bulkDir, { logger, maxPixels: 1e8 });
      const threeBandId = bulk.registered[0]?.tileId ?? "";
      assert.ok(threeBandId);

      const config = parseConfig({
        LANEMAP_DATA_DIR: dataDir,
        LANEMAP_BATCH_WORKERS: "2",
        LANEMAP_LOG_LEVEL: "silent",
      });
      const runner = createBatchRunner(config, { logger, archive, models });
      try {
        const first = await runner.run();
        assert.deepEqual(
          first.quarantined.map((q) => [q.tileId, q.code]),
          [
            ["corrupt-tile", "TILE_DECODE"],
            ["four-band-tile", "TILE_INVALID"],
          ],
        );
        assert.equal(first.quarantined[0]?.contentHash, corruptEntry.contentHash);
        assert.equal(first.tiles.quarantined, 2);
        assert.deepEqual(
          first.failures.map((f) => f.tileId),
          [threeBandId],
          "only the tile that failed in this run is a failure (exit 1)",
        );
        assert.equal(first.tiles.total, good.length + 1);
        assert.deepEqual(await viewTileIds(first), good);

        // The fix for the 4-band tile: a model for its layout, then the dead letter sent back.
        const fourBandModel = await testModel(5, 4);
        await activateModel(nats.nc, fourBandModel);
        await waitFor(
          "the worker on the 4-band model",
          () => worker.modelVersion() === fourBandModel.version,
        );
        const dlq = await DeadLetterQueue.open(nats.nc);
        const letter = (await dlq.list()).find((l) => l.tileId === "four-band-tile");
        assert.ok(letter);
        await dlq.retry(letter.seq);
        const live = await LiveView.open(nats.nc);
        await waitFor("the retried tile classified", () => live.get(misfit.cell, misfit.tileId));
        const after = await readRunSet(archive);
        assert.deepEqual(
          after.quarantined?.map((q) => q.tileId),
          ["corrupt-tile"],
          "a classified retry clears its bad-tile record, so batch runs take the tile again",
        );
        assert.ok(after.entries.some((e) => e.tileId === "four-band-tile"));

        // The operator sees the bad tiles and takes three tiles out; an unknown id is one line, exit 1.
        const env: Record<string, string> = {
          LANEMAP_DATA_DIR: dataDir,
          LANEMAP_STORAGE: backend,
          NATS_URL: nats.server.url,
          LANEMAP_LOG_LEVEL: "warn",
        };
        const listed = lanemap(["archive", "list", "--bad", "--json"], env);
        assert.equal((await listed.exited).code, 0, listed.stderr());
        const records = JSON.parse(listed.stdout()) as { key: string; code: string; contentHash?: string }[];
        assert.deepEqual(
          records.filter((r) => r.contentHash).map((r) => [r.key, r.code, r.contentHash]),
          [["corrupt-tile", "TILE_DECODE", corruptEntry.contentHash]],
        );
        const removed = lanemap(
          ["archive", "remove", "corrupt-tile", threeBandId, "four-band-tile", "no-such-tile"],
          env,
        );
        assert.equal((await removed.exited).code, 1);
        assert.match(
          removed.stdout(),
          backend === "nats"
            ? /^removed corrupt-tile: catalogue entry, content [0-9a-f]{12} left for `lanemap archive compact` \(removed there unless another entry has it\), bad-tile record$/m
            : /^removed corrupt-tile: catalogue entry, content [0-9a-f]{12} deleted, bad-tile record$/m,
        );
        assert.match(removed.stdout(), new RegExp(`^removed ${threeBandId}: catalogue entry`, "m"));
        assert.match(removed.stdout(), /^removed four-band-tile: catalogue entry/m);
        assert.match(
          removed.stderr(),
          /^lanemap: TILE_NOT_FOUND: no tile no-such-tile in the archive \(the other 3 removed\)/m,
        );
        assert.equal(await archive.get("corrupt-tile"), undefined);
        // NATS purges nothing in place: the removed tiles' objects go with a compaction's old generation.
        const compacted = lanemap(["archive", "compact", "--grace", "0"], env);
        assert.equal((await compacted.exited).code, 0, compacted.stderr());
        assert.match(
          compacted.stdout(),
          backend === "nats"
            ? /^compacted into generation 2: copied \d+ objects \([\d.]+ MiB\), deleted lanemap-archive-g000001 whole, dropping 3 objects/m
            : /nothing to compact: the files backend deletes a removed tile's object at once$/m,
        );
        await assert.rejects(
          archive.readObject(corruptEntry.contentHash),
          (err: unknown) => err instanceof LanemapError && err.code === "OBJECT_MISSING",
        );

        // The next run: the good tiles only, nothing failed or quarantined (exit 0).
        const second = await runner.run({ model: set.model.version });
        assert.equal(second.tiles.failed, 0);
        assert.equal(second.tiles.quarantined, 0);
        assert.deepEqual(await viewTileIds(second), good);
      } finally {
        await runner.close();
        await worker.stop();
      }
    },
  );
}

describe(
  "tiles the speed lane dead-letters, in batch runs and lanemap archive",
  { skip: natsMissing() },
  () => {
    scenario("files");
    scenario("nats");
  },
);
