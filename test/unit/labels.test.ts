import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { LabelNotFoundError, LabelStore } from "../../shared/adapters/archive/index.js";
import {
  LabelInvalidError,
  crsFromEpsg,
  labelSetGeoJson,
  labelsOutsideFootprints,
  parseLabelFeatures,
  ringSelfIntersection,
  projectPoint,
  WGS84,
} from "../../shared/index.js";

const opts = { author: "ana", now: "2026-11-30T12:00:00.000Z" };
const square = (x: number, y: number, d = 0.001) => ({
  type: "Polygon",
  coordinates: [
    [
      [x, y],
      [x + d, y],
      [x + d, y + d],
      [x, y + d],
      [x, y],
    ],
  ],
});

function invalid(input: unknown, field: string, crs = WGS84): void {
  assert.throws(
    () => parseLabelFeatures(input, { ...opts, crs }),
    (err: unknown) => err instanceof LabelInvalidError && err.field === field && err.code === "LABEL_INVALID",
    `expected a LabelInvalidError naming ${field}`,
  );
}

describe("parseLabelFeatures", () => {
  test("a Feature becomes one draft with its class, note, author and time", () => {
    const [d] = parseLabelFeatures(
      {
        type: "Feature",
        properties: { class: " water ", note: "river bend", time: "2026-11-29T10:00:00+01:00" },
        geometry: square(-93.3, 15.7),
      },
      opts,
    );
    assert.equal(d?.class, "water");
    assert.equal(d?.note, "river bend");
    assert.equal(d?.author, "ana");
    assert.equal(d?.time, "2026-11-29T09:00:00.000Z");
    assert.equal(d?.source, null);
    assert.deepEqual(d?.geometry, square(-93.3, 15.7));
  });

  test("a FeatureCollection of points, polygons and multipolygons keeps their order", () => {
    const drafts = parseLabelFeatures(
      {
        type: "FeatureCollection",
        features: [
          {
            type: "Feature",
            properties: { class: "forest", author: "bo" },
            geometry: { type: "Point", coordinates: [-93, 15, 7] },
          },
          { type: "Feature", properties: { class: "3" }, geometry: square(-93, 15) },
          {
            type: "Feature",
            properties: { class: "urban" },
            geometry: {
              type: "MultiPolygon",
              coordinates: [square(-93, 15).coordinates, square(-92, 14).coordinates],
            },
          },
        ],
      },
      opts,
    );
    assert.deepEqual(
      drafts.map((d) => [d.class, d.author, d.geometry.type]),
      [
        ["forest", "bo", "Point"],
        ["3", "ana", "Polygon"],
        ["urban", "ana", "MultiPolygon"],
      ],
    );
    // A z coordinate is dropped: labels are 2D.
    assert.deepEqual(drafts[0]?.geometry.coordinates, [-93, 15]);
  });

  test("coordinates in a projected CRS are kept as given and reprojected into lon/lat", () => {
    const utm = crsFromEpsg(32615);
    const [x, y] = projectPoint(WGS84, utm, -93.3, 15.7);
    const [d] = parseLabelFeatures(
      { type: "Feature", properties: { class: "water" }, geometry: { type: "Point", coordinates: [x, y] } },
      { ...opts, crs: utm },
    );
    assert.equal(d?.source?.crs, "EPSG:32615");
    assert.deepEqual(d?.source?.geometry.coordinates, [x, y]);
    const [lon, lat] = d?.geometry.coordinates as [number, number];
    assert.ok(Math.abs(lon + 93.3) < 1e-9 && Math.abs(lat - 15.7) < 1e-9);
  });

  test("each malformed part is refused naming its field", () => {
    const f = (properties: unknown, geometry: unknown = square(0, 0)) => ({
      type: "Feature",
      properties,
      geometry,
    });
    invalid(null, "body");
    invalid({ type: "Polygon" }, "type");
    invalid({ type: "FeatureCollection", features: [] }, "features");
    invalid({ type: "FeatureCollection", features: {} }, "features");
    invalid(f({}), "properties.class");
    invalid(f({ class: "" }), "properties.class");
    invalid(f({ class: { a: 1 } }), "properties.class");
    invalid(f({ class: "x".repeat(65) }), "properties.class");
    invalid(f({ class: "w", note: 3 }), "properties.note");
    invalid(f({ class: "w", time: "yesterday" }), "properties.time");
    invalid(f(null), "properties");
    invalid(f({ class: "w" }, null), "geometry");
    invalid(
      f(
        { class: "w" },
        {
          type: "LineString",
          coordinates: [
            [0, 0],
            [1, 1],
          ],
        },
      ),
      "geometry.type",
    );
    invalid(f({ class: "w" }, { type: "Point", coordinates: ["a", 1] }), "geometry.coordinates");
    invalid(
      f(
        { class: "w" },
        {
          type: "Polygon",
          coordinates: [
            [
              [0, 0],
              [1, 0],
              [1, 1],
              [0, 1],
            ],
          ],
        },
      ),
      "geometry.coordinates",
    );
    invalid(
      f(
        { class: "w" },
        {
          type: "Polygon",
          coordinates: [
            [
              [0, 0],
              [1, 0],
              [0, 0],
            ],
          ],
        },
      ),
      "geometry.coordinates",
    );
    invalid(f({ class: "w" }, { type: "Point", coordinates: [500000, 1700000] }), "geometry.coordinates");
    invalid(
      { type: "FeatureCollection", features: [f({ class: "w" }), f({ klass: "w" })] },
      "features[1].properties.class",
    );
  });
});

