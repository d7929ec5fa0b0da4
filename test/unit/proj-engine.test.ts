import assert from "node:assert/strict";
import { describe, test } from "node:test";

const { loadProjEngine } = await import("../../shared/index.js");
const { GDAL_DRIVERS_SKIPPED } = await import("../../shared/crs/gdal-drivers.js");

describe("the PROJ engine's start (shared/crs/proj.ts)", () => {
  test("keeps only GDAL's GTiff driver registered: every other driver of this gdal3.js is skipped", async () => {
    const engine = await loadProjEngine();
    const extra = engine.drivers.filter((d) => d !== "GTiff");
    assert.deepEqual(
      extra,
      [],
      `gdal3.js ${engine.version} registers drivers shared/crs/gdal-drivers.ts does not skip: ${extra.join(", ")}`,
    );
    assert.deepEqual(engine.drivers, ["GTiff"]);
    assert.ok(!GDAL_DRIVERS_SKIPPED.includes("GTiff"));
  });

  test("still reads a GeoTIFF's CRS and transforms points with GTiff alone", async () => {
    const { encodeGeoTiff } = await import("../../shared/index.js");
    const engine = await loadProjEngine();
    const bytes = encodeGeoTiff({
      width: 1,
      height: 1,
      bands: [new Uint8Array(1)],
      geoTransform: [500000, 30, 0, 1800000, 0, -30],
      epsg: 32615,
    });
    const reading = engine.readGeoTiffCrs(bytes);
    assert.equal(reading?.epsg, 32615);
    assert.equal(reading?.name, "WGS 84 / UTM zone 15N");
    const xs = Float64Array.of(500000);
    const ys = Float64Array.of(1800000);
    engine.transformer("EPSG:32615", "EPSG:4326")(xs, ys);
    // On the zone's central meridian, 93° W.
    assert.equal(xs[0]?.toFixed(6), "-93.000000");
  });
});
