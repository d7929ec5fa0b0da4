import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  WGS84,
  crsFromEpsg,
  projectPoint,
  transformBounds,
  type Bounds,
  type ClassRaster,
} from "../../shared/index.js";
import {
  boxInsideArea,
  bboxArea,
  clipRing,
  polygonArea,
  type Area,
  type Ring,
} from "../../serving/geo/area.js";
import { countClassesInArea, pixelAt, pixelTransform } from "../../serving/geo/pixels.js";
import { GridIndex } from "../../serving/view/grid-index.js";
import { LruCache } from "../../serving/view/lru-cache.js";

function insideRings(rings: readonly Ring[], x: number, y: number): boolean {
  let inside = false;
  for (const ring of rings)
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i]!;
      const [xj, yj] = ring[j]!;
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  return inside;
}

function distanceToRings(rings: readonly Ring[], x: number, y: number): number {
  let best = Infinity;
  for (const ring of rings)
    for (let i = 1; i < ring.length; i++) {
      const [x0, y0] = ring[i - 1]!;
      const [x1, y1] = ring[i]!;
      const dx = x1 - x0;
      const dy = y1 - y0;
      const t =
        dx === 0 && dy === 0
          ? 0
          : Math.max(0, Math.min(1, ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy)));
      best = Math.min(best, Math.hypot(x - (x0 + t * dx), y - (y0 + t * dy)));
    }
  return best;
}

/**
 * Brute force: every pixel centre taken to lon/lat and tested against the area; centres within
 * `tol` of an edge are ambiguous (densified reprojection may put them on either side).
 */
function bruteForce(gt: readonly number[], crs: typeof WGS84, raster: ClassRaster, area: Area, tol: number) {
  const sure: number[] = [];
  const maybe: number[] = [];
  for (let r = 0; r < raster.height; r++)
    for (let c = 0; c < raster.width; c++) {
      const x = gt[0]! + (c + 0.5) * gt[1]! + (r + 0.5) * gt[2]!;
      const y = gt[3]! + (c + 0.5) * gt[4]! + (r + 0.5) * gt[5]!;
      const [lon, lat] = projectPoint(crs, WGS84, x, y);
      const k = raster.classes[r * raster.width + c]!;
      const near = area.polygons.some((p) => distanceToRings(p, lon, lat) < tol);
      const inside = area.polygons.some((p) => insideRings(p, lon, lat));
      if (near) maybe[k] = (maybe[k] ?? 0) + 1;
      else if (inside) sure[k] = (sure[k] ?? 0) + 1;
    }
  return { sure, maybe };
}

const raster = (w: number, h: number, seed: number): ClassRaster => {
  const classes = new Uint8Array(w * h).map((_, i) => ((i * 2654435761 + seed) >>> 0) % 5);
  return { width: w, height: h, k: 5, classes, votes: classes.map((c) => (c ? 3 : 0)) };
};

