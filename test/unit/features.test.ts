import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  TileInvalidError,
  computeFeatureRows,
  computeFeatures,
  createFeatureSpec,
  featureNames,
  parseExtras,
  parseFeatureSpec,
  type BandArray,
  type Raster,
} from "../../shared/internal.js";

/** A synthetic raster: bands as given, no georeferencing unless asked. */
function raster(width: number, height: number, bands: BandArray[], extra: Partial<Raster> = {}): Raster {
  const n = bands.length;
  return {
    width,
    height,
    bandCount: n,
    dtype: "float64",
    nodata: new Array(n).fill(null),
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
    ...extra,
  };
}

describe("feature spec", () => {
  test("names the features bands first, then NDVI, then extras in declared order", () => {
    const spec = createFeatureSpec(4, {
      red: 3,
      nir: 4,
      green: 2,
      extras: [{ kind: "std3x3", of: "ndvi" }, { kind: "ndwi" }, { kind: "mean3x3", of: "b4" }],
    });
    assert.deepEqual(featureNames(spec), [
      "b1",
      "b2",
      "b3",
      "b4",
      "ndvi",
      "std3x3(ndvi)",
      "ndwi",
      "mean3x3(b4)",
    ]);
  });

  test("refuses a red or NIR band the raster does not have, naming the band and the count", () => {
    assert.throws(
      () => createFeatureSpec(4, { red: 3, nir: 5 }),
      (err: unknown) =>
        err instanceof TileInvalidError && /nir band 5/.test(err.message) && /4 bands/.test(err.message),
    );
  });

  test("refuses NDWI without a green band and extras that refer to unknown features", () => {
    assert.throws(() => createFeatureSpec(4, { red: 3, nir: 4, extras: [{ kind: "ndwi" }] }), /green band/);
    assert.throws(
      () => createFeatureSpec(4, { red: 3, nir: 4, extras: [{ kind: "mean3x3", of: "ndwi" }] }),
      /refers to "ndwi"/,
    );
    assert.throws(() => parseFeatureSpec({ bands: 2, red: 1, nir: 3, green: null, extras: [] }), /nir/);
  });

  test("parses the CLI's extras list, window extras defaulting to NDVI", () => {
    assert.deepEqual(parseExtras("ndwi, mean3x3,std3x3:b2"), [
      { kind: "ndwi" },
      { kind: "mean3x3", of: "ndvi" },
      { kind: "std3x3", of: "b2" },
    ]);
    assert.throws(() => parseExtras("ndwi,texture"), /unknown feature extra "texture"/);
  });
});

