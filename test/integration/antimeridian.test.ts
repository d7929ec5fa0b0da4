/**
 * Tiles across the antimeridian: the footprint is a west > east box (RFC 7946 §5.2) equal to
 * rasterio's `transform_bounds` (the field case in ../shared/data/field/README.md), and every answer
 * serving gives — STAC search and items, /v1/tiles, /v1/point, /v1/stats — treats it so, and accepts
 * query boxes with west > east. A STAC search over Africa does not return a Fiji tile.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  crsFromEpsg,
  decodeGeoTiff,
  densifiedRing,
  encodeGeoTiff,
  ringFootprint,
  toWgs84,
  type Bounds,
} from "../../shared/index.js";
import { registerFastDecoders } from "../../shared/internal.js";
import { missing } from "../helpers/env.js";
import { startServing, type ServingFixture } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  lonLatTile,
  makeRaster,
  summarise,
  tempDataDir,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";

/** rasterio's transform_bounds of the field case (densify_pts=21). */
const RASTERIO_BOUNDS = `
import json, sys
import rasterio
from rasterio.warp import transform_bounds
with rasterio.open(sys.argv[1]) as src:
    print(json.dumps(transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)))
`;

describe(
  "a tile across the antimeridian has GDAL's west > east footprint",
  { skip: missing({ gdal: true, peer: true }) },
  () => {
    let dir = "";
    before(() => {
      registerFastDecoders();
      dir = mkdtempSync(join(tmpdir(), "lanemap-antimeridian-"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test("gdal_translate -a_srs EPSG:32701 -a_ullr 170000 8100000 190000 8080000 gives rasterio's bounds", async () => {
      const input = join(dir, "in.tif");
      const bytes = encodeGeoTiff({ width: 20, height: 20, bands: [new Uint8Array(400).fill(7)] });
      writeFileSync(input, bytes);
      const am = join(dir, "am.tif");
      const t = spawnSync(
        "gdal_translate",
        ["-q", "-a_srs", "EPSG:32701", "-a_ullr", "170000", "8100000", "190000", "8080000", input, am],
        { encoding: "utf8" },
      );
      assert.equal(t.status, 0, t.stderr);
      const raster = await decodeGeoTiff(readFileSync(am));
      const r = spawnSync("/usr/bin/python3", ["-c", RASTERIO_BOUNDS, am], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const [w, s, e, n] = JSON.parse(r.stdout) as number[];
      const b = raster.boundsWgs84 as Bounds;
      assert.ok(b.minX > b.maxX, `west ${b.minX} > east ${b.maxX}`);
      for (const [got, want, name] of [
        [b.minX, w, "west"],
        [b.minY, s, "south"],
        [b.maxX, e, "east"],
        [b.maxY, n, "north"],
      ] as const)
        assert.ok(Math.abs(got - (want as number)) < 1e-7, `${name} ${got} vs rasterio ${want}`);
      assert.deepEqual(
        [w, s, e, n].map((v) => Math.round((v as number) * 1000) / 1000),
        [179.895, -17.344, -179.914, -17.161],
      );
    });
  },
);

/** A 20 km UTM 1S tile across 180° (the field case's grid), 8 px of 2500 m, all class 2. */
function fijiTile(): TileFixture {
  const utm = crsFromEpsg(32701);
  const native = { minX: 170000, minY: 8080000, maxX: 190000, maxY: 8100000 };
  const boundsWgs84 = ringFootprint(densifiedRing(native).map(([x, y]) => toWgs84(utm, x, y)));
  const raster = makeRaster(8, () => 2);
  const result = summarise(
    {
      lane: "batch",
      tileId: "fiji-20240101",
      cell: "fiji",
      acquired: "2024-01-01T00:00:00Z",
      ingestSeq: 0,
      contentHash: createHash("sha256").update("fiji").digest("hex"),
      modelVersion: "m1",
      width: 8,
      height: 8,
      geoTransform: [170000, 2500, 0, 8100000, 0, -2500],
      epsg: 32701,
      proj4: null,
      boundsWgs84,
      processedAt: "2024-01-01T00:00:00Z",
    },
    raster,
    2500 * 2500,
  );
  return { result, raster };
}

describe("serving answers for a tile across the antimeridian", () => {
  let srv: ServingFixture;
  let disposeDir: AsyncDisposable;
  const fiji = fijiTile();
  const europe = lonLatTile(DEFAULT_GRID, {
    col: 0,
    row: 0,
    tileId: "europe-20240101",
    lane: "batch",
    acquired: "2024-01-01T00:00:00Z",
    ingestSeq: 0,
    raster: makeRaster(4, () => 1),
  });
  before(async () => {
    const d = await tempDataDir();
    disposeDir = d;
    await writeBatchView(d.dir, { version: 1, watermark: 0, tiles: [fiji, europe] });
    srv = await startServing({ dataDir: d.dir });
  });
  after(async () => {
    await srv[Symbol.asyncDispose]();
    await disposeDir[Symbol.asyncDispose]();
  });

  const ids = (body: { features: { id: string }[] }): string[] => body.features.map((f) => f.id).sort();

  test("a STAC search over Africa does not return the Fiji tile", async () => {
    const { status, body } = await srv.json<{ features: { id: string }[] }>(
      "/stac/search?bbox=-20,-35,52,37",
    );
    assert.equal(status, 200);
    assert.deepEqual(ids(body), []);
  });

  test("a STAC search with west > east finds the tile across 180° and nothing else", async () => {
    const { status, body } = await srv.json<{
      features: { id: string; bbox: number[]; geometry: { type: string; coordinates: number[][][][] } }[];
    }>("/stac/search?bbox=179,-18,-179,-17");
    assert.equal(status, 200);
    assert.deepEqual(ids(body), ["fiji-20240101"]);
    const item = body.features[0];
    assert.ok(item && (item.bbox[0] as number) > (item.bbox[2] as number), "item bbox west > east");
    assert.equal(item.geometry.type, "MultiPolygon", "the footprint split at 180° (RFC 7946 §3.1.9)");
    assert.equal(item.geometry.coordinates[0]?.[0]?.[1]?.[0], 180);
    assert.equal(item.geometry.coordinates[1]?.[0]?.[0]?.[0], -180);
  });

  test("the collection's extent is the narrow box covering both tiles the short way round", async () => {
    const { body } = await srv.json<{ extent: { spatial: { bbox: number[][] } } }>(
      "/stac/collections/lanemap-tiles",
    );
    const [w, , e] = body.extent.spatial.bbox[0] as number[];
    const fb = fiji.result.boundsWgs84 as Bounds;
    assert.equal(w, DEFAULT_GRID.lon0, "from Europe eastwards ...");
    assert.ok(Math.abs((e as number) - fb.maxX) < 1e-9, "... to Fiji's east edge past 180°");
  });

  test("/v1/tiles filters with a west > east box", async () => {
    const { status, body } = await srv.json<{ items: { tileId: string; bbox: number[] }[] }>(
      "/v1/tiles?bbox=179.5,-20,-179.5,-15",
    );
    assert.equal(status, 200);
    assert.deepEqual(
      body.items.map((i) => i.tileId),
      ["fiji-20240101"],
    );
    const far = await srv.json<{ items: unknown[] }>("/v1/tiles?bbox=170,-20,-175,-15&f=json");
    assert.equal(far.body.items.length, 1);
    const none = await srv.json<{ items: unknown[] }>("/v1/tiles?bbox=100,-20,170,-15");
    assert.equal(none.body.items.length, 0);
  });

  test("/v1/point finds the tile on both sides of 180°", async () => {
    for (const lon of [179.95, -179.95]) {
      const { status, body } = await srv.json<{ tileId: string; class: { id: number } }>(
        `/v1/point?lon=${lon}&lat=-17.25`,
      );
      assert.equal(status, 200, `lon ${lon}`);
      assert.equal(body.tileId, "fiji-20240101");
      assert.equal(body.class.id, 2);
    }
  });

  test("/v1/stats over a west > east box counts the whole tile once, and half of it over one side", async () => {
    const all = await srv.json<{ pixels: number; classes: { id: number; pixels: number }[] }>(
      "/v1/stats?bbox=179,-18,-179,-17",
    );
    assert.equal(all.status, 200);
    assert.equal(all.body.pixels, 64);
    // West of 180° only: the columns whose centres lie west of the antimeridian.
    const west = await srv.json<{ pixels: number }>("/v1/stats?bbox=179,-18,180,-17");
    const east = await srv.json<{ pixels: number }>("/v1/stats?bbox=-180,-18,-179,-17");
    assert.equal(west.body.pixels + east.body.pixels, 64);
    assert.ok(west.body.pixels > 0 && east.body.pixels > 0);
  });

  test("POST /v1/stats with a MultiPolygon split at 180° (RFC 7946 §3.1.9) counts the whole tile", async () => {
    const ring = (w: number, e: number): number[][] => [
      [w, -18],
      [e, -18],
      [e, -17],
      [w, -17],
      [w, -18],
    ];
    const res = await fetch(`${srv.url}/v1/stats`, {
      method: "POST",
      headers: { "content-type": "application/geo+json" },
      body: JSON.stringify({ type: "MultiPolygon", coordinates: [[ring(179, 180)], [ring(-180, -179)]] }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { pixels: number; area: { bbox: number[] } };
    assert.equal(body.pixels, 64);
    assert.deepEqual(body.area.bbox, [179, -18, -179, -17], "its bounds: one narrow box across 180°");
  });
});
