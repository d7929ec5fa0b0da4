/**
 * A tile's .aux.xml travels as its effect: `lanemap ingest` sends the PAM band values as the
 * Lanemap-Pam header; the speed worker records them in the catalogue entry (so the batch lane applies
 * them too) and masks with them, exactly as a decode of the file with its sidecar would.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { LiveView } from "../../shared/adapters/nats/index.js";
import { applyPam, computeFeatures, decodeGeoTiff, type BandArray, type Pam } from "../../shared/index.js";
import { publishTile, startSpeedWorker } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  js,
  tempDir,
  testConfig,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

/** The most frequent value of a band: as a sidecar nodata it masks many pixels. */
function mostFrequent(band: BandArray): number {
  const counts = new Map<number, number>();
  for (const v of band) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
}

describe("a PAM sidecar's effect in the speed lane", { skip: natsMissing() }, () => {
  test("the Lanemap-Pam header masks the pixels the sidecar masks and is recorded with the tile", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const model = await testModel();
    await activateModel(nats.nc, model);
    const config = testConfig(dir.path);
    await using _worker = await startSpeedWorker(config, { nc: nats.nc, logger: testLogger() });

    const tile = testTile(2, 2, "2024-06-03T10:40:00Z");
    const raster = await decodeGeoTiff(tile.bytes);
    const pam: Pam = { bands: [{ band: 2, nodata: String(mostFrequent(raster.bands[1] as BandArray)) }] };
    const withSidecar = computeFeatures(applyPam(raster, pam), model.features).validCount;
    const without = computeFeatures(raster, model.features).validCount;
    assert.ok(withSidecar < without, "the sidecar's nodata masks more pixels");

    await publishTile(js(nats.nc), tile.bytes, { ...tile, pam });
    const live = await LiveView.open(nats.nc);
    const entry = await waitFor("the live result", () => live.get(tile.cell, tile.tileId));
    assert.equal(entry.result.validPixels, withSidecar);
    const catalogued = await new ArchiveStore(config.dataDir).get(tile.tileId);
    assert.deepEqual(catalogued?.pam, pam, "the batch lane will apply the same values");
  });
});
