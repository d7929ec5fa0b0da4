/**
 * A successful bulk load clears the bad-tile records of the files it registers (issue 14): an
 * operator's `lanemap archive add /srv/tiles` refused 25 files without an acquisition time
 * (TILE_INVALID, recorded by file name), and `archive add --acquired ...` of the same files then
 * registered them but left the 25 records in `archive list --bad` until `archive remove --bad`.
 * Both backends: the files archive and the JetStream one (real nats-server).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { addArchiveFolder } from "../../batch/index.js";
import { openTileArchive } from "../../infra/platform/storage.js";
import { encodeGeoTiff, type TileArchive } from "../../shared/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig, testLogger } from "./speed-fixtures.js";

/** A georeferenced 8×8, 3-band GeoTIFF with no acquisition time anywhere (no tag, no date in its name). */
function undatedTile(seed: number): Uint8Array {
  const band = () => Uint16Array.from({ length: 64 }, (_, i) => (i * 37 + seed * 101) % 4000);
  return encodeGeoTiff({
    width: 8,
    height: 8,
    bands: [band(), band(), band()],
    geoTransform: [500_000 + seed * 240, 30, 0, 4_000_000, 0, -30],
    epsg: 32615,
    crsKind: "projected",
    acquired: null,
  });
}

/** Loads `dir` undated (refused), then with `--acquired` (registered); returns the bad keys after each. */
async function refusedThenAdded(archive: TileArchive, dir: string) {
  const logger = testLogger();
  const keys = async () => {
    const out: string[] = [];
    for await (const r of archive.badTiles()) out.push(r.key);
    return out.sort();
  };
  const first = await addArchiveFolder(archive, dir, { logger, maxPixels: 1e8 });
  const afterRefusal = await keys();
  const second = await addArchiveFolder(archive, dir, {
    logger,
    maxPixels: 1e8,
    acquired: "2024-05-01T10:00:00Z",
  });
  return { first, afterRefusal, second, afterAdd: await keys() };
}

async function checkBackend(archive: TileArchive, dir: string): Promise<void> {
  // A record of another file (a speed-lane dead letter, keyed by tile id) is not the load's to clear.
  await archive.recordBad({
    key: "c0009r0009-20240101T000000Z",
    source: "nats:LANEMAP_TILES#7",
    code: "TILE_DECODE",
    reason: "not a TIFF",
    at: new Date().toISOString(),
  });
  const { first, afterRefusal, second, afterAdd } = await refusedThenAdded(archive, dir);
  assert.deepEqual(
    first.bad.map((b) => [b.file, b.code]).sort(), // in the order the files were read, 4 at a time
    [
      ["c0001r0001.tif", "TILE_INVALID"],
      ["c0002r0001.tif", "TILE_INVALID"],
    ],
    "without an acquisition time both files are refused",
  );
  assert.deepEqual(afterRefusal, ["c0001r0001.tif", "c0002r0001.tif", "c0009r0009-20240101T000000Z"]);
  assert.equal(second.added, 2, "with --acquired both are registered");
  assert.deepEqual(
    second.clearedBad,
    ["c0001r0001.tif", "c0002r0001.tif"],
    "the report names the records cleared",
  );
  assert.deepEqual(
    afterAdd,
    ["c0009r0009-20240101T000000Z"],
    "their bad records are gone, the other one stays",
  );
}

test("a bulk load that registers files an earlier load refused clears their bad-tile records (files archive)", async () => {
  await using data = await tempDir("tasks14-bad-files-");
  await using tiles = await tempDir("tasks14-bad-tiles-");
  writeFileSync(join(tiles.path, "c0001r0001.tif"), undatedTile(1));
  writeFileSync(join(tiles.path, "c0002r0001.tif"), undatedTile(2));
  const archive = await openTileArchive(testConfig(data.path));
  assert.equal(archive.backend, "files");
  await checkBackend(archive, tiles.path);
});

test(
  "a bulk load that registers files an earlier load refused clears their bad-tile records (NATS archive)",
  { skip: natsMissing() },
  async () => {
    await using nats = await natsFixture();
    await using data = await tempDir("tasks14-bad-nats-");
    await using tiles = await tempDir("tasks14-bad-tiles-");
    writeFileSync(join(tiles.path, "c0001r0001.tif"), undatedTile(1));
    writeFileSync(join(tiles.path, "c0002r0001.tif"), undatedTile(2));
    const archive = await openTileArchive(testConfig(data.path, { LANEMAP_STORAGE: "nats" }), nats.nc);
    assert.equal(archive.backend, "nats");
    await checkBackend(archive, tiles.path);
  },
);
