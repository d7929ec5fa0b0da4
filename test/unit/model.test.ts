import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  collectSamples,
  computeFeatures,
  ModelError,
  TrainingDataError,
  classSummary,
  createClassifier,
  createFeatureSpec,
  crsFromEpsg,
  decodeGeoTiff,
  defaultColours,
  fillPolygon,
  isClockwise,
  polygonPixels,
  loadModelFile,
  parseModel,
  saveModelFile,
  serializeModel,
  sortClassNames,
  toWgs84,
  trainModel,
  type Crs,
  type GeoTransform,
  type Model,
  type Raster,
} from "../../shared/internal.js";
import { X0, Y0, rect } from "../helpers/training-fixtures.js";
import { missing, sharedData } from "../helpers/env.js";

const UTM15: Crs = crsFromEpsg(32615);
const GT: GeoTransform = [X0, 30, 0, Y0, 0, -30];

/** A 10x10, 3-band georeferenced tile (UTM 15N, 30 m) whose pixel p has values p, 2p, 3p (+ 1). */
function tile(extra: Partial<Raster> = {}): Raster {
  const n = 100;
  const bands = [1, 2, 3].map((m) => Int16Array.from({ length: n }, (_, p) => m * p + 1));
  return {
    width: 10,
    height: 10,
    bandCount: 3,
    dtype: "int16",
    nodata: [-9999, -9999, -9999],
    scale: [1, 1, 1],
    offset: [0, 0, 0],
    geoTransform: GT,
    crs: UTM15,
    bounds: { minX: X0, minY: Y0 - 300, maxX: X0 + 300, maxY: Y0 },
    boundsWgs84: null,
    acquired: null,
    compression: "none",
    tiled: false,
    bands,
    ...extra,
  };
}

const spec = createFeatureSpec(3, { red: 2, nir: 3 });

function feature(name: unknown, geometry: object, property = "class"): object {
  return { type: "Feature", properties: { [property]: name }, geometry };
}

function collection(features: object[], crs: string | null = "urn:ogc:def:crs:EPSG::32615"): object {
  return {
    type: "FeatureCollection",
    ...(crs ? { crs: { type: "name", properties: { name: crs } } } : {}),
    features,
  };
}

const pixel = (row: number, col: number): number => row * 10 + col;

function train(
  geojson: object,
  extra: { crs?: Crs; property?: string; k?: number; strict?: boolean } = {},
): Model {
  return trainModel(
    [tile()],
    { kind: "geojson", geojson, classProperty: extra.property, crs: extra.crs },
    {
      features: spec,
      k: extra.k ?? 1,
      source: "test",
      createdAt: "2024-01-01T00:00:00.000Z",
      strict: extra.strict ?? false,
    },
  );
}

/** Training pixels of a model, by tile pixel index (band 1 is pixel + 1). */
function samplePixels(model: Model): number[] {
  const dim = 4;
  return model.samples.y.map((_, i) => (model.samples.x[i * dim] as number) - 1);
}

