/**
 * Training with a quality band (issue 13): a labelled pixel that cannot be a sample is left out for
 * one of two reasons, reported apart — nodata in a reflectance band (`onNodata`: scene edges) or
 * masked by the QA band (`maskedByQuality`: clouds). The split follows computeFeatures: nodata
 * first, so a cloudy pixel on nodata counts once, as nodata.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  LANDSAT_DEFAULT_MASK,
  TrainingDataError,
  collectSamples,
  computeFeatures,
  createFeatureSpec,
  crsFromEpsg,
  type GeoTransform,
  type Raster,
} from "../../shared/internal.js";
import { DILATED, CIRRUS, CLOUD, SHADOW, SNOW, CLEAR, X0, Y0, rect } from "../helpers/training-fixtures.js";

// The default QA_PIXEL mask is fill, dilated cloud, cirrus, cloud and cloud shadow, so snow is kept.
const NODATA = -9999;

const GT: GeoTransform = [X0, 30, 0, Y0, 0, -30];
const pixel = (row: number, col: number): number => row * 4 + col;
/** The labelled pixels that are valid (clear or snowy, not nodata): the samples, in label order. */
const SAMPLE_PIXELS = [pixel(0, 0), pixel(0, 1), pixel(1, 0), pixel(2, 1), pixel(3, 1)];

/**
 * A 4x4 Landsat-like tile (UTM 15N, 30 m): red and NIR (int16, nodata -9999) and a QA_PIXEL band.
 * Row 0: clear, clear, cloud, cloud. Row 1: clear, dilated cloud, red nodata under clear sky, NIR
 * nodata under a cloud. Row 2: shadow, clear, clear, cirrus. Row 3: clear, snow, clear, clear.
 */
function cloudyTile(): Raster {
  const n = 16;
  const red = Int16Array.from({ length: n }, (_, p) => 100 + p);
  const nir = Int16Array.from({ length: n }, (_, p) => 300 + p);
  red[pixel(1, 2)] = NODATA;
  nir[pixel(1, 3)] = NODATA;
  const qa = Uint16Array.from(
    [
      [CLEAR, CLEAR, CLOUD, CLOUD],
      [CLEAR, DILATED, CLEAR, CLOUD],
      [SHADOW, CLEAR, CLEAR, CIRRUS],
      [CLEAR, SNOW, CLEAR, CLEAR],
    ].flat(),
  );
  return {
    width: 4,
    height: 4,
    bandCount: 3,
    dtype: "int16",
    // QA_PIXEL's own nodata is its fill code (1); its codes, not that value, decide what it masks.
    nodata: [NODATA, NODATA, 1],
    scale: [1, 1, 1],
    offset: [0, 0, 0],
    geoTransform: GT,
    crs: crsFromEpsg(32615),
    bounds: { minX: X0, minY: Y0 - 120, maxX: X0 + 120, maxY: Y0 },
    boundsWgs84: null,
    acquired: null,
    compression: "none",
    tiled: false,
    bands: [red, nir, qa],
  };
}

const spec = createFeatureSpec(3, {
  red: 1,
  nir: 2,
  quality: { band: 3, kind: "landsat-c2-qa-pixel", mask: [...LANDSAT_DEFAULT_MASK] },
});

/** The centre of pixel (row, col). */
const centre = (row: number, col: number): [number, number] => [X0 + col * 30 + 15, Y0 - row * 30 - 15];

function collection(features: { name: string; geometry: object }[]): object {
  return {
    type: "FeatureCollection",
    crs: { type: "name", properties: { name: "urn:ogc:def:crs:EPSG::32615" } },
    features: features.map((f) => ({
      type: "Feature",
      properties: { class: f.name },
      geometry: f.geometry,
    })),
  };
}

/**
 * "forest" covers rows 0-1 (3 clear, 3 under cloud or its ring, 2 on nodata); "water" three points
 * (one under shadow, one clear, one on snow, which the default mask keeps); "crop" one point under
 * cirrus, so that class has no sample left.
 */