describe("LabelStore", () => {
  const withStore = async (fn: (s: LabelStore, dir: string) => Promise<void>) => {
    const dir = await mkdtemp(join(tmpdir(), "lanemap-labels-"));
    try {
      await fn(new LabelStore(dir), dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  const drafts = (...classes: string[]) =>
    parseLabelFeatures(
      {
        type: "FeatureCollection",
        features: classes.map((c, i) => ({
          type: "Feature",
          properties: { class: c },
          geometry: square(i, i),
        })),
      },
      opts,
    );

  test("an empty data directory has label-set version 0 with no labels", () =>
    withStore(async (s) => {
      assert.deepEqual(await s.read(), { version: 0, updatedAt: null, labels: [] });
    }));

  test("every change makes a new version, and every earlier version reads back as it was", () =>
    withStore(async (s) => {
      const a = await s.add(drafts("water", "forest"));
      const b = await s.add(drafts("urban"));
      const r = await s.remove(a.ids[0] as string, "ana");
      assert.deepEqual([a.version, b.version, r.version], [1, 2, 3]);
      assert.deepEqual(
        (await s.read()).labels.map((l) => l.class),
        ["forest", "urban"],
      );
      assert.deepEqual(
        (await s.read(2)).labels.map((l) => l.class),
        ["water", "forest", "urban"],
      );
      assert.deepEqual(
        (await s.read(1)).labels.map((l) => [l.class, l.addedIn]),
        [
          ["water", 1],
          ["forest", 1],
        ],
      );
      const fc = labelSetGeoJson(await s.read());
      assert.equal(fc.labelSetVersion, 3);
      assert.equal(fc.features[0]?.id, a.ids[1]);
    }));

  test("removing an unknown id is a LabelNotFoundError and makes no version", () =>
    withStore(async (s) => {
      await s.add(drafts("water"));
      await assert.rejects(s.remove("lbl-000000000000"), LabelNotFoundError);
      assert.equal((await s.read()).version, 1);
    }));

  test("concurrent writers each get their own version (no lost update)", () =>
    withStore(async (s, dir) => {
      const other = new LabelStore(dir);
      const results = await Promise.all([
        ...Array.from({ length: 6 }, () => s.add(drafts("water"))),
        ...Array.from({ length: 6 }, () => other.add(drafts("forest"))),
      ]);
      assert.deepEqual(
        results.map((r) => r.version).sort((a, b) => a - b),
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
      assert.equal((await s.read()).labels.length, 12);
    }));

  test("a line torn by a crash mid-append is no change, and the next change starts a line of its own", () =>
    withStore(async (s) => {
      await s.add(drafts("water"));
      await appendFile(s.path, '{"version":2,"at":"2026');
      assert.equal((await s.read()).version, 1);
      const next = await s.add(drafts("forest"));
      assert.equal(next.version, 2);
      const lines = (await readFile(s.path, "utf8")).trim().split("\n");
      assert.equal(lines.length, 2);
      assert.deepEqual(
        (await s.read()).labels.map((l) => l.class),
        ["water", "forest"],
      );
    }));
});

describe("parseLabelFeatures: questionable input (issue 12)", () => {
  const bowTie = {
    type: "Polygon",
    coordinates: [
      [
        [0, 0],
        [1, 1],
        [1, 0],
        [0, 1],
        [0, 0],
      ],
    ],
  };
  const feature = (cls: unknown, geometry: unknown = square(0, 0)) => ({
    type: "Feature",
    properties: { class: cls },
    geometry,
  });
  const collection = (...features: unknown[]) => ({ type: "FeatureCollection", features });

  test("a self-intersecting (bow-tie) polygon is refused, naming the feature and the crossing edges", () => {
    invalid(collection(feature("forest"), feature("forest", bowTie)), "features[1].geometry.coordinates");
    assert.throws(
      () => parseLabelFeatures(feature("forest", bowTie), opts),
      /ring 0 intersects itself \(edges 0 and 2 meet/,
    );
    invalid(
      feature("forest", {
        type: "MultiPolygon",
        coordinates: [square(5, 5).coordinates, bowTie.coordinates],
      }),
      "geometry.coordinates",
    );
  });

  test("simple rings pass: squares, concave rings, holes, repeated consecutive positions", () => {
    const concave = [
      [0, 0],
      [4, 0],
      [4, 4],
      [2, 1],
      [0, 4],
      [0, 0],
    ] as [number, number][];
    assert.equal(ringSelfIntersection(concave), null);
    assert.equal(ringSelfIntersection(square(0, 0).coordinates[0] as [number, number][]), null);
    const repeated = [
      [0, 0],
      [1, 0],
      [1, 0],
      [1, 1],
      [0, 1],
      [0, 0],
    ] as [number, number][];
    assert.equal(
      parseLabelFeatures(feature("w", { type: "Polygon", coordinates: [repeated] }), opts).length,
      1,
    );
    // A ring that touches itself at a vertex (figure eight) is not simple either.
    const eight = [
      [0, 0],
      [2, 2],
      [4, 0],
      [4, 4],
      [2, 2],
      [0, 4],
      [0, 0],
    ] as [number, number][];
    assert.notEqual(ringSelfIntersection(eight), null);
  });

  test("a non-string class (3) is refused: class must be a string name", () => {
    invalid(feature(3), "properties.class");
    assert.throws(() => parseLabelFeatures(feature(3), opts), /class must be a string name/);
  });

  test("a class differing only by case from an existing class is refused, suggesting the existing name", () => {
    assert.throws(
      () => parseLabelFeatures(feature("Forest"), { ...opts, existingClasses: ["forest", "water"] }),
      (err: unknown) =>
        err instanceof LabelInvalidError &&
        err.field === "properties.class" &&
        /"Forest" differs from the existing class "forest" only by case; use "forest"/.test(err.message),
    );
    // Within one submission too: the first spelling is the existing one.
    assert.throws(
      () => parseLabelFeatures(collection(feature("water"), feature("Water")), opts),
      /existing class "water"/,
    );
    assert.equal(parseLabelFeatures(feature("forest"), { ...opts, existingClasses: ["forest"] }).length, 1);
  });

  test("labels outside every archived tile's footprint are named in warnings; inside ones are not", () => {
    const drafts = parseLabelFeatures(
      collection(feature("a", square(-93, 15)), feature("b", square(10, 50))),
      opts,
    );
    const footprints = [{ minX: -94, minY: 14, maxX: -92, maxY: 16 }];
    const warnings = labelsOutsideFootprints(drafts, footprints);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0] ?? "",
      /^features\[1\] \(class "b"\) lies outside every archived tile's footprint/,
    );
    // Across the antimeridian a footprint is stored west > east.
    const far = parseLabelFeatures(feature("c", square(179.5, 0)), opts);
    assert.deepEqual(labelsOutsideFootprints(far, [{ minX: 179, minY: -1, maxX: -179, maxY: 1 }]), []);
    assert.match(labelsOutsideFootprints(far, [])[0] ?? "", /archive holds no tile yet/);
  });
});