describe("training samples from GeoJSON", () => {
  test("takes the pixels whose centres lie inside a polygon, leaving out its holes", () => {
    const model = train(
      collection([feature("forest", { type: "Polygon", coordinates: [rect(2, 4, 1, 3), rect(3, 3, 2, 2)] })]),
    );
    const expected = [1, 2, 3]
      .flatMap((r) => [2, 3, 4].map((c) => pixel(r, c)))
      .filter((p) => p !== pixel(2, 3));
    assert.deepEqual(samplePixels(model), expected);
  });

  test("takes MultiPolygons and the pixel containing each point, in feature order", () => {
    const model = train(
      collection([
        feature("b", { type: "MultiPolygon", coordinates: [[rect(0, 0, 0, 0)], [rect(9, 9, 9, 9)]] }),
        feature("a", { type: "Point", coordinates: [X0 + 8 * 30 + 29, Y0 - 7 * 30 - 1] }),
        feature("a", {
          type: "MultiPoint",
          coordinates: [
            [X0 + 1, Y0 - 1],
            [X0 + 45, Y0 - 45],
          ],
        }),
      ]),
    );
    assert.deepEqual(samplePixels(model), [pixel(0, 0), pixel(9, 9), pixel(7, 8), pixel(0, 0), pixel(1, 1)]);
    assert.deepEqual(model.samples.y, [2, 2, 1, 1, 1]);
  });

  test("reads coordinates without a crs member as WGS 84 lon/lat and reprojects them to the tile", () => {
    const lonLat = (ring: [number, number][]): [number, number][] =>
      ring.map(([x, y]) => toWgs84(UTM15, x, y));
    const model = train(
      collection([feature("water", { type: "Polygon", coordinates: [lonLat(rect(5, 6, 5, 6))] })], null),
    );
    assert.deepEqual(samplePixels(model), [pixel(5, 5), pixel(5, 6), pixel(6, 5), pixel(6, 6)]);
  });

  test("uses the caller's CRS for GeoJSON without a crs member, and a legacy crs member over it", () => {
    const g = collection([feature("x", { type: "Polygon", coordinates: [rect(1, 1, 1, 1)] })], null);
    assert.deepEqual(samplePixels(train(g, { crs: UTM15 })), [pixel(1, 1)]);
    const withMember = collection(
      [feature("x", { type: "Polygon", coordinates: [rect(1, 1, 1, 1)] })],
      "EPSG:32615",
    );
    assert.deepEqual(samplePixels(train(withMember, { crs: crsFromEpsg(3857) })), [pixel(1, 1)]);
  });

  test("numbers classes by their names sorted as Python sorts strings, from 1", () => {
    assert.deepEqual(sortClassNames(["forest", "Water", "barren", "forest", "10", "9"]), [
      "10",
      "9",
      "Water",
      "barren",
      "forest",
    ]);
    const model = train(
      collection(
        ["forest", "Water", "barren"].map((name, i) =>
          feature(name, { type: "Polygon", coordinates: [rect(i, i, 0, 0)] }, "cover"),
        ),
      ),
      { property: "cover" },
    );
    assert.deepEqual(
      model.classes.map((c) => [c.id, c.name]),
      [
        [1, "Water"],
        [2, "barren"],
        [3, "forest"],
      ],
    );
    assert.deepEqual(model.samples.y, [3, 1, 2]);
  });

  test("skips nodata pixels under a polygon", () => {
    const t = tile();
    (t.bands[1] as Int16Array)[pixel(0, 1)] = -9999;
    const model = trainModel(
      [t],
      {
        kind: "geojson",
        geojson: collection([feature("a", { type: "Polygon", coordinates: [rect(0, 2, 0, 0)] })]),
      },
      { features: spec, k: 1, source: "test" },
    );
    assert.deepEqual(samplePixels(model), [pixel(0, 0), pixel(0, 2)]);
  });

  test("explains unusable training data in a TrainingDataError", () => {
    const poly = { type: "Polygon", coordinates: [rect(0, 1, 0, 1)] };
    const cases: [object, RegExp][] = [
      [collection([]), /no features/],
      [collection([feature("a", poly, "kind")]), /feature 1 has no "class" property/],
      [
        collection([
          feature("a", poly),
          feature("b", {
            type: "Polygon",
            coordinates: [
              [
                [0, 0],
                [1, 0],
                [1, 1],
                [0, 0],
              ],
            ],
          }),
        ]),
        /1 of 2 features \(first: feature 2, class "b"\) lie outside every tile/,
      ],
      [
        collection([
          feature("a", poly),
          feature("b", {
            type: "LineString",
            coordinates: [
              [X0, Y0],
              [X0 + 90, Y0 - 90],
            ],
          }),
        ]),
        /feature 2 has a LineString geometry/,
      ],
      // A sliver between pixel centres covers none.
      [
        collection([
          feature("a", poly),
          feature("thin", {
            type: "Polygon",
            coordinates: [
              [
                [X0 + 31, Y0 - 1],
                [X0 + 40, Y0 - 1],
                [X0 + 40, Y0 - 12],
                [X0 + 31, Y0 - 1],
              ],
            ],
          }),
        ]),
        /class "thin" has no valid samples/,
      ],
      [{ type: "Topology" }, /FeatureCollection or Feature/],
    ];
    for (const [geojson, message] of cases)
      assert.throws(
        () => train(geojson, { strict: true }),
        (err: unknown) => err instanceof TrainingDataError && message.test(err.message),
        String(message),
      );
  });
});

