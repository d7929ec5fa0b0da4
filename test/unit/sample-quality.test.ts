import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SAMPLE_QA, SAMPLE_QA_BAND_NAME, generateTile } from "../../sample/index.js";
import {
  LANDSAT_DEFAULT_MASK,
  computeFeatures,
  createFeatureSpec,
  decodeGeoTiff,
  type BandArray,
} from "../../shared/internal.js";

const request = { seed: 1, col: 2, row: 3, tileSize: 64, acquired: "2026-03-01T16:40:00Z" } as const;

describe("partly cloudy sample acquisitions with a QA band", () => {
  test("carry a QA_PIXEL band whose flags the model's mask reads, clouds bright rather than nodata", async () => {
    const tile = generateTile({ ...request, quality: true, cloudCover: 0.35 });
    const raster = await decodeGeoTiff(tile.bytes);
    assert.equal(raster.bands.length, 7);
    const qa = raster.bands[6] as BandArray;
    const n = 64 * 64;
    let cloud = 0;
    for (let i = 0; i < n; i++) {
      const v = qa[i] as number;
      if (v === SAMPLE_QA.cloud) {
        cloud++;
        // A cloud top has data: bright in every band.
        assert.ok((raster.bands[0]![i] as number) > 5000);
      } else
        assert.ok(
          v === SAMPLE_QA.clear || (v & (SAMPLE_QA.dilated | SAMPLE_QA.shadow)) !== 0,
          `pixel ${i}: QA ${v}`,
        );
    }
    assert.ok(Math.abs(cloud / n - 0.35) < 0.01, `cloud share ${cloud / n}`);
    const spec = createFeatureSpec(7, {
      red: 3,
      nir: 4,
      quality: { band: 7, kind: "landsat-c2-qa-pixel", mask: [...LANDSAT_DEFAULT_MASK] },
    });
    const f = computeFeatures(raster, spec);
    // What the model masks is exactly what the generator flagged.
    assert.deepEqual([...f.valid], [...tile.valid]);
    assert.equal(f.maskedCount, tile.nodataPixels);
  });

  test("leave tiles without the option byte-identical (clouds as nodata, six bands)", async () => {
    const a = generateTile(request);
    const b = generateTile({ ...request, quality: false });
    assert.deepEqual(a.bytes, b.bytes);
    assert.equal((await decodeGeoTiff(a.bytes)).bands.length, 6);
    assert.equal(SAMPLE_QA_BAND_NAME, "QA_PIXEL");
  });
});