const labels = collection([
  { name: "forest", geometry: { type: "Polygon", coordinates: [rect(0, 3, 0, 1)] } },
  {
    name: "water",
    geometry: { type: "MultiPoint", coordinates: [centre(2, 0), centre(2, 1), centre(3, 1)] },
  },
  { name: "crop", geometry: { type: "Point", coordinates: centre(2, 3) } },
]);

describe("training samples under a quality band", () => {
  test("counts the labelled pixels on nodata and those masked by the quality band apart, each once", () => {
    const samples = collectSamples([cloudyTile()], { kind: "geojson", geojson: labels }, spec);
    const c = samples.coverage;
    assert.deepEqual(
      [c.labelledPixels, c.onNodata, c.maskedByQuality],
      [12, 2, 5],
      "12 labelled: 2 on nodata (one of them also cloudy), 5 masked (cloud 2, ring 1, shadow 1, cirrus 1)",
    );
    assert.deepEqual(c.lostToNodata, [
      { feature: 0, name: "forest", labelled: 8, onNodata: 2, maskedByQuality: 3 },
      { feature: 1, name: "water", labelled: 3, onNodata: 0, maskedByQuality: 1 },
      { feature: 2, name: "crop", labelled: 1, onNodata: 0, maskedByQuality: 1 },
    ]);
    assert.deepEqual(c.classesWithoutSamples, ["crop"], "its only pixel is under cirrus");
  });

  test("takes no masked pixel as a sample: only the clear (and snowy) labelled pixels, in label order", () => {
    const tile = cloudyTile();
    const samples = collectSamples([tile], { kind: "geojson", geojson: labels }, spec);
    assert.deepEqual(Array.from(samples.pixel), SAMPLE_PIXELS);
    assert.deepEqual(samples.classNames, ["forest", "water"]);
    assert.deepEqual(Array.from(samples.y), [1, 1, 1, 2, 2]);
    // Each sample's features are its pixel's red, NIR and NDVI: no QA value, no masked pixel's.
    const red = tile.bands[0] as Int16Array;
    const nir = tile.bands[1] as Int16Array;
    assert.equal(samples.dim, 3);
    Array.from(samples.pixel).forEach((p, i) => {
      const r = red[p] as number;
      const n = nir[p] as number;
      assert.deepEqual(Array.from(samples.x.subarray(i * 3, i * 3 + 3)), [r, n, (n - r) / (n + r)]);
    });
    // The split agrees with the features themselves: computeFeatures counts as masked exactly these
    // five pixels, and not the cloudy one on nodata (1, 3), which keeps its own reason.
    const f = computeFeatures(tile, spec);
    const masked = [pixel(0, 2), pixel(0, 3), pixel(1, 1), pixel(2, 0), pixel(2, 3)];
    assert.ok(masked.every((p) => f.valid[p] === 0));
    assert.equal(f.maskedCount, masked.length);
  });

  test("reports the same split for a label raster aligned with the tile", () => {
    const values = Uint8Array.from(
      [
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [2, 2, 0, 3],
        [0, 2, 0, 0],
      ].flat(),
    );
    const raster: Raster = {
      ...cloudyTile(),
      bandCount: 1,
      dtype: "uint8",
      nodata: [0],
      scale: [1],
      offset: [0],
      bands: [values],
    };
    const samples = collectSamples(
      [cloudyTile()],
      { kind: "raster", raster, names: { "1": "forest", "2": "water", "3": "crop" } },
      spec,
    );
    const c = samples.coverage;
    assert.deepEqual([c.labelledPixels, c.onNodata, c.maskedByQuality], [12, 2, 5]);
    assert.deepEqual(Array.from(samples.pixel), SAMPLE_PIXELS);
  });

  test("fails, naming both counts, when clouds and nodata leave no labelled pixel", () => {
    const covered = collection([
      { name: "forest", geometry: { type: "Polygon", coordinates: [rect(2, 3, 0, 1)] } },
    ]);
    assert.throws(
      () => collectSamples([cloudyTile()], { kind: "geojson", geojson: covered }, spec),
      (err: unknown) =>
        err instanceof TrainingDataError &&
        /2 labelled pixels on nodata, 2 masked by the quality band\)/.test(err.message),
    );
  });
});