describe("training on labels partly outside the tiles", () => {
  const square = (c: number, r: number): object => ({ type: "Polygon", coordinates: [rect(c, c, r, r)] });
  const point = (c: number, r: number): object => ({
    type: "Point",
    coordinates: [X0 + c * 30 + 15, Y0 - r * 30 - 15],
  });
  const labels = collection([
    feature("a", square(1, 1)),
    feature("b", point(5, 5)),
    feature("b", point(50, 5)), // 1.4 km east of the 300 m tile
    feature("c", point(-20, -20)), // the only "c", outside
    feature("a", {
      type: "MultiPoint",
      coordinates: [(point(2, 2) as { coordinates: number[] }).coordinates, [0, 0]],
    }),
  ]);

  test("trains on what falls inside and counts the features and points that fall outside", () => {
    const samples = collectSamples([tile()], { kind: "geojson", geojson: labels }, spec);
    assert.deepEqual(samples.classNames, ["a", "b"], 'class "c" had no sample and is not a class');
    assert.deepEqual(Array.from(samples.pixel), [pixel(1, 1), pixel(5, 5), pixel(2, 2)], "feature order");
    assert.deepEqual(Array.from(samples.y), [1, 2, 1]);
    assert.deepEqual(samples.coverage, {
      features: 5,
      featuresOutside: 2,
      points: 5,
      pointsOutside: 3,
      labelledPixels: 3,
      onNodata: 0,
      classesWithoutSamples: ["c"],
      lostToNodata: [],
    });
  });

  test("leaves out labelled pixels on nodata and counts them", () => {
    const t = tile();
    (t.bands[0] as Int16Array)[pixel(1, 1)] = -9999;
    const samples = collectSamples([t], { kind: "geojson", geojson: labels }, spec);
    assert.equal(samples.coverage.onNodata, 1);
    assert.equal(samples.coverage.labelledPixels, 3);
    assert.deepEqual(Array.from(samples.pixel), [pixel(5, 5), pixel(2, 2)]);
    // Named per label, so training can warn which labels lost samples under clouds or nodata.
    assert.deepEqual(samples.coverage.lostToNodata, [{ feature: 0, name: "a", labelled: 1, onNodata: 1 }]);
  });

  test("fails, with the counts, only when nothing usable remains", () => {
    const nothing = collection([feature("a", point(40, 40)), feature("b", point(-3, 2))]);
    assert.throws(
      () => collectSamples([tile()], { kind: "geojson", geojson: nothing }, spec),
      (err: unknown) =>
        err instanceof TrainingDataError &&
        /2 of 2 features outside every tile, 0 labelled pixels on nodata/.test(err.message),
    );
  });

  test("strict refuses the whole set when any feature is outside, as before", () => {
    assert.throws(
      () => collectSamples([tile()], { kind: "geojson", geojson: labels }, spec, undefined, { strict: true }),
      /2 of 5 features \(first: feature 3, class "b"\) lie outside every tile/,
    );
  });
});

