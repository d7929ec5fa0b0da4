/**
 * POST /v1/stats honours the legacy GeoJSON `crs` member as POST /v1/labels does (issue 12/13
 * new-user check: a UTM polygon was refused with "longitude must lie in -180..180"). The oracle is
 * the raster itself: a polygon on pixel edges counts exactly the pixels of its block.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crsFromEpsg, toWgs84 } from "../../shared/index.js";
import { startServing } from "../helpers/serving-server.js";
import { makeRaster, tempDataDir, utmTile, writeBatchView } from "../helpers/serving-views.js";

const X0 = 500_000;
const Y0 = 5_540_000;
const PIXEL_M = 30;
const PIXELS = 16;
/** Classes in bands of columns and rows, so a misplaced polygon counts other classes. */
const raster = makeRaster(PIXELS, (c, r) => 1 + (((c >> 2) + (r >> 2)) % 4));
/** The block of pixels the polygon covers: columns 2..9, rows 3..11. */
const BLOCK = { c0: 2, c1: 10, r0: 3, r1: 12 };
const ring: [number, number][] = [
  [X0 + BLOCK.c0 * PIXEL_M, Y0 - BLOCK.r0 * PIXEL_M],
  [X0 + BLOCK.c1 * PIXEL_M, Y0 - BLOCK.r0 * PIXEL_M],
  [X0 + BLOCK.c1 * PIXEL_M, Y0 - BLOCK.r1 * PIXEL_M],
  [X0 + BLOCK.c0 * PIXEL_M, Y0 - BLOCK.r1 * PIXEL_M],
  [X0 + BLOCK.c0 * PIXEL_M, Y0 - BLOCK.r0 * PIXEL_M],
];

interface Stats {
  pixels: number;
  classes: { id: number; pixels: number; areaM2: number }[];
}

async function withServer(
  run: (post: (body: unknown) => Promise<{ status: number; body: unknown }>) => Promise<void>,
) {
  await using data = await tempDataDir();
  const tile = utmTile({
    x0: X0,
    y0: Y0,
    pixels: PIXELS,
    pixelM: PIXEL_M,
    cell: "c0000r0000",
    tileId: "utm",
    lane: "batch",
    acquired: "2024-05-01T10:00:00Z",
    ingestSeq: 1,
    raster,
  });
  await writeBatchView(data.dir, { version: 1, watermark: 10, tiles: [tile] });
  await using srv = await startServing({ dataDir: data.dir });
  await run(async (body) => {
    const res = await fetch(`${srv.url}/v1/stats`, {
      method: "POST",
      headers: { "content-type": "application/geo+json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  });
}

describe("POST /v1/stats with a legacy crs member", () => {
  test("a UTM polygon counts exactly the pixels of its block, the same as its WGS 84 equivalent", async () => {
    const expected = [0, 0, 0, 0, 0];
    for (let r = BLOCK.r0; r < BLOCK.r1; r++)
      for (let c = BLOCK.c0; c < BLOCK.c1; c++) {
        const k = raster.classes[r * PIXELS + c] ?? 0;
        expected[k] = (expected[k] ?? 0) + 1;
      }
    // The WGS 84 equivalent: each edge reprojected at 8 points, so it follows the edge's curvature.
    const utm = crsFromEpsg(32633);
    const wgs84Ring: [number, number][] = [];
    for (let e = 0; e < 4; e++) {
      const [ax, ay] = ring[e] as [number, number];
      const [bx, by] = ring[e + 1] as [number, number];
      for (let i = 0; i < 8; i++)
        wgs84Ring.push(toWgs84(utm, ax + ((bx - ax) * i) / 8, ay + ((by - ay) * i) / 8));
    }
    wgs84Ring.push(wgs84Ring[0] as [number, number]);
    await withServer(async (post) => {
      const named = await post({
        type: "Feature",
        crs: { type: "name", properties: { name: "urn:ogc:def:crs:EPSG::32633" } },
        properties: {},
        geometry: { type: "Polygon", coordinates: [ring] },
      });
      assert.equal(named.status, 200, JSON.stringify(named.body));
      const utmStats = named.body as Stats;
      const lonLat = await post({ type: "Polygon", coordinates: [wgs84Ring] });
      assert.equal(lonLat.status, 200);
      const wgsStats = lonLat.body as Stats;
      const pixels = (s: Stats) => s.classes.filter((c) => c.id > 0).map((c) => [c.id, c.pixels]);
      assert.deepEqual(
        pixels(utmStats),
        expected.slice(1).map((n, i) => [i + 1, n]),
      );
      assert.deepEqual(pixels(utmStats), pixels(wgsStats));
      assert.equal(utmStats.pixels, (BLOCK.c1 - BLOCK.c0) * (BLOCK.r1 - BLOCK.r0));
      // A bare geometry may carry the member too ("EPSG:n" as GDAL writes it).
      const bare = await post({
        type: "Polygon",
        crs: { type: "name", properties: { name: "EPSG:32633" } },
        coordinates: [ring],
      });
      assert.deepEqual(pixels(bare.body as Stats), pixels(utmStats));
    });
  });

  test("a crs member lanemap cannot use is a 400 naming body.crs; without one, UTM metres are still refused as lon/lat", async () => {
    await withServer(async (post) => {
      const bad = await post({
        type: "Polygon",
        crs: { type: "name", properties: { name: "EPSG:999999" } },
        coordinates: [ring],
      });
      assert.equal(bad.status, 400);
      const params = (bad.body as { invalid_params: { name: string }[] }).invalid_params;
      assert.equal(params[0]?.name, "body.crs");
      const none = await post({ type: "Polygon", coordinates: [ring] });
      assert.equal(none.status, 400);
      assert.match(JSON.stringify(none.body), /longitude must lie in -180\.\.180/);
    });
  });
});
