import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  LANDSAT_QA_PIXEL_BITS,
  TileInvalidError,
  applyQualityMask,
  computeFeatures,
  createFeatureSpec,
  featureDim,
  featureNames,
  parseFeatureSpec,
  parseQualityOption,
  qaPixelBits,
  type BandArray,
  type Raster,
} from "../../shared/internal.js";
import { CIRRUS, CLEAR, CLOUD, DILATED, FILL, SHADOW, SNOW, WATER } from "../helpers/training-fixtures.js";

function raster(width: number, height: number, bands: BandArray[], nodata: number | null = null): Raster {
  const n = bands.length;
  return {
    width,
    height,
    bandCount: n,
    dtype: "float64",
    nodata: new Array(n).fill(nodata),
    scale: new Array(n).fill(1),
    offset: new Array(n).fill(0),
    geoTransform: null,
    crs: null,
    bounds: null,
    boundsWgs84: null,
    acquired: null,
    compression: "none",
    tiled: false,
    bands,
  };
}

describe("Landsat Collection 2 QA_PIXEL masks", () => {
  test("use the bit positions of the USGS product guide", () => {
    assert.deepEqual(LANDSAT_QA_PIXEL_BITS, {
      fill: 0,
      "dilated-cloud": 1,
      cirrus: 2,
      cloud: 3,
      "cloud-shadow": 4,
      snow: 5,
      clear: 6,
      water: 7,
    });
    assert.equal(qaPixelBits(["fill", "cloud", "cloud-shadow"]), FILL | CLOUD | SHADOW);
  });

  test("clear a pixel when any masked flag is set, and keep clear, water and (unmasked) snow pixels", () => {
    const qa = Uint16Array.from([
      CLEAR,
      CLEAR | WATER,
      SNOW,
      CLOUD | DILATED,
      DILATED,
      CIRRUS,
      SHADOW,
      FILL,
      // High-confidence bits (8-15) alone mask nothing: the mask reads flags only.
      CLEAR | (3 << 8) | (3 << 14),
    ]);
    const valid = new Uint8Array(qa.length).fill(1);
    const masked = applyQualityMask(
      {
        band: 1,
        kind: "landsat-c2-qa-pixel",
        mask: ["fill", "dilated-cloud", "cirrus", "cloud", "cloud-shadow"],
      },
      qa,
      0,
      valid,
    );
    assert.deepEqual([...valid], [1, 1, 1, 0, 0, 0, 0, 0, 1]);
    assert.equal(masked, 5);
  });

  test("count only pixels that had data as masked (nodata keeps its own reason)", () => {
    const valid = Uint8Array.from([0, 1, 1]);
    const masked = applyQualityMask(
      { band: 1, kind: "landsat-c2-qa-pixel", mask: ["cloud"] },
      Uint16Array.from([CLOUD, CLOUD, CLEAR]),
      0,
      valid,
    );
    assert.deepEqual([...valid], [0, 0, 1]);
    assert.equal(masked, 1);
  });
});

describe("Sentinel-2 L2A SCL masks", () => {
  test("clear the pixels whose scene class is listed (3 shadow, 8/9 cloud, 10 cirrus)", () => {
    const scl = Uint8Array.from([0, 3, 4, 5, 6, 8, 9, 10, 11]);
    const valid = new Uint8Array(scl.length).fill(1);
    applyQualityMask({ band: 1, kind: "sentinel2-scl", classes: [3, 8, 9, 10] }, scl, 0, valid);
    assert.deepEqual([...valid], [1, 0, 1, 1, 1, 0, 0, 0, 1]);
  });

  test("mask a code outside Sen2Cor's 0..11 (a nodata fill such as 255 or -1, or not an SCL band), counted as masked", () => {
    const scl = Int16Array.from([4, 12, 255, -1, 11, 300]);
    const valid = new Uint8Array(scl.length).fill(1);
    const masked = applyQualityMask(
      { band: 1, kind: "sentinel2-scl", classes: [3, 8, 9, 10] },
      scl,
      0,
      valid,
    );
    assert.deepEqual([...valid], [1, 0, 0, 0, 1, 0]);
    assert.equal(masked, 4);
  });
});