describe("training samples from a label raster", () => {
  function labelRaster(values: Uint8Array, gt: GeoTransform = GT): Raster {
    return {
      ...tile(),
      bandCount: 1,
      dtype: "uint8",
      nodata: [0],
      scale: [1],
      offset: [0],
      geoTransform: gt,
      bands: [values],
    };
  }

  test("samples hold the doubles a whole-tile feature computation gives, window extras at block edges included", () => {
    // Labels on rows 0, 3-4 and 9 only: the samples come from blocks of those rows, whose 3x3
    // windows must still read the unlabelled rows around them; one pixel of row 4 is nodata.
    const t = tile();
    (t.bands[0] as Int16Array)[pixel(4, 6)] = -9999;
    const values = new Uint8Array(100);
    for (const [r, c, v] of [
      [0, 0, 1],
      [0, 9, 2],
      [3, 5, 1],
      [4, 5, 2],
      [4, 6, 1],
      [9, 4, 2],
    ] as const)
      values[pixel(r, c)] = v;
    const windowed = createFeatureSpec(3, {
      red: 2,
      nir: 3,
      extras: [
        { kind: "mean3x3", of: "ndvi" },
        { kind: "std3x3", of: "b1" },
      ],
    });
    const samples = collectSamples([t], { kind: "raster", raster: labelRaster(values) }, windowed);
    const whole = computeFeatures(t, windowed);
    assert.deepEqual(Array.from(samples.pixel), [0, 9, 35, 45, 94]);
    assert.equal(samples.coverage.onNodata, 1);
    const expected = Array.from(samples.pixel).flatMap((p) =>
      Array.from(whole.data.subarray(p * whole.dim, (p + 1) * whole.dim), (v) => v + 0),
    );
    assert.deepEqual(Array.from(samples.x), expected);
  });

  test("takes every labelled pixel in row-major order and names classes by value or by the names map", () => {
    const values = new Uint8Array(100);
    values[pixel(0, 3)] = 2;
    values[pixel(4, 4)] = 1;
    values[pixel(9, 0)] = 2;
    const byValue = trainModel(
      [tile()],
      { kind: "raster", raster: labelRaster(values) },
      { features: spec, k: 1, source: "t" },
    );
    assert.deepEqual(samplePixels(byValue), [pixel(0, 3), pixel(4, 4), pixel(9, 0)]);
    assert.deepEqual(
      byValue.classes.map((c) => c.name),
      ["1", "2"],
    );
    const named = trainModel(
      [tile()],
      { kind: "raster", raster: labelRaster(values), names: { "1": "water", "2": "forest" } },
      { features: spec, k: 1, source: "t" },
    );
    assert.deepEqual(
      named.classes.map((c) => c.name),
      ["forest", "water"],
    );
    assert.deepEqual(named.samples.y, [1, 2, 1]);
  });

  test("refuses a label raster that is not aligned with the tile", () => {
    const values = new Uint8Array(100).fill(1);
    assert.throws(
      () =>
        trainModel(
          [tile()],
          { kind: "raster", raster: labelRaster(values, [X0 + 15, 30, 0, Y0, 0, -30]) },
          { features: spec, source: "t" },
        ),
      (err: unknown) => err instanceof TrainingDataError && /not aligned with the tile/.test(err.message),
    );
  });
});