describe("computeFeatures", () => {
  test("makes every band physical (stored * scale + offset) and appends NDVI from them", () => {
    const r = raster(2, 1, [new Int16Array([100, 200]), new Int16Array([300, 50])], {
      dtype: "int16",
      scale: [0.5, 2],
      offset: [1, -10],
    });
    const f = computeFeatures(r, createFeatureSpec(2, { red: 1, nir: 2 }));
    assert.equal(f.dim, 3);
    const red0 = 100 * 0.5 + 1;
    const nir0 = 300 * 2 - 10;
    const red1 = 200 * 0.5 + 1;
    const nir1 = 50 * 2 - 10;
    assert.deepEqual(Array.from(f.data), [
      red0,
      nir0,
      (nir0 - red0) / (nir0 + red0),
      red1,
      nir1,
      (nir1 - red1) / (nir1 + red1),
    ]);
    assert.equal(f.validCount, 2);
  });

  test("sets NDVI to 0 where nir + red is 0", () => {
    const r = raster(2, 1, [new Float64Array([0, -2]), new Float64Array([0, 2])]);
    const f = computeFeatures(r, createFeatureSpec(2, { red: 1, nir: 2 }));
    assert.equal(f.data[2], 0);
    assert.equal(f.data[5], 0);
  });

  test("marks a pixel invalid when any band holds its nodata value or NaN, and zeroes its row", () => {
    const r = raster(
      4,
      1,
      [
        new Float32Array([1, -9999, 3, NaN]),
        new Float32Array([5, 6, 7, 8]),
        new Float32Array([NaN, 1, 1, 1]),
      ],
      { dtype: "float32", nodata: [-9999, null, NaN] },
    );
    const f = computeFeatures(r, createFeatureSpec(3, { red: 1, nir: 2 }));
    assert.deepEqual(Array.from(f.valid), [0, 0, 1, 0]);
    assert.equal(f.validCount, 1);
    assert.deepEqual(Array.from(f.data.subarray(0, 4 * 2)), new Array(8).fill(0));
    assert.deepEqual(Array.from(f.data.subarray(8, 12)), [3, 7, 1, (7 - 3) / (7 + 3)]);
  });

  test("compares nodata against stored values, before scaling, as the peer does", () => {
    const r = raster(2, 1, [new Int16Array([-9999, 10]), new Int16Array([5, 5])], {
      dtype: "int16",
      nodata: [-9999, -9999],
      scale: [0.0001, 0.0001],
    });
    const f = computeFeatures(r, createFeatureSpec(2, { red: 1, nir: 2 }));
    assert.deepEqual(Array.from(f.valid), [0, 1]);
  });

  test("computes NDWI as (green - nir) / (green + nir)", () => {
    const r = raster(1, 1, [new Float64Array([0.08]), new Float64Array([0.05]), new Float64Array([0.3])]);
    const f = computeFeatures(
      r,
      createFeatureSpec(3, { red: 2, nir: 3, green: 1, extras: [{ kind: "ndwi" }] }),
    );
    assert.equal(f.data[4], (0.08 - 0.3) / (0.08 + 0.3));
  });

  test("computes 3x3 mean and population std over the valid pixels of each window, cut at the edges", () => {
    // One band used as the window's source; the second band only makes NDVI possible.
    const b = new Float64Array([1, 2, 3, 4, -1, 6, 7, 8, 9]);
    const r = raster(3, 3, [b, new Float64Array(9).fill(1)], { nodata: [-1, null] });
    const spec = createFeatureSpec(2, {
      red: 2,
      nir: 2,
      extras: [
        { kind: "mean3x3", of: "b1" },
        { kind: "std3x3", of: "b1" },
      ],
    });
    const f = computeFeatures(r, spec);
    const at = (p: number, j: number): number => f.data[p * f.dim + j] as number;
    const stats = (xs: number[]): [number, number] => {
      const m = xs.reduce((s, x) => s + x, 0) / xs.length;
      return [m, Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length)];
    };
    // Corner (0,0): pixels 0, 1, 3 and 4 — pixel 4 is nodata and left out.
    const [m0, s0] = stats([1, 2, 4]);
    assert.ok(Math.abs(at(0, 3) - m0) < 1e-12 && Math.abs(at(0, 4) - s0) < 1e-12);
    // Bottom edge, pixel 7 (row 2, col 1): rows 1..2, cols 0..2 — again without pixel 4.
    const [m7, s7] = stats([4, 6, 7, 8, 9]);
    assert.ok(Math.abs(at(7, 3) - m7) < 1e-12 && Math.abs(at(7, 4) - s7) < 1e-12);
    // The invalid centre pixel keeps a zero row.
    assert.equal(f.valid[4], 0);
    assert.equal(at(4, 3), 0);
  });

  /** A 3-band tile of small integers from `seed` (band 1's -1 is nodata) and a spec with window extras. */
  function smallTileWithExtras(width: number, height: number, seed: number) {
    let s = seed;
    const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2 ** 31) % 7) - 1;
    const bands = [0, 1, 2].map(() => Float64Array.from({ length: width * height }, rnd));
    const r = raster(width, height, bands, { nodata: [-1, null, null] });
    const spec = createFeatureSpec(3, {
      red: 1,
      nir: 2,
      green: 3,
      extras: [{ kind: "ndwi" }, { kind: "mean3x3", of: "ndvi" }, { kind: "std3x3", of: "b2" }],
    });
    return { r, spec };
  }

  test("gives the same rows block by block as for the whole tile, window extras included", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (width, height, block, seed) => {
          const { r, spec } = smallTileWithExtras(width, height, seed);
          const whole = computeFeatures(r, spec);
          for (let r0 = 0; r0 < height; r0 += block) {
            const r1 = Math.min(height, r0 + block);
            const part = computeFeatureRows(r, spec, r0, r1);
            assert.deepEqual(part.data, whole.data.subarray(r0 * width * whole.dim, r1 * width * whole.dim));
            assert.deepEqual(part.valid, whole.valid.subarray(r0 * width, r1 * width));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  test("writes z-scored rows that equal z-scoring its plain rows value for value, window extras and nodata included", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (width, height, block, seed) => {
          const { r, spec } = smallTileWithExtras(width, height, seed);
          const dim = featureNames(spec).length;
          const mean = Float64Array.from({ length: dim }, (_, j) => j * 0.3 - 0.7);
          const std = Float64Array.from({ length: dim }, (_, j) => 0.9 + j * 0.45);
          for (let r0 = 0; r0 < height; r0 += block) {
            const r1 = Math.min(height, r0 + block);
            const plain = computeFeatureRows(r, spec, r0, r1);
            const z = computeFeatureRows(r, spec, r0, r1, { mean, std });
            assert.deepEqual(z.valid, plain.valid);
            assert.equal(z.validCount, plain.validCount);
            const want = plain.data.map((x, i) =>
              plain.valid[Math.floor(i / dim)] === 1
                ? (x - (mean[i % dim] as number)) / (std[i % dim] as number)
                : 0,
            );
            assert.deepEqual(z.data, want);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  test("refuses a standardisation without one mean and one std per feature", () => {
    const spec = createFeatureSpec(2, { red: 1, nir: 2 });
    const r = raster(1, 1, [new Float64Array([1]), new Float64Array([2])]);
    assert.throws(
      () => computeFeatureRows(r, spec, 0, 1, { mean: new Float64Array(2), std: new Float64Array(3) }),
      (e: unknown) =>
        e instanceof TileInvalidError && /2 means and 3 stds do not standardise 3 features/.test(e.message),
    );
  });

  test("gives integer bands the features of the same values stored as float64, nodata at any pixel", () => {
    // Integer bands without scale or offset take a path of their own (typed-array built-ins); the
    // float64 copy takes the general loop: both must mark and copy the same pixels.
    const types = [Int16Array, Uint16Array, Uint8Array, Int32Array, Uint32Array, Int8Array] as const;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: types.length - 1 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (width, height, type, block, seed) => {
          let s = seed;
          // Values 0..4; 0 is band 1's nodata, 3 band 2's, so both appear first, last and in runs.
          const rnd = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) % 5;
          const values = [0, 1, 2].map(() => Array.from({ length: width * height }, rnd));
          const Type = types[type] as (typeof types)[number];
          const nodata = [0, 3, null];
          const ints = raster(
            width,
            height,
            values.map((v) => Type.from(v)),
            { nodata },
          );
          const floats = raster(
            width,
            height,
            values.map((v) => Float64Array.from(v)),
            { nodata },
          );
          const spec = createFeatureSpec(3, { red: 1, nir: 2, extras: [{ kind: "mean3x3", of: "b3" }] });
          for (let r0 = 0; r0 < height; r0 += block) {
            const r1 = Math.min(height, r0 + block);
            const a = computeFeatureRows(ints, spec, r0, r1);
            const b = computeFeatureRows(floats, spec, r0, r1);
            assert.deepEqual(a.valid, b.valid);
            assert.deepEqual(a.data, b.data);
            assert.equal(a.validCount, b.validCount);
          }
        },
      ),
      { numRuns: 120 },
    );
  });

  test("refuses a raster whose band count differs from the spec's", () => {
    const spec = createFeatureSpec(3, { red: 1, nir: 2 });
    assert.throws(
      () => computeFeatures(raster(1, 1, [new Uint8Array([1]), new Uint8Array([2])]), spec),
      (err: unknown) =>
        err instanceof TileInvalidError &&
        /nir band 2|2 bands/.test(err.message) &&
        /expects 3/.test(err.message),
    );
  });

  test("refuses a spec whose red band is past the raster's bands, naming band and count", () => {
    const spec = parseFeatureSpec({ bands: 5, red: 5, nir: 1, green: null, extras: [] });
    const r = raster(
      1,
      1,
      [1, 2, 3, 4].map((v) => new Uint8Array([v])),
    );
    assert.throws(
      () => computeFeatures(r, spec),
      (err: unknown) =>
        err instanceof TileInvalidError &&
        /red band 5 does not exist: the raster has 4 bands/.test(err.message),
    );
  });
});