describe("a feature spec with a quality band", () => {
  const quality = { band: 3, kind: "landsat-c2-qa-pixel", mask: ["cloud", "cloud-shadow"] } as const;

  test("reads the band for the mask and never makes it a feature", () => {
    const spec = createFeatureSpec(3, { red: 1, nir: 2, quality: { ...quality, mask: [...quality.mask] } });
    assert.deepEqual(featureNames(spec), ["b1", "b2", "ndvi"]);
    assert.equal(featureDim(spec), 3);
    const r = raster(2, 2, [
      Float64Array.from([10, 20, 30, 40]),
      Float64Array.from([50, 60, 70, 80]),
      Uint16Array.from([CLEAR, CLOUD, SHADOW | DILATED, CLEAR]),
    ]);
    const f = computeFeatures(r, spec);
    assert.deepEqual([...f.valid], [1, 0, 0, 1]);
    assert.equal(f.validCount, 2);
    assert.equal(f.maskedCount, 2);
    // Pixel 3's row: b1, b2, ndvi; no column holds its QA value (64).
    assert.deepEqual([...f.data.subarray(9, 12)], [40, 80, (80 - 40) / (80 + 40)]);
    assert.deepEqual([...f.data.subarray(3, 6)], [0, 0, 0]);
  });

  test("masks as a separate reason from nodata: a nodata pixel is not counted as masked", () => {
    const spec = createFeatureSpec(3, { red: 1, nir: 2, quality: { ...quality, mask: [...quality.mask] } });
    const r = raster(
      3,
      1,
      [Float64Array.from([0, 5, 5]), Float64Array.from([0, 6, 6]), Uint16Array.from([CLOUD, CLOUD, CLEAR])],
      0,
    );
    const f = computeFeatures(r, spec);
    assert.deepEqual([...f.valid], [0, 0, 1]);
    assert.equal(f.maskedCount, 1);
  });

  test("is refused when the quality band is a feature band or past the band count", () => {
    assert.throws(
      () => parseFeatureSpec({ bands: 3, red: 3, nir: 2, green: null, extras: [], quality }),
      (e: unknown) => e instanceof TileInvalidError && /red band 3 is the quality band/.test(e.message),
    );
    assert.throws(
      () =>
        parseFeatureSpec({
          bands: 3,
          red: 1,
          nir: 2,
          green: null,
          extras: [],
          quality: { ...quality, band: 4 },
        }),
      (e: unknown) => e instanceof TileInvalidError && /quality band 4 does not exist/.test(e.message),
    );
    assert.throws(
      () =>
        parseFeatureSpec({
          bands: 3,
          red: 1,
          nir: 2,
          green: null,
          extras: [{ kind: "mean3x3", of: "b3" }],
          quality,
        }),
      (e: unknown) => e instanceof TileInvalidError && /refers to "b3"/.test(e.message),
    );
  });

  test("is refused, naming the band, when the tile's quality band holds floats rather than integer codes", () => {
    const spec = createFeatureSpec(3, { red: 1, nir: 2, quality: { ...quality, mask: [...quality.mask] } });
    // 1e9 would read as clear and 22280.7 truncate to a cloud code: neither is a QA_PIXEL value.
    for (const qa of [Float32Array.from([1e9, 22280.7]), Float64Array.from([CLEAR, CLOUD])])
      assert.throws(
        () => computeFeatures(raster(2, 1, [Float64Array.from([1, 2]), Float64Array.from([3, 4]), qa]), spec),
        (e: unknown) =>
          e instanceof TileInvalidError &&
          /^quality band 3 \(landsat-c2-qa-pixel\) holds float(32|64) samples; a quality band must hold integer codes/.test(
            e.message,
          ) &&
          // ...and says how to mend the tile, without losing a negative nodata to UInt16's clamp.
          e.message.includes("gdal_translate -ot UInt16 IN.tif OUT.tif") &&
          e.message.includes("-ot Int16 or Int32 when the nodata or a value is negative"),
      );
  });

  test("parses from the CLI form, with the kind's default mask when none is listed", () => {
    assert.deepEqual(parseQualityOption("7:landsat-c2-qa-pixel"), {
      band: 7,
      kind: "landsat-c2-qa-pixel",
      mask: ["fill", "dilated-cloud", "cirrus", "cloud", "cloud-shadow"],
    });
    assert.deepEqual(parseQualityOption("13:sentinel2-scl:3+8+9+10"), {
      band: 13,
      kind: "sentinel2-scl",
      classes: [3, 8, 9, 10],
    });
    assert.throws(
      () => parseQualityOption("7:landsat-c2-qa-pixel:haze"),
      /quality "7:landsat-c2-qa-pixel:haze"/,
    );
    assert.throws(() => parseQualityOption("7:modis"), /not one of/);
  });

  test("keeps models without a quality band as they were", () => {
    const spec = parseFeatureSpec({ bands: 2, red: 1, nir: 2, green: null, extras: [] });
    assert.equal("quality" in spec, false);
    assert.equal(featureDim(spec), 3);
  });
});