describe("model artifact", () => {
  const model = train(
    collection([
      feature("forest", { type: "Polygon", coordinates: [rect(0, 4, 0, 4)] }),
      feature("water", { type: "Polygon", coordinates: [rect(5, 9, 5, 9)] }),
    ]),
    { k: 3 },
  );

  test("carries format, classes with colours, feature spec, scaling, k, raw samples and their origin", () => {
    assert.equal(model.format, "lanemap.model/1");
    assert.match(model.version, /^[0-9a-f]{16}$/);
    assert.deepEqual(model.classes, [
      { id: 1, name: "forest", colour: "#1b7837" },
      { id: 2, name: "water", colour: "#1f78b4" },
    ]);
    assert.deepEqual(model.features, spec);
    assert.equal(model.k, 3);
    assert.equal(model.samples.x.length, 50 * 4);
    assert.deepEqual(model.training, { source: "test", samplesPerClass: { forest: 25, water: 25 } });
    assert.equal(model.scaling.mean.length, 4);
  });

  test("round-trips exactly through JSON text", () => {
    const back = parseModel(serializeModel(model));
    assert.deepEqual(back, model);
    assert.equal(serializeModel(back), serializeModel(model));
  });

  test("round-trips exactly through a file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lanemap-model-"));
    try {
      const path = join(dir, "model.json");
      await saveModelFile(path, model);
      assert.deepEqual(await loadModelFile(path), model);
      await assert.rejects(
        loadModelFile(join(dir, "absent.json")),
        (err: unknown) => err instanceof ModelError && /cannot read/.test(err.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("has a version that hashes the content, not the creation time", () => {
    const again = trainModel(
      [tile()],
      {
        kind: "geojson",
        geojson: collection([
          feature("forest", { type: "Polygon", coordinates: [rect(0, 4, 0, 4)] }),
          feature("water", { type: "Polygon", coordinates: [rect(5, 9, 5, 9)] }),
        ]),
      },
      { features: spec, k: 3, source: "test", createdAt: "2030-05-05T05:05:05.000Z" },
    );
    assert.equal(again.version, model.version);
    const other = train(
      collection([
        feature("forest", { type: "Polygon", coordinates: [rect(0, 4, 0, 4)] }),
        feature("water", { type: "Polygon", coordinates: [rect(5, 9, 5, 9)] }),
      ]),
      { k: 5 },
    );
    assert.notEqual(other.version, model.version);
  });

  test("refuses a changed or malformed model with a ModelError naming the field", () => {
    const json = JSON.parse(serializeModel(model)) as Record<string, unknown> & {
      samples: { x: number[]; y: number[] };
    };
    const cases: [unknown, RegExp][] = [
      ["{not json", /not valid JSON/],
      [
        { ...json, samples: { ...json.samples, x: json.samples.x.map((v, i) => (i === 0 ? v + 1 : v)) } },
        /model field version: .* does not match the content/,
      ],
      [(({ k: _k, ...rest }) => rest)(json), /model field k:/],
      [
        { ...json, samples: { ...json.samples, y: json.samples.y.map((v, i) => (i === 3 ? 9 : v)) } },
        /model field samples\.y\.3: class id 9/,
      ],
      [
        { ...json, samples: { ...json.samples, x: json.samples.x.map((v, i) => (i === 4 ? "1" : v)) } },
        /model field samples\.x\.4: must hold finite numbers, got "1"/,
      ],
      [
        { ...json, samples: { ...json.samples, x: json.samples.x.map((v, i) => (i === 2 ? Infinity : v)) } },
        /model field samples\.x\.2: must hold finite numbers, got Infinity/,
      ],
      [
        { ...json, samples: { ...json.samples, y: json.samples.y.map((v, i) => (i === 1 ? 1.5 : v)) } },
        /model field samples\.y\.1: must hold integers, got 1\.5/,
      ],
      [{ ...json, samples: { x: json.samples.x } }, /model field samples\.y: must be an array of integers/],
      [
        {
          ...json,
          classes: [
            { id: 1, name: "forest", colour: "green" },
            { id: 2, name: "water", colour: "#1f78b4" },
          ],
        },
        /model field classes\.0\.colour/,
      ],
      [{ ...json, format: "lanemap.model/0" }, /model field format/],
    ];
    for (const [value, message] of cases)
      assert.throws(
        () => parseModel(value),
        (err: unknown) => err instanceof ModelError && message.test(err.message),
        String(message),
      );
  });

  test("gives common class names conventional colours and others a fixed palette", () => {
    assert.deepEqual(
      defaultColours(["Water", "dense forest", "cropland", "Urban", "bare soil", "cloud", "grass", "x", "y"]),
      ["#1f78b4", "#1b7837", "#e6c229", "#d7301f", "#d2b48c", "#ffffff", "#b8e186", "#e41a1c", "#377eb8"],
    );
  });
});

describe("classification", () => {
  const model = train(
    collection([
      feature("low", { type: "Polygon", coordinates: [rect(0, 9, 0, 1)] }),
      feature("high", { type: "Polygon", coordinates: [rect(0, 9, 8, 9)] }),
    ]),
    { k: 3 },
  );

  test("classifies every valid pixel, leaves nodata pixels at class 0, and counts them", () => {
    const t = tile();
    (t.bands[0] as Int16Array)[pixel(5, 5)] = -9999;
    const c = createClassifier(model).classify(t);
    assert.equal(c.classes[pixel(5, 5)], 0);
    assert.equal(c.confidence[pixel(5, 5)], 0);
    assert.equal(c.validPixels, 99);
    assert.equal(c.counts[0], 1);
    assert.equal(
      c.counts.reduce((s, v) => s + v, 0),
      100,
    );
    // Rows near the top are "low" (id 2), near the bottom "high" (id 1).
    assert.equal(c.classes[pixel(0, 0)], 2);
    assert.equal(c.classes[pixel(9, 9)], 1);
    for (let p = 0; p < 100; p++) if (p !== pixel(5, 5)) assert.ok((c.confidence[p] as number) >= 1 / 3);
  });

  test("gives the same classes block by block as in one go", () => {
    const classifier = createClassifier(model);
    const whole = classifier.classify(tile());
    const blocks = classifier.classify(tile(), { blockPixels: 7 });
    assert.deepEqual(blocks, whole);
  });

  test("answers a tile's pixels as it answers their feature rows, with and without invalid pixels, and leaves the caller's rows unscaled", () => {
    const classifier = createClassifier(model);
    for (const invalid of [[], [pixel(0, 0), pixel(5, 5), pixel(9, 9)]]) {
      const t = tile();
      for (const p of invalid) (t.bands[0] as Int16Array)[p] = -9999;
      const f = computeFeatures(t, model.features);
      const rows = f.data.slice();
      const byRows = classifier.classifyFeatures(rows, 100);
      assert.deepEqual(rows, f.data);
      for (const blockPixels of [7, 100]) {
        const c = classifier.classify(t, { blockPixels });
        for (let p = 0; p < 100; p++) {
          const want = invalid.includes(p) ? 0 : byRows.classes[p];
          assert.equal(c.classes[p], want, `class of pixel ${p}, blocks of ${blockPixels}`);
          assert.equal(c.confidence[p], invalid.includes(p) ? 0 : byRows.confidence[p]);
        }
      }
    }
  });

  test("stops between blocks when its signal is aborted", () => {
    const ac = new AbortController();
    ac.abort(new Error("deadline"));
    assert.throws(() => createClassifier(model).classify(tile(), { signal: ac.signal }), /deadline/);
  });

  test("refuses a tile with another band layout", () => {
    const t = tile();
    assert.throws(
      () => createClassifier(model).classify({ ...t, bandCount: 2, bands: t.bands.slice(0, 2) }),
      /nir band 3 does not exist: the raster has 2 bands/,
    );
  });

  test("summarises pixels and areas per class, the dominant class and mean confidence", () => {
    const c = createClassifier(model).classify(tile());
    const s = classSummary(c, model, tile());
    assert.equal(s.modelVersion, model.version);
    const total = s.classes.reduce((sum, k) => sum + k.pixels, 0);
    assert.equal(total, 100);
    for (const k of s.classes) assert.equal(k.areaM2, k.pixels * 900);
    const top = [...s.classes].sort((a, b) => b.pixels - a.pixels || a.id - b.id)[0];
    assert.deepEqual(s.dominant, { id: top?.id, name: top?.name });
    const mean = Array.from(c.confidence).reduce((a, b) => a + b, 0) / 100;
    assert.ok(Math.abs((s.meanConfidence as number) - mean) < 1e-9);
  });

  test("measures geographic pixels on the WGS 84 ellipsoid: a 1° global grid sums to the Earth's area", () => {
    const width = 360;
    const height = 180;
    const globe: Raster = {
      ...tile(),
      width,
      height,
      geoTransform: [-180, 1, 0, 90, 0, -1],
      crs: crsFromEpsg(4326),
    };
    const classes = new Uint8Array(width * height).fill(1);
    const s = classSummary(
      {
        width,
        height,
        classes,
        confidence: new Float32Array(width * height).fill(1),
        counts: [0, width * height, 0],
        validPixels: width * height,
      },
      model,
      globe,
    );
    // WGS 84 ellipsoid surface area: 510,065,621.7 km².
    assert.ok(Math.abs((s.classes[0]?.areaM2 as number) / 5.100656217e14 - 1) < 1e-8);
    // A 1° cell at the equator is about 12,308.8 km².
    const eq = new Uint8Array(width * height);
    eq[89 * width] = 1;
    const one = classSummary(
      {
        width,
        height,
        classes: eq,
        confidence: new Float32Array(width * height),
        counts: [0, 1, 0],
        validPixels: 1,
      },
      model,
      globe,
    );
    assert.ok(Math.abs((one.classes[0]?.areaM2 as number) / 1e6 - 12308.8) < 1);
  });

  test("reports null areas for a tile without a CRS", () => {
    const t = tile({ crs: null });
    const s = classSummary(createClassifier(model).classify(t), model, t);
    assert.ok(s.classes.every((k) => k.areaM2 === null));
  });
});

describe("rasterisation", () => {
  test("walks polygon rings clockwise in world coordinates, as rasterio does", () => {
    // The same triangle in pixel space, once on a south-up grid (counter-clockwise in world
    // coordinates) and once north-up (clockwise): rasterio burns its bottom edge, which lies on
    // row 2's centre line, only in the second case (measured with rasterio 1.3 / GDAL 3.6).
    const southUp = polygonPixels(
      [
        [
          [0.2, 0.1],
          [3.8, 2.5],
          [0.2, 2.5],
          [0.2, 0.1],
        ],
      ],
      [0, 1, 0, 0, 0, 1],
      6,
      6,
    );
    assert.deepEqual(Array.from(southUp), [0, 6, 7]);
    const northUp = polygonPixels(
      [
        [
          [0.2, -0.1],
          [3.8, -2.5],
          [0.2, -2.5],
          [0.2, -0.1],
        ],
      ],
      [0, 1, 0, 0, 0, -1],
      6,
      6,
    );
    assert.deepEqual(Array.from(northUp), [0, 6, 7, 12, 13, 14, 15]);
    assert.equal(
      isClockwise([
        [0, 0],
        [0, 1],
        [1, 1],
        [1, 0],
        [0, 0],
      ]),
      true,
    );
    assert.equal(
      isClockwise([
        [0, 0],
        [1, 0],
        [1, 1],
        [0, 1],
        [0, 0],
      ]),
      false,
    );
  });

  test("fills even-odd over all rings and burns a right-to-left horizontal edge on a pixel-centre line", () => {
    // Square 1..4 with a hole 2..3 (pixel space): centres 1.5 and 3.5 rows/cols remain.
    const outer = Float64Array.from([1, 1, 4, 1, 4, 4, 1, 4]);
    const hole = Float64Array.from([2, 2, 3, 2, 3, 3, 2, 3]);
    assert.deepEqual(Array.from(fillPolygon([outer, hole], 5, 5)), [6, 7, 8, 11, 13, 16, 17, 18]);
    // A triangle whose bottom edge lies exactly on row 2's centre line (y = 2.5), drawn right to left.
    // GDAL burns that edge from floor(0.2 + 0.5) to floor(3.8 + 0.5) - 1, i.e. columns 0..3.
    const tri = Float64Array.from([0.2, 0.1, 3.8, 2.5, 0.2, 2.5]);
    const filled = Array.from(fillPolygon([tri], 5, 5));
    assert.deepEqual(
      filled.filter((p) => p >= 10 && p < 15),
      [10, 11, 12, 13],
    );
    // Drawn left to right the same edge is skipped: row 2 is then empty.
    const flipped = Float64Array.from([0.2, 0.1, 0.2, 2.5, 3.8, 2.5]);
    assert.deepEqual(
      Array.from(fillPolygon([flipped], 5, 5)).filter((p) => p >= 10 && p < 15),
      [],
    );
  });
});

describe("Chiapas training polygons", () => {
  const skip = missing({ shared: true });
  test(
    "yield the peer's 718 training pixels from 30 polygons, from UTM and from lon/lat",
    { skip },
    async () => {
      const dir = sharedData("chiapas-l7-labels") as string;
      const stack = await decodeGeoTiff(
        new Uint8Array(readFileSync(join(dir, "LE70220491999322EDC01_stack.gtif"))),
      );
      const chiapasSpec = createFeatureSpec(stack.bands.length, { red: 3, nir: 4 });
      for (const file of ["training_data.geojson", "training_data.4326.geojson"]) {
        const geojson = JSON.parse(readFileSync(join(dir, file), "utf8")) as { features: unknown[] };
        assert.equal(geojson.features.length, 30);
        const m = trainModel([stack], { kind: "geojson", geojson }, { features: chiapasSpec, source: file });
        assert.equal(m.samples.y.length, 718, file);
        assert.deepEqual(
          m.training.samplesPerClass,
          { barren: 109, forest: 383, herbaceous: 145, urban: 65, water: 16 },
          file,
        );
      }
    },
  );
});