describe("counting class pixels inside an area", () => {
  test("on lon/lat grids, rotated or not, the scanline count equals a per-pixel test of the centres", () => {
    fc.assert(
      fc.property(
        fc.record({
          w: fc.integer({ min: 1, max: 12 }),
          h: fc.integer({ min: 1, max: 12 }),
          rot: fc.constantFrom(0, 0.001, -0.0007),
          seed: fc.nat(),
          poly: fc.array(
            fc.tuple(
              fc.double({ min: -0.05, max: 0.15, noNaN: true }),
              fc.double({ min: -0.15, max: 0.05, noNaN: true }),
            ),
            { minLength: 3, maxLength: 7 },
          ),
          hole: fc.boolean(),
        }),
        ({ w, h, rot, seed, poly, hole }) => {
          const gt = [10, 0.01, rot, 50, rot, -0.01];
          const r = raster(w, h, seed);
          const outer = [
            ...poly.map(([x, y]) => [10 + x, 50 + y] as const),
            [10 + poly[0]![0], 50 + poly[0]![1]] as const,
          ];
          const rings: Ring[] = [outer];
          if (hole)
            rings.push([
              [10.02, 49.98],
              [10.04, 49.98],
              [10.04, 49.96],
              [10.02, 49.98],
            ]);
          const area = polygonArea([rings]);
          const corners = [
            [10, 50],
            [10 + w * 0.01, 50 + w * rot],
            [10 + h * rot, 50 - h * 0.01],
            [10 + w * 0.01 + h * rot, 50 + w * rot - h * 0.01],
          ];
          const bounds: Bounds = {
            minX: Math.min(...corners.map((c) => c[0]!)),
            maxX: Math.max(...corners.map((c) => c[0]!)),
            minY: Math.min(...corners.map((c) => c[1]!)),
            maxY: Math.max(...corners.map((c) => c[1]!)),
          };
          const got = countClassesInArea(
            { width: w, height: h, geoTransform: gt, crs: WGS84 },
            bounds,
            r,
            area,
          );
          const { sure, maybe } = bruteForce(gt, WGS84, r, area, 1e-9);
          for (let k = 0; k < 5; k++) {
            const n = got[k] ?? 0;
            assert.ok(
              n >= (sure[k] ?? 0) && n <= (sure[k] ?? 0) + (maybe[k] ?? 0),
              `class ${k}: ${n} vs ${sure[k] ?? 0}+${maybe[k] ?? 0}`,
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test("on a UTM grid the reprojected outline counts the same pixels as testing each centre in lon/lat", () => {
    const utm = crsFromEpsg(32633);
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.nat(),
          box: fc.tuple(
            fc.double({ min: 0, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 1, noNaN: true }),
          ),
        }),
        ({ seed, box }) => {
          const gt = [500_000, 30, 0, 5_540_000, 0, -30];
          const r = raster(40, 40, seed);
          const native = { minX: 500_000, minY: 5_540_000 - 1200, maxX: 501_200, maxY: 5_540_000 };
          const bounds = transformBounds(utm, WGS84, native, 8);
          const lx = bounds.minX - 0.005 + (bounds.maxX - bounds.minX + 0.01) * Math.min(box[0], box[1]);
          const ux = bounds.minX - 0.005 + (bounds.maxX - bounds.minX + 0.01) * Math.max(box[0], box[1]);
          const ly = bounds.minY - 0.005 + (bounds.maxY - bounds.minY + 0.01) * Math.min(box[2], box[3]);
          const uy = bounds.minY - 0.005 + (bounds.maxY - bounds.minY + 0.01) * Math.max(box[2], box[3]);
          const area = bboxArea({ minX: lx, minY: ly, maxX: ux, maxY: uy });
          const got = countClassesInArea(
            { width: 40, height: 40, geoTransform: gt, crs: utm },
            bounds,
            r,
            area,
          );
          // 1e-7° is about a centimetre: only centres that close to the edge may go either way.
          const { sure, maybe } = bruteForce(gt, utm, r, area, 1e-7);
          for (let k = 0; k < 5; k++) {
            const n = got[k] ?? 0;
            assert.ok(
              n >= (sure[k] ?? 0) && n <= (sure[k] ?? 0) + (maybe[k] ?? 0),
              `class ${k}: ${n} vs ${sure[k] ?? 0}+${maybe[k] ?? 0}`,
            );
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  test("a box said to lie inside a polygon really does (the test is conservative, never wrong)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.double({ min: 0, max: 10, noNaN: true }), fc.double({ min: 0, max: 10, noNaN: true })),
          { minLength: 3, maxLength: 8 },
        ),
        fc.tuple(
          fc.double({ min: 0, max: 10, noNaN: true }),
          fc.double({ min: 0, max: 10, noNaN: true }),
          fc.double({ min: 0, max: 3, noNaN: true }),
          fc.double({ min: 0, max: 3, noNaN: true }),
        ),
        (pts, [x, y, w, h]) => {
          const ring: Ring = [...pts, pts[0]!];
          const area = polygonArea([[ring]]);
          const box = { minX: x, minY: y, maxX: x + w, maxY: y + h };
          if (!boxInsideArea(area, box)) return;
          for (let i = 0; i <= 10; i++)
            for (let j = 0; j <= 10; j++) {
              const px = x + (w * i) / 10;
              const py = y + (h * j) / 10;
              assert.ok(
                insideRings([ring], px, py) || distanceToRings([ring], px, py) < 1e-9,
                `(${px}, ${py}) outside`,
              );
            }
        },
      ),
      { numRuns: 500 },
    );
  });

  test("clipping a ring to a box keeps exactly the points of the box that were inside", () => {
    const ring: Ring = [
      [0, 0],
      [10, 0],
      [10, 10],
      [5, 3],
      [0, 10],
      [0, 0],
    ];
    const box = { minX: 2, minY: 1, maxX: 8, maxY: 9 };
    const clipped = clipRing(ring, box);
    const closed: Ring = [...clipped, clipped[0]!];
    for (let x = 2.05; x < 8; x += 0.37)
      for (let y = 1.05; y < 9; y += 0.41)
        assert.equal(insideRings([closed], x, y), insideRings([ring], x, y), `(${x}, ${y})`);
  });
});

describe("point lookups", () => {
  test("the inverse geotransform takes pixel corners back to their column and row", () => {
    const gt = [500_000, 30, 2, 5_540_000, -1.5, -30];
    const inv = pixelTransform(gt)!;
    for (const [c, r] of [
      [0, 0],
      [3, 7],
      [40, 2],
    ] as const) {
      const [fc2, fr] = inv(gt[0]! + c * gt[1]! + r * gt[2]!, gt[3]! + c * gt[4]! + r * gt[5]!);
      assert.ok(Math.abs(fc2 - c) < 1e-9 && Math.abs(fr - r) < 1e-9);
    }
    assert.equal(pixelTransform([0, 1, 1, 0, 1, 1]), null);
  });

  test("a lon/lat is reprojected into a UTM tile and lands in the pixel that contains it", () => {
    const utm = crsFromEpsg(32633);
    const gt = [500_000, 30, 0, 5_540_000, 0, -30];
    const [lon, lat] = projectPoint(utm, WGS84, 500_000 + 30 * 7.5, 5_540_000 - 30 * 3.5);
    const p = pixelAt({ width: 10, height: 10, geoTransform: gt, crs: utm }, lon, lat);
    assert.deepEqual([p?.col, p?.row], [7, 3]);
    assert.equal(pixelAt({ width: 5, height: 10, geoTransform: gt, crs: utm }, lon, lat), null);
  });
});

describe("the grid index", () => {
  test("finds exactly the items whose bounds intersect the query, each once", () => {
    const boxArb = fc
      .tuple(
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 4, noNaN: true }),
        fc.double({ min: 0, max: 4, noNaN: true }),
      )
      .map(([x, y, w, h]) => ({ minX: x, minY: y, maxX: x + w, maxY: y + h }));
    fc.assert(
      fc.property(
        fc.array(boxArb, { maxLength: 60 }),
        fc.array(boxArb, { minLength: 1, maxLength: 5 }),
        (boxes, queries) => {
          const items = boxes.map((b, i) => ({ i, b }));
          const index = new GridIndex(items, (x) => x.b);
          for (const q of queries) {
            const got: number[] = [];
            index.search(q, (it) => got.push(it.i));
            const want = items
              .filter(({ b }) => b.minX <= q.maxX && b.maxX >= q.minX && b.minY <= q.maxY && b.maxY >= q.minY)
              .map((x) => x.i);
            assert.deepEqual(
              got.sort((a, b) => a - b),
              want,
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("the raster cache", () => {
  test("evicts the least recently used entries beyond its weight budget", () => {
    const lru = new LruCache<string>(10, (v) => v.length);
    lru.set("a", "xxxx");
    lru.set("b", "xxxx");
    assert.equal(lru.get("a"), "xxxx");
    lru.set("c", "xxxx");
    assert.equal(lru.get("b"), undefined, "b was least recently used");
    assert.equal(lru.get("a"), "xxxx");
    lru.set("huge", "x".repeat(11));
    assert.equal(lru.get("huge"), undefined, "a value over the whole budget is not kept");
    lru.deletePrefix("a");
    assert.equal(lru.stats().entries, 1);
  });

  test("concurrent loads of one missing key share a single load, and a failed load is not cached", async () => {
    const lru = new LruCache<number>(100, () => 1);
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setImmediate(r));
      return 42;
    };
    const all = await Promise.all([
      lru.getOrLoad("k", load),
      lru.getOrLoad("k", load),
      lru.getOrLoad("k", load),
    ]);
    assert.deepEqual(all, [42, 42, 42]);
    assert.equal(loads, 1);
    await assert.rejects(
      lru.getOrLoad("bad", async () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(await lru.getOrLoad("bad", async () => 7), 7);
  });
});
