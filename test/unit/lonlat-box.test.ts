import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  boxCentre,
  boxContains,
  boxGeometry,
  boxIntersection,
  boxUnion,
  boxWithin,
  boxesIntersect,
  densifiedRing,
  lonWidth,
  ringFootprint,
  splitAtAntimeridian,
  wrapLongitude,
  type Bounds,
} from "../../shared/index.js";

/**
 * Boxes with integer edges, crossing 180° or not (west > east), never the whole globe. West edges
 * start at -179: a box whose west edge is exactly -180 names the same meridian as one ending at 180,
 * and the box algebra does not identify the two (a known limit, said in shared/lonlat/box.ts).
 */
const box = fc
  .record({
    west: fc.integer({ min: -179, max: 179 }),
    width: fc.integer({ min: 0, max: 359 }),
    south: fc.integer({ min: -90, max: 90 }),
    height: fc.integer({ min: 0, max: 30 }),
  })
  .map(({ west, width, south, height }): Bounds => {
    const east = west + width;
    return {
      minX: west,
      minY: south,
      maxX: east > 180 ? east - 360 : east,
      maxY: Math.min(90, south + height),
    };
  });

const point = fc.tuple(fc.integer({ min: -180, max: 180 }), fc.integer({ min: -90, max: 90 }));

/**
 * Naive reference: the box's lon/lat points every half degree of longitude (edges included). Edges
 * are whole degrees, so a gap between two boxes is at least 1° wide and holds a half-degree point:
 * sampling whole degrees alone would miss the open interval between two adjacent edges.
 */
function gridPoints(b: Bounds): [number, number][] {
  const out: [number, number][] = [];
  for (let d = 0; d <= lonWidth(b); d += 0.5)
    for (let lat = Math.ceil(b.minY); lat <= b.maxY; lat += 3) out.push([wrapLongitude(b.minX + d), lat]);
  return out;
}

describe("lon/lat boxes across the antimeridian (RFC 7946 §5.2)", () => {
  test("a box with west > east contains the longitudes on both sides of 180° and none in between", () => {
    const fiji: Bounds = { minX: 177, minY: -19, maxX: -178, maxY: -16 };
    assert.ok(boxContains(fiji, 179.5, -17));
    assert.ok(boxContains(fiji, -179, -17));
    assert.ok(!boxContains(fiji, 20, -17), "not Africa");
    const africa: Bounds = { minX: -20, minY: -35, maxX: 52, maxY: 37 };
    assert.equal(boxesIntersect(fiji, africa), false, "a search over Africa does not find Fiji");
    assert.equal(boxesIntersect(fiji, { minX: 170, minY: -20, maxX: -170, maxY: -10 }), true);
  });

  test("splits into the part west of 180° and the part east of it, as a GeoJSON MultiPolygon", () => {
    const b: Bounds = { minX: 179.5, minY: -17.3, maxX: -179.9, maxY: -17.1 };
    assert.deepEqual(splitAtAntimeridian(b), [
      { minX: 179.5, minY: -17.3, maxX: 180, maxY: -17.1 },
      { minX: -180, minY: -17.3, maxX: -179.9, maxY: -17.1 },
    ]);
    const g = boxGeometry(b);
    assert.equal(g.type, "MultiPolygon");
    assert.equal(boxGeometry({ minX: 1, minY: 2, maxX: 3, maxY: 4 }).type, "Polygon");
    assert.deepEqual(boxCentre(b), [179.8, -17.200000000000003]);
  });

  test("intersect exactly when they share a point, and the intersection is what both contain", () => {
    fc.assert(
      fc.property(box, box, point, (a, b, [lon, lat]) => {
        const pieces = boxIntersection(a, b);
        assert.equal(boxesIntersect(a, b), pieces.length > 0);
        const inBoth = boxContains(a, lon, lat) && boxContains(b, lon, lat);
        assert.equal(
          pieces.some((p) => boxContains(p, lon, lat)),
          inBoth,
        );
        for (const p of pieces)
          for (const [x, y] of gridPoints(p)) assert.ok(boxContains(a, x, y) && boxContains(b, x, y));
      }),
      { numRuns: 400 },
    );
  });

  test("a box lies within another exactly when every one of its points does", () => {
    fc.assert(
      fc.property(box, box, (a, b) => {
        const every = gridPoints(a).every(([x, y]) => boxContains(b, x, y));
        assert.equal(boxWithin(a, b), every && boxContains(b, a.maxX, a.maxY));
      }),
      { numRuns: 400 },
    );
  });

  test("the union covers both boxes and is the narrowest box that does", () => {
    fc.assert(
      fc.property(box, box, (a, b) => {
        const u = boxUnion(a, b);
        for (const [x, y] of [...gridPoints(a), ...gridPoints(b)])
          assert.ok(boxContains(u, x, y), `${x},${y}`);
        // Reference: merge the longitude intervals on a line; the narrowest covering arc leaves out
        // the largest gap between them (the wrap-around gap included).
        const spans = [a, b]
          .flatMap(splitAtAntimeridian)
          .map((p) => [p.minX, p.maxX] as const)
          .sort((x, y) => x[0] - y[0]);
        const merged: [number, number][] = [];
        for (const [lo, hi] of spans) {
          const last = merged[merged.length - 1];
          if (last && lo <= last[1]) last[1] = Math.max(last[1], hi);
          else merged.push([lo, hi]);
        }
        let gap =
          (merged[0] as [number, number])[0] + 360 - (merged[merged.length - 1] as [number, number])[1];
        for (let i = 1; i < merged.length; i++)
          gap = Math.max(gap, (merged[i] as [number, number])[0] - (merged[i - 1] as [number, number])[1]);
        const narrowest = 360 - gap;
        assert.equal(Math.min(lonWidth(u), 360), narrowest);
      }),
      { numRuns: 400 },
    );
  });

  test("a ring's footprint is the box it was drawn from, across 180° or not", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -180, max: 179.9, noNaN: true }),
        fc.double({ min: 0.01, max: 170, noNaN: true }),
        fc.double({ min: -80, max: 70, noNaN: true }),
        (west, width, south) => {
          // The ring as a CRS transform would deliver it: longitudes wrapped into -180..180.
          const unwrapped: Bounds = { minX: west, minY: south, maxX: west + width, maxY: south + 10 };
          const ring = densifiedRing(unwrapped).map(([x, y]): [number, number] => [wrapLongitude(x), y]);
          const f = ringFootprint(ring) as Bounds;
          assert.ok(Math.abs(f.minX - west) < 1e-9, `west ${f.minX} vs ${west}`);
          assert.ok(Math.abs(f.maxX - wrapLongitude(west + width)) < 1e-9, `east ${f.maxX}`);
          assert.ok(Math.abs(lonWidth(f) - width) < 1e-9);
          assert.equal(f.minY, south);
        },
      ),
    );
  });

  test("a ring around a pole spans every longitude and reaches the pole", () => {
    const ring: [number, number][] = [];
    for (let lon = -180; lon < 180; lon += 10) ring.push([lon, 70]);
    assert.deepEqual(ringFootprint(ring), { minX: -180, minY: 70, maxX: 180, maxY: 90 });
  });
});
