import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { decode as decodePng } from "fast-png";
import { join } from "node:path";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import { LiveView } from "../../shared/adapters/nats/index.js";
import {
  BATCH_VIEW_FILES,
  WGS84,
  crsFromEpsg,
  encodeGeoTiff,
  pixelArea,
  readGeoTiffInfo,
  toWgs84,
} from "../../shared/index.js";
import { missing } from "../helpers/env.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { startServing } from "../helpers/serving-server.js";
import {
  cellBounds,
  lonLatTile,
  makeRaster,
  putLive,
  tempDataDir,
  utmTile,
  writeBatchView,
  type LonLatGrid,
  type TileFixture,
} from "../helpers/serving-views.js";

/**
 * The path the web map asks for a cell's image in a lane (serving/web/api.js, browser JavaScript the
 * type-checker does not read, hence its shape spelled out here).
 */
const WEB_API = "../../serving/web/api.js";
const { cellImagePath } = (await import(WEB_API)) as {
  cellImagePath: (cell: string, name: string, lane: "merged" | "batch" | "live") => string;
};

/**
 * The tile with its scene in the archive (source.png draws it): three Int16 bands on grid `g`, every
 * pixel's value distinct (dn·band + pixel index), so a drawn colour tells which scene and pixel it is.
 */
async function withScene(
  archive: ArchiveStore,
  { result, raster }: TileFixture,
  g: LonLatGrid,
  dn: number,
): Promise<TileFixture> {
  const n = g.pixels * g.pixels;
  const d = g.size / g.pixels;
  const scene = encodeGeoTiff({
    width: g.pixels,
    height: g.pixels,
    bands: [1, 2, 3].map((b) => Int16Array.from({ length: n }, (_, i) => dn * b + i)),
    geoTransform: [g.lon0, d, 0, g.lat0, 0, -d],
    epsg: 4326,
    nodata: -9999,
  });
  const { contentHash } = await archive.putObject(scene);
  return { result: { ...result, contentHash }, raster };
}

/** A layer image of a tile or cell, asserting 200, with the sources it names. */
async function layerOf(srv: Awaited<ReturnType<typeof startServing>>, id: string, name: string) {
  const res = await srv.get(`/v1/tiles/${id}/${name}`);
  assert.equal(res.status, 200, `${name} of ${id}: ${res.status === 200 ? "" : await res.clone().text()}`);
  return {
    sources: res.headers.get("lanemap-sources"),
    png: decodePng(new Uint8Array(await res.arrayBuffer())),
  };
}

/** Publishes batch view v2 holding `tiles` with their composite and waits until serving answers the cell from it. */
async function publishBatchComposite(
  srv: Awaited<ReturnType<typeof startServing>>,
  dataDir: string,
  tiles: TileFixture[],
): Promise<void> {
  await writeBatchView(dataDir, { version: 2, watermark: 200, tiles, composite: true });
  for (let i = 0; i < 100; i++) {
    const r = await srv.json<{ composite?: { sources: { lane: string }[] } }>("/v1/tiles/c0000r0000");
    if (r.body.composite?.sources[0]?.lane === "batch") return;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.fail("serving did not switch to batch view v2");
}

/** The cell's classes.png, decoded. */
async function cellClasses(srv: Awaited<ReturnType<typeof startServing>>) {
  return decodePng(new Uint8Array(await (await srv.get("/v1/tiles/c0000r0000/classes.png")).arrayBuffer()));
}

/** The RGBA of pixel (c, r) of a decoded PNG. */
const rgba = (png: { data: ArrayLike<number>; width: number }, c: number, r: number) =>
  Array.from({ length: 4 }, (_, b) => png.data[(r * png.width + c) * 4 + b]);

const GRID: LonLatGrid = { lon0: 10, lat0: 50, size: 0.08, pixels: 8 };
/** The cloud block of the fresh scene: rows and columns 2..5 (16 of 64 pixels). */
const inBlock = (c: number, r: number) => c >= 2 && c < 6 && r >= 2 && r < 6;
/** The lon/lat of pixel (c, r)'s centre in cell (0, 0). */
const centre = (c: number, r: number) => {
  const d = GRID.size / GRID.pixels;
  return { lon: GRID.lon0 + (c + 0.5) * d, lat: GRID.lat0 - (r + 0.5) * d };
};

// Recent acquisitions, so that their ages fall inside the age PNG's day codes (0..254).
const DAY = 86_400_000;
const noon = Math.floor(Date.now() / DAY) * DAY + DAY / 2;
const CLEAR_AT = new Date(noon - 6 * DAY).toISOString();
const CLOUDY_AT = new Date(noon - 2 * DAY).toISOString();

const clear = (seq: number, votes = 5) =>
  lonLatTile(GRID, {
    col: 0,
    row: 0,
    tileId: "clear",
    lane: "batch",
    acquired: CLEAR_AT,
    ingestSeq: seq,
    raster: makeRaster(
      8,
      () => 1,
      5,
      () => votes,
    ),
  });
const cloudy = (lane: "batch" | "live", seq: number) =>
  lonLatTile(GRID, {
    col: 0,
    row: 0,
    tileId: "cloudy",
    lane,
    acquired: CLOUDY_AT,
    ingestSeq: seq,
    raster: makeRaster(8, (c, r) => (inBlock(c, r) ? 0 : 2)),
  });

interface Point {
  tileId: string;
  class: { id: number };
  source: { lane: string; tileId: string; acquired: string; modelVersion: string; ageDays: number } | null;
  ageDays: number | null;
  provenance: { lane: string };
}
interface Stats {
  classes: { id: number; pixels: number }[];
  pixels: number;
}

const b = cellBounds(GRID, 0, 0);
const bbox = `${b.minX},${b.minY},${b.maxX},${b.maxY}`;

/**
 * The newer scene of a path/row shifted between dates: lon 10.04..10.10, lat 49.91..49.97 (6×6 px
 * of 0.01° on `GRID`'s lattice, overlapping its south-east), class 2, its north-west 2×2 px cloud.
 */
const EAST: LonLatGrid = { lon0: 10.04, lat0: 49.97, size: 0.06, pixels: 6 };
const east = (lane: "batch" | "live", seq: number) =>
  lonLatTile(EAST, {
    col: 0,
    row: 0,
    tileId: "east",
    lane,
    acquired: CLOUDY_AT,
    ingestSeq: seq,
    raster: makeRaster(6, (c, r) => (c < 2 && r < 2 ? 0 : 2)),
  });

/**
 * A clear older lon/lat scene (class 1 + column mod 3) and a newer 10 km UTM 33N square of 50 × 50 px
 * of 200 m whose top half is cloud (class 0) and bottom half class 4, its top edge at `utmY0`.
 */
function utmOverLonLat(lonLat: LonLatGrid, utmY0: number) {
  const older = lonLatTile(lonLat, {
    col: 0,
    row: 0,
    tileId: "lonlat",
    lane: "batch",
    acquired: CLEAR_AT,
    ingestSeq: 10,
    raster: makeRaster(lonLat.pixels, (c) => 1 + (c % 3)),
  });
  const utm = (lane: "batch" | "live", seq: number) =>
    utmTile({
      x0: 495_000,
      y0: utmY0,
      pixels: 50,
      pixelM: 200,
      cell: "c0000r0000",
      tileId: "utm",
      lane,
      acquired: CLOUDY_AT,
      ingestSeq: seq,
      raster: makeRaster(50, (_, r) => (r < 25 ? 0 : 4)),
    });
  return { older, utm };
}

describe("per-pixel compositing across lanes", { skip: natsMissing() }, () => {
  test("a clear batch scene shows through the cloud block of a newer live scene, and the next batch run keeps the same composite", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10)] });
    await putLive(await LiveView.open(nats.nc), [cloudy("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });

    const inside = centre(3, 3);
    const p1 = await srv.json<Point>(`/v1/point?lon=${inside.lon}&lat=${inside.lat}`);
    assert.equal(p1.status, 200);
    assert.deepEqual(
      [
        p1.body.class.id,
        p1.body.source?.lane,
        p1.body.source?.tileId,
        p1.body.provenance.lane,
        p1.body.tileId,
      ],
      [1, "batch", "clear", "batch", "clear"],
    );
    assert.equal(p1.body.source?.acquired, CLEAR_AT);
    assert.equal(p1.body.source?.modelVersion, "m1");
    const outside = centre(0, 7);
    const p2 = await srv.json<Point>(`/v1/point?lon=${outside.lon}&lat=${outside.lat}`);
    assert.deepEqual(
      [p2.body.class.id, p2.body.source?.lane, p2.body.source?.tileId, p2.body.provenance.lane],
      [2, "live", "cloudy", "live"],
    );
    // The batch pixel is four days older than the live one.
    assert.ok(Math.abs((p1.body.ageDays ?? 0) - (p2.body.ageDays ?? 0) - 4) < 0.01);

    // Stats over the cell recount the composite: 16 batch pixels of class 1, 48 live of class 2.
    const s1 = await srv.json<Stats>(`/v1/stats?bbox=${bbox}`);
    assert.equal(s1.status, 200);
    const byId = (s: Stats) => Object.fromEntries(s.classes.map((c) => [c.id, c.pixels]));
    assert.deepEqual([byId(s1.body)[0], byId(s1.body)[1], byId(s1.body)[2]], [0, 16, 48]);
    assert.equal(s1.body.pixels, 64);

    // The cell's detail lists the sources and the pixels each gives.
    const d1 = await srv.json<{
      composite: { sources: { tileId: string; lane: string; pixels: number }[]; counts: number[] };
    }>("/v1/tiles/c0000r0000");
    // ...and the composite's tally, the figures the stats above use.
    assert.deepEqual(d1.body.composite.counts.slice(0, 3), [0, 16, 48]);
    assert.deepEqual(
      d1.body.composite.sources.map((s) => [s.tileId, s.lane, s.pixels]),
      [
        ["cloudy", "live", 48],
        ["clear", "batch", 16],
      ],
    );
    // The listing's counts are the composite's.
    const list = await srv.json<{ items: { cell: string; counts: number[]; validPixels: number }[] }>(
      "/v1/tiles",
    );
    assert.deepEqual(list.body.items[0]?.counts.slice(0, 3), [0, 16, 48]);
    assert.equal(list.body.items[0]?.validPixels, 64);

    // The class PNG is the composite; the age PNG tells the two acquisitions apart.
    const png = await cellClasses(srv);
    const composite1 = [...png.data];
    for (let r = 0; r < 8; r++)
      for (let c = 0; c < 8; c++) assert.equal(composite1[r * 8 + c], inBlock(c, r) ? 1 : 2);
    const age = decodePng(
      new Uint8Array(await (await srv.get("/v1/tiles/c0000r0000/age.png")).arrayBuffer()),
    );
    const a = [...age.data];
    assert.equal((a[3 * 8 + 3] ?? 0) - (a[0] ?? 0), 4, "the cloud block is four days older");
    // A tile id still draws that very tile: the fresh scene with its hole.
    const own = decodePng(
      new Uint8Array(await (await srv.get("/v1/tiles/cloudy/classes.png")).arrayBuffer()),
    );
    assert.equal(own.data[3 * 8 + 3], 0);

    // The next batch run reads the cloudy scene too (W above its sequence): the composite is the
    // batch view's alone, the same pixels, the same stats, the batch lane everywhere.
    await writeBatchView(data.dir, {
      version: 2,
      watermark: 200,
      tiles: [clear(10), cloudy("batch", 150)],
      composite: true,
    });
    let p3: Point | undefined;
    for (let i = 0; i < 100; i++) {
      const r = await srv.json<Point & { snapshot: { batch: { version: number } } }>(
        `/v1/point?lon=${outside.lon}&lat=${outside.lat}`,
      );
      if (r.body.snapshot.batch.version === 2) {
        p3 = r.body;
        break;
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(p3, "serving switched to v2");
    assert.deepEqual([p3.class.id, p3.source?.lane, p3.source?.tileId], [2, "batch", "cloudy"]);
    const p4 = await srv.json<Point>(`/v1/point?lon=${inside.lon}&lat=${inside.lat}`);
    assert.deepEqual([p4.body.class.id, p4.body.source?.lane, p4.body.source?.tileId], [1, "batch", "clear"]);
    const s2 = await srv.json<Stats>(`/v1/stats?bbox=${bbox}`);
    assert.deepEqual(s2.body.classes, s1.body.classes);
    // The batch lane on its own shows the batch view's composite too.
    const batchList = await srv.json<{ items: { counts: number[]; tileId: string }[] }>(
      "/v1/tiles?lane=batch",
    );
    assert.deepEqual(batchList.body.items[0]?.counts.slice(0, 3), [0, 16, 48]);
    assert.equal(batchList.body.items[0]?.tileId, "cloudy");
    const png2 = await cellClasses(srv);
    assert.deepEqual([...png2.data], composite1);
    const d2 = await srv.json<{
      composite: { sources: { tileId: string; lane: string; pixels: number }[] };
      absorbed: { tileId: string }[];
    }>("/v1/tiles/c0000r0000");
    assert.deepEqual(
      d2.body.composite.sources.map((s) => [s.tileId, s.lane, s.pixels]),
      [
        ["cloudy", "batch", 48],
        ["clear", "batch", 16],
      ],
    );
    assert.deepEqual(
      d2.body.absorbed.map((x) => x.tileId),
      ["cloudy"],
    );
  });

  test("source.png and confidence.png of the cell name both acquisitions in Lanemap-Sources, and of a tile id that tile alone", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // Each tile's scene in the archive (source.png draws it), on the cell's 8×8 grid.
    const archive = new ArchiveStore(data.dir);
    const archived = (t: TileFixture, dn: number) => withScene(archive, t, GRID, dn);
    // The clear scene's classes have 2 votes of 5, the cloudy one's 5: confidence tells them apart.
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 100,
      tiles: [await archived(clear(10, 2), 300)],
    });
    await putLive(await LiveView.open(nats.nc), [await archived(cloudy("live", 150), 200)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });

    const layer = (id: string, name: string) => layerOf(srv, id, name);
    for (const name of ["source.png", "confidence.png"]) {
      assert.equal((await layer("c0000r0000", name)).sources, "cloudy,clear", `${name} of the cell`);
      assert.equal((await layer("cloudy", name)).sources, "cloudy", `${name} of the live tile`);
      assert.equal((await layer("clear", name)).sources, "clear", `${name} of the batch tile`);
    }

    // The header is what the cell's confidence drew: each pixel's vote share from its class's source.
    const cell = (await layer("c0000r0000", "confidence.png")).png.data;
    const older = (await layer("clear", "confidence.png")).png.data;
    const newer = (await layer("cloudy", "confidence.png")).png.data;
    assert.notEqual(older[0], newer[0], "the two scenes' vote shares draw differently");
    for (let r = 0; r < 8; r++)
      for (let c = 0; c < 8; c++)
        assert.equal(
          cell[r * 8 + c],
          (inBlock(c, r) ? older : newer)[r * 8 + c],
          `pixel (${c}, ${r}) from the ${inBlock(c, r) ? "older" : "newer"} scene`,
        );
  });
});

/** The same cell at half the resolution: 4×4 pixels of 0.02°. */
const COARSE: LonLatGrid = { ...GRID, pixels: 4 };
/** A clear older scene whose class is constant on each 2×2 block (so on each coarse pixel). */
const blocky = (seq: number, lane: "batch" | "live" = "batch") =>
  lonLatTile(GRID, {
    col: 0,
    row: 0,
    tileId: "fine",
    lane,
    acquired: CLEAR_AT,
    ingestSeq: seq,
    raster: makeRaster(8, (c, r) => 1 + (((c >> 1) + (r >> 1)) % 3)),
  });
/** A newer coarse scene, its left half (columns 0, 1) cloudy. */
const coarse = (lane: "batch" | "live", seq: number) =>
  lonLatTile(COARSE, {
    col: 0,
    row: 0,
    tileId: "coarse",
    lane,
    acquired: CLOUDY_AT,
    ingestSeq: seq,
    raster: makeRaster(4, (c) => (c < 2 ? 0 : 4)),
  });

describe("per-pixel compositing across pixel grids", { skip: natsMissing() }, () => {
  test("a newer scene at half the resolution with a cloudy half keeps the older scene's pixels under its cloud, in serving and in the next batch view", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [blocky(10)] });
    await putLive(await LiveView.open(nats.nc), [coarse("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    // The composite is on the newest scene's grid (4×4): the cloudy half sampled from the fine scene.
    const expected = [...Array(16).keys()].map((i) => {
      const c = i % 4;
      const r = Math.floor(i / 4);
      return c < 2 ? 1 + ((c + r) % 3) : 4;
    });
    type Detail = {
      composite: {
        sources: { tileId: string; lane: string; pixels: number }[];
        noSourcePixels: number;
        counts: number[];
      };
    };
    const d1 = await srv.json<Detail>("/v1/tiles/c0000r0000");
    assert.equal(d1.status, 200);
    assert.deepEqual(
      d1.body.composite.sources.map((s) => [s.tileId, s.lane, s.pixels]),
      [
        ["coarse", "live", 8],
        ["fine", "batch", 8],
      ],
    );
    assert.equal(d1.body.composite.noSourcePixels, 0);
    const png1 = await cellClasses(srv);
    assert.deepEqual([...png1.data], expected);
    // The point query in the cloudy half answers the fine scene's class and names it.
    const d = COARSE.size / COARSE.pixels;
    const at = { lon: GRID.lon0 + 0.5 * d, lat: GRID.lat0 - 1.5 * d };
    const p = await srv.json<Point>(`/v1/point?lon=${at.lon}&lat=${at.lat}`);
    assert.deepEqual(
      [p.body.class.id, p.body.source?.lane, p.body.source?.tileId],
      [expected[4], "batch", "fine"],
    );
    const s1 = await srv.json<Stats>(`/v1/stats?bbox=${bbox}`);
    assert.equal(s1.body.pixels, 16);

    // The next batch run composites the same way: the batch view alone gives the same composite.
    await writeBatchView(data.dir, {
      version: 2,
      watermark: 200,
      tiles: [blocky(10), coarse("batch", 150)],
      composite: true,
    });
    let d2: Detail | undefined;
    for (let i = 0; i < 100 && !d2; i++) {
      const r = await srv.json<Detail & { snapshot?: unknown }>("/v1/tiles/c0000r0000");
      if (r.body.composite.sources[0]?.lane === "batch") d2 = r.body;
      else await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(d2, "serving switched to v2");
    assert.deepEqual(
      d2.composite.sources.map((s) => [s.tileId, s.lane, s.pixels]),
      [
        ["coarse", "batch", 8],
        ["fine", "batch", 8],
      ],
    );
    const png2 = await cellClasses(srv);
    assert.deepEqual([...png2.data], expected);
    const s2 = await srv.json<Stats>(`/v1/stats?bbox=${bbox}`);
    assert.deepEqual(s2.body.classes, s1.body.classes);
  });
});

describe("a cell's winner in its detail", { skip: natsMissing() }, () => {
  type Detail = { winner: { tileId: string; validPixels: number }; composite: { validPixels: number } };
  const figures = (d: Detail) => [d.winner.tileId, d.winner.validPixels, d.composite.validPixels];

  test("is the newest tile's own summary, by cell key and by tile id, before and after a listing composed the cell", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10)] });
    await putLive(await LiveView.open(nats.nc), [cloudy("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const before = await srv.json<Detail>("/v1/tiles/c0000r0000");
    assert.deepEqual(figures(before.body), ["cloudy", 48, 64]);
    await srv.json("/v1/tiles?limit=100");
    const after = await srv.json<Detail>("/v1/tiles/c0000r0000");
    assert.deepEqual(figures(after.body), ["cloudy", 48, 64]);
    // By tile id: the same cell, the same winner, the same composite.
    const byTile = await srv.json<Detail>("/v1/tiles/cloudy");
    assert.deepEqual(figures(byTile.body), ["cloudy", 48, 64]);
    const byOlderTile = await srv.json<Detail>("/v1/tiles/clear");
    assert.deepEqual(figures(byOlderTile.body), ["cloudy", 48, 64]);
  });

  test("is the newest tile's own summary when the batch view alone stores the composite", async () => {
    await using data = await tempDataDir();
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 200,
      tiles: [clear(10), cloudy("batch", 150)],
      composite: true,
    });
    await using srv = await startServing({ dataDir: data.dir });
    for (const id of ["c0000r0000", "cloudy", "clear"]) {
      const d = await srv.json<Detail & { batch: { validPixels: number } }>(`/v1/tiles/${id}`);
      assert.deepEqual(figures(d.body), ["cloudy", 48, 64], id);
      assert.equal(d.body.batch.validPixels, 48, id);
    }
  });
});

describe("provenance of stats and the listing", { skip: natsMissing() }, () => {
  test("names the acquisitions of the pixels counted, not the cell's newest scene", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10)] });
    // Two live scenes: the cloud-block one, then a newer one that is all cloud (no valid pixel).
    const overcastAt = new Date(noon - DAY).toISOString();
    const overcast = lonLatTile(GRID, {
      col: 0,
      row: 0,
      tileId: "overcast",
      lane: "live",
      acquired: overcastAt,
      ingestSeq: 160,
      raster: makeRaster(8, () => 0),
    });
    await putLive(await LiveView.open(nats.nc), [cloudy("live", 150), overcast]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    type Provenance = {
      cells: { total: number; batch: number; live: number };
      provenance: {
        acquired: { oldest: string; newest: string } | null;
        staleness: { maxSinceAcquiredS: number };
      };
      snapshot: { takenAt: string };
    };
    const whole = await srv.json<Provenance>(`/v1/stats?bbox=${bbox}`);
    assert.deepEqual(whole.body.provenance.acquired, { oldest: CLEAR_AT, newest: CLOUDY_AT });
    assert.deepEqual([whole.body.cells.total, whole.body.cells.batch, whole.body.cells.live], [1, 1, 1]);

    // Inside the cloud block every pixel is the batch scene's: provenance and staleness say so.
    const d = GRID.size / GRID.pixels;
    const block = [GRID.lon0 + 2.1 * d, GRID.lat0 - 5.9 * d, GRID.lon0 + 5.9 * d, GRID.lat0 - 2.1 * d];
    const inside = await srv.json<Provenance & { pixels: number }>(`/v1/stats?bbox=${block.join(",")}`);
    assert.equal(inside.body.pixels, 16);
    assert.deepEqual(inside.body.provenance.acquired, { oldest: CLEAR_AT, newest: CLEAR_AT });
    assert.deepEqual([inside.body.cells.batch, inside.body.cells.live], [1, 0]);
    const since = (Date.parse(inside.body.snapshot.takenAt) - Date.parse(CLEAR_AT)) / 1000;
    assert.ok(Math.abs(inside.body.provenance.staleness.maxSinceAcquiredS - since) < 1);

    // The listing: the cell's newest scene names it, its acquisition times are its pixels'.
    const list = await srv.json<{
      items: { tileId: string; acquired: string; provenance: { acquired: string } }[];
    }>("/v1/tiles");
    const item = list.body.items[0];
    assert.deepEqual(
      [item?.tileId, item?.acquired, item?.provenance.acquired],
      ["overcast", CLOUDY_AT, CLEAR_AT],
    );
  });
});

describe("a cell's composite tally", () => {
  test("the tile detail gives the composite's counts, m² and valid pixels, equal to /v1/stats over the cell", async () => {
    await using data = await tempDataDir();
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 200,
      tiles: [clear(10), cloudy("batch", 150)],
      composite: true,
    });
    await using srv = await startServing({ dataDir: data.dir });
    const d = await srv.json<{
      composite: { counts: number[]; areasM2: number[]; validPixels: number };
    }>("/v1/tiles/c0000r0000");
    assert.equal(d.status, 200);
    const s = await srv.json<Stats & { classes: { id: number; pixels: number; areaM2: number }[] }>(
      `/v1/stats?bbox=${bbox}`,
    );
    assert.equal(d.body.composite.validPixels, 64);
    assert.equal(d.body.composite.validPixels, s.body.pixels);
    for (const c of s.body.classes) {
      assert.equal(d.body.composite.counts[c.id] ?? 0, c.pixels, `class ${c.id} pixels`);
      assert.ok(Math.abs((d.body.composite.areasM2[c.id] ?? 0) - c.areaM2) < 1e-6, `class ${c.id} m²`);
    }
    assert.deepEqual(d.body.composite.counts.slice(0, 3), [0, 16, 48]);
  });
});

/* Areas of a composite cell: its detail and its stats, and an oracle recount. */
type Detail = { composite: { counts: number[]; areasM2: number[]; validPixels: number } };
type AreaStats = { pixels: number; classes: { id: number; pixels: number; areaM2: number }[] };

/** The detail's and the stats' per-class m² of the cell, with the stats' total. */
async function areasOf(srv: { json: <T>(p: string) => Promise<{ body: T }> }, box: string) {
  const d = await srv.json<Detail>("/v1/tiles/c0000r0000");
  const s = await srv.json<AreaStats>(`/v1/stats?bbox=${box}`);
  const stats: number[] = [];
  for (const c of s.body.classes) stats[c.id] = c.areaM2;
  const total = s.body.classes.reduce((a, c) => a + c.areaM2, 0);
  return { detail: d.body.composite.areasM2, stats, total, pixels: s.body.pixels };
}

/** Per class, the m² of the composite raster's pixels at `rowArea(row)` each (the oracle). */
function recount(classes: ArrayLike<number>, width: number, rowArea: (row: number) => number): number[] {
  const out = [0, 0, 0, 0, 0];
  for (let i = 0; i < classes.length; i++) {
    const c = classes[i] as number;
    if (c !== 0) out[c] = (out[c] as number) + rowArea(Math.floor(i / width));
  }
  return out;
}

function assertAreas(got: readonly (number | undefined)[], want: readonly number[], what: string): void {
  for (let c = 1; c < want.length; c++)
    assert.ok(
      Math.abs((got[c] ?? 0) - (want[c] as number)) <= 1e-6 * Math.max(1, want[c] as number),
      `${what}: class ${c} is ${got[c]} m², the composite's pixels make ${want[c]}`,
    );
}

describe("areas of a composite across pixel grids", { skip: natsMissing() }, () => {
  test("a newer coarser scene with a cloudy half over a clear fine one: every pixel has the coarse grid's own area, in serving and in the batch view", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    const fine = blocky(10);
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [fine] });
    await putLive(await LiveView.open(nats.nc), [coarse("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    // The coarse grid's pixel areas: the WGS 84 ellipsoid's, per row, as the lanes compute a tile's.
    const cb = cellBounds(COARSE, 0, 0);
    const d = COARSE.size / COARSE.pixels;
    const pa = pixelArea({ geoTransform: [cb.minX, d, 0, cb.maxY, 0, -d], crs: WGS84, height: 4 });
    assert.equal(pa?.kind, "per-row");
    const rowArea = (r: number) => (pa?.kind === "per-row" ? (pa.m2[r] as number) : NaN);
    // Both scenes cover the same ground: the composite (all 16 pixels valid) covers what the fine one does.
    const cellM2 = fine.result.areasM2.reduce((a, b) => a + b, 0);

    for (const lane of ["live over batch", "batch view alone"]) {
      if (lane === "batch view alone") {
        await publishBatchComposite(srv, data.dir, [blocky(10), coarse("batch", 150)]);
      }
      const png = await cellClasses(srv);
      const want = recount(png.data, 4, rowArea);
      const got = await areasOf(srv, bbox);
      assert.equal(got.pixels, 16, lane);
      assertAreas(got.detail, want, `${lane}, /v1/tiles/{id}`);
      assertAreas(got.stats, want, `${lane}, /v1/stats`);
      assert.ok(Math.abs(got.total - cellM2) < 1e-6 * cellM2, `${lane}: ${got.total} m² of ${cellM2}`);
    }
  });

  test("a newer UTM scene covering the cell, its top half cloudy, over a clear lon/lat one: every pixel has the UTM grid's 200 m × 200 m, in serving and in the batch view", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // Around 15°E 50°N, where UTM zone 33N's x0 ≈ 500 km: a 10 km UTM square over a lon/lat cell of
    // about 5.7 km × 8.9 km, so the composite is on the UTM grid (it covers the most). The lon/lat cell
    // spans y 5531960..5540855 (gdaltransform), inside the square: the union grid is the UTM grid.
    const lonLat: LonLatGrid = { lon0: 14.96, lat0: 50.02, size: 0.08, pixels: 8 };
    const { older, utm } = utmOverLonLat(lonLat, 5_541_800);
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [older] });
    await putLive(await LiveView.open(nats.nc), [utm("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    // Around the whole UTM square (the only cell there).
    const box = "14.8,49.8,15.2,50.2";

    for (const lane of ["live over batch", "batch view alone"]) {
      if (lane === "batch view alone") {
        await publishBatchComposite(srv, data.dir, [older, utm("batch", 150)]);
      }
      const png = await cellClasses(srv);
      assert.deepEqual([png.width, png.height], [50, 50], lane);
      const want = recount(png.data, 50, () => 200 * 200);
      const got = await areasOf(srv, box);
      assert.equal(got.pixels, 2500, lane);
      assertAreas(got.detail, want, `${lane}, /v1/tiles/{id}`);
      assertAreas(got.stats, want, `${lane}, /v1/stats`);
      // The UTM pixels of its cloudy half outside the lon/lat scene have no source, hence no m².
      const wantTotal = want.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(got.total - wantTotal) < 1e-6, `${lane}: ${got.total} m² of ${wantTotal}`);
    }
  });
});

describe("layers of a composite across pixel grids", { skip: natsMissing() }, () => {
  test("source.png and confidence.png draw each pixel of a coarser newer scene's cloudy half from the older fine scene, sampled at the pixel's centre", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    const archive = new ArchiveStore(data.dir);
    // An older scene at a third of the coarse pixel: no coarse pixel centre falls on its pixel edges.
    const FINE: LonLatGrid = { ...GRID, pixels: 12 };
    const fine = lonLatTile(FINE, {
      col: 0,
      row: 0,
      tileId: "fine",
      lane: "batch",
      acquired: CLEAR_AT,
      ingestSeq: 10,
      raster: makeRaster(
        12,
        (c, r) => 1 + ((c + r) % 3),
        5,
        (c) => 1 + (c % 5),
      ),
    });
    const archived = (t: TileFixture, g: LonLatGrid, dn: number) => withScene(archive, t, g, dn);
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 100,
      tiles: [await archived(fine, FINE, 300)],
    });
    await putLive(await LiveView.open(nats.nc), [await archived(coarse("live", 150), COARSE, 200)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });

    const layer = (id: string, name: string) => layerOf(srv, id, name);
    // One fixed stretch, so a scene value draws the same colour in every image.
    const q = "source.png?bidx=1,2,3&rescale=0,1200";
    const cell = await layer("c0000r0000", q);
    assert.equal(cell.sources, "coarse,fine");
    assert.deepEqual([cell.png.width, cell.png.height], [4, 4]);
    const fineOwn = (await layer("fine", q)).png;
    const coarseOwn = (await layer("coarse", q)).png;
    // A coarse pixel's centre lies in fine pixel (3c + 1, 3r + 1).
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 4; c++)
        assert.deepEqual(
          rgba(cell.png, c, r),
          c < 2 ? rgba(fineOwn, 3 * c + 1, 3 * r + 1) : rgba(coarseOwn, c, r),
          `pixel (${c}, ${r})`,
        );

    // Confidence: each pixel's vote share from its class's source, on the composite's grid.
    const conf = await layer("c0000r0000", "confidence.png");
    assert.equal(conf.sources, "coarse,fine");
    assert.deepEqual([conf.png.width, conf.png.height], [4, 4]);
    const fineConf = (await layer("fine", "confidence.png")).png.data;
    const coarseConf = (await layer("coarse", "confidence.png")).png.data;
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 4; c++)
        assert.equal(
          conf.png.data[r * 4 + c],
          c < 2 ? fineConf[(3 * r + 1) * 12 + 3 * c + 1] : coarseConf[r * 4 + c],
          `confidence of pixel (${c}, ${r})`,
        );
  });
});

describe("a composite cell's mean confidence", { skip: natsMissing() }, () => {
  test("the listing gives the mean vote share the composite shows per pixel, live over batch and from the batch view alone", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // The clear scene's classes have 2 votes of 5 (16 pixels show through), the cloudy one's 5 (48).
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10, 2)] });
    await putLive(await LiveView.open(nats.nc), [cloudy("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const want = (16 * (2 / 5) + 48 * (5 / 5)) / 64;
    type Listing = { items: { tileId: string; lane: string; meanConfidence: number }[] };
    const live = await srv.json<Listing>("/v1/tiles");
    assert.equal(live.body.items[0]?.tileId, "cloudy");
    assert.ok(Math.abs((live.body.items[0]?.meanConfidence ?? 0) - want) < 1e-9, "live over batch");

    await writeBatchView(data.dir, {
      version: 2,
      watermark: 200,
      tiles: [clear(10, 2), cloudy("batch", 150)],
      composite: true,
    });
    let item: Listing["items"][number] | undefined;
    for (let i = 0; i < 100 && item?.lane !== "batch"; i++) {
      item = (await srv.json<Listing>("/v1/tiles")).body.items[0];
      if (item?.lane !== "batch") await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(item?.lane, "batch", "serving switched to v2");
    assert.ok(Math.abs((item?.meanConfidence ?? 0) - want) < 1e-9, "batch view alone");
  });
});

describe("a newer scene covering part of the cell", { skip: natsMissing() }, () => {
  test("source.png draws the composite on the covering older scene's grid: the patch's own pixels inside it, the older scene's around it", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    const archive = new ArchiveStore(data.dir);
    const PATCH: LonLatGrid = { lon0: GRID.lon0 + 0.02, lat0: GRID.lat0 - 0.02, size: 0.04, pixels: 4 };
    const older = clear(10);
    const patch = lonLatTile(PATCH, {
      col: 0,
      row: 0,
      tileId: "patch",
      lane: "live",
      acquired: CLOUDY_AT,
      ingestSeq: 150,
      raster: makeRaster(4, () => 3),
    });
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 100,
      tiles: [await withScene(archive, older, GRID, 300)],
    });
    await putLive(await LiveView.open(nats.nc), [await withScene(archive, patch, PATCH, 200)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const q = "source.png?bidx=1,2,3&rescale=0,1200";
    const image = async (id: string) => (await layerOf(srv, id, q)).png;
    const cell = await image("c0000r0000");
    assert.deepEqual([cell.width, cell.height], [8, 8], "the covering scene's grid");
    const olderOwn = await image("clear");
    const patchOwn = await image("patch");
    for (let r = 0; r < 8; r++)
      for (let c = 0; c < 8; c++)
        assert.deepEqual(
          rgba(cell, c, r),
          inBlock(c, r) ? rgba(patchOwn, c - 2, r - 2) : rgba(olderOwn, c, r),
          `pixel (${c}, ${r})`,
        );
  });

  test("contributes only where it has pixels: the older pixels outside its footprint stay, in point, stats, listing and layers, live and from the batch view", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // The patch: 4×4 px of 0.01° over the cell's pixels (2..5, 2..5), fully valid, class 3.
    const PATCH: LonLatGrid = { lon0: GRID.lon0 + 0.02, lat0: GRID.lat0 - 0.02, size: 0.04, pixels: 4 };
    const patch = (lane: "batch" | "live", seq: number) =>
      lonLatTile(PATCH, {
        col: 0,
        row: 0,
        tileId: "patch",
        lane,
        acquired: CLOUDY_AT,
        ingestSeq: seq,
        raster: makeRaster(4, () => 3),
      });
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10)] });
    await putLive(await LiveView.open(nats.nc), [patch("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const d = GRID.size / GRID.pixels;
    const pa = pixelArea({ geoTransform: [GRID.lon0, d, 0, GRID.lat0, 0, -d], crs: WGS84, height: 8 });
    const rowArea = (r: number) => (pa?.kind === "per-row" ? (pa.m2[r] as number) : NaN);
    const cellM2 = [...Array(8).keys()].reduce((a, r) => a + 8 * rowArea(r), 0);

    for (const lane of ["live over batch", "batch view alone"]) {
      const patchLane = lane === "live over batch" ? "live" : "batch";
      if (patchLane === "batch") {
        await publishBatchComposite(srv, data.dir, [clear(10), patch("batch", 150)]);
      }
      // The composite is on the clear scene's 8×8 grid: the patch inside the block, the older scene around it.
      const png = await cellClasses(srv);
      assert.deepEqual([png.width, png.height], [8, 8], lane);
      for (let r = 0; r < 8; r++)
        for (let c = 0; c < 8; c++)
          assert.equal(png.data[r * 8 + c], inBlock(c, r) ? 3 : 1, `${lane} (${c}, ${r})`);
      const out = await srv.json<Point>(`/v1/point?lon=${centre(0, 0).lon}&lat=${centre(0, 0).lat}`);
      assert.equal(out.status, 200, `${lane}: a point outside the patch`);
      assert.deepEqual(
        [out.body.class.id, out.body.source?.tileId, out.body.source?.lane],
        [1, "clear", "batch"],
      );
      const inside = await srv.json<Point>(`/v1/point?lon=${centre(3, 3).lon}&lat=${centre(3, 3).lat}`);
      assert.deepEqual(
        [inside.body.class.id, inside.body.source?.tileId, inside.body.source?.lane],
        [3, "patch", patchLane],
      );
      // Stats over the cell: all 64 pixels, the cell's whole area.
      const got = await areasOf(srv, bbox);
      assert.equal(got.pixels, 64, lane);
      assert.ok(Math.abs(got.total - cellM2) < 1e-6 * cellM2, `${lane}: ${got.total} m² of ${cellM2}`);
      assertAreas(got.detail, recount(png.data, 8, rowArea), `${lane}, /v1/tiles/{id}`);
      // The listing names the newest scene, with the composite's counts and the cell's geotransform.
      const list = await srv.json<{ items: { tileId: string; counts: number[]; validPixels: number }[] }>(
        "/v1/tiles",
      );
      assert.deepEqual(
        [list.body.items[0]?.tileId, list.body.items[0]?.validPixels, list.body.items[0]?.counts.slice(0, 4)],
        ["patch", 64, [0, 48, 0, 16]],
        lane,
      );
      const age = decodePng(
        new Uint8Array(await (await srv.get("/v1/tiles/c0000r0000/age.png")).arrayBuffer()),
      );
      assert.equal(
        (age.data[0] ?? 0) - (age.data[3 * 8 + 3] ?? 0),
        4,
        `${lane}: the older pixels are four days older`,
      );
    }
  });
});

describe("two scenes of a cell overlapping in part", { skip: natsMissing() }, () => {
  test("the composite is the union of both: the newer scene's part beyond the covering older one answers point, stats, listing and layers, live and from the batch view", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // The older batch scene covers lon 10.00..10.08, lat 49.92..50.00 (8×8 px of 0.01°). The newer
    // one, a path/row shifted between dates, covers 10.04..10.10, 49.91..49.97 (6×6 px on the same
    // lattice): it overlaps the older one's south-east and reaches 2 columns east and 1 row south of
    // it. Its north-west 2×2 px are cloud. The older scene covers more ground, so the union grid is
    // on its lattice: 10 × 9 px from its origin.
    // The oracle, pixel by pixel on the union grid: the newer scene where it is valid, else the older.
    const W = 10;
    const H = 9;
    const inOlder = (c: number, r: number) => c < 8 && r < 8;
    const inNewer = (c: number, r: number) => c >= 4 && r >= 3;
    const newerValid = (c: number, r: number) => inNewer(c, r) && !(c - 4 < 2 && r - 3 < 2);
    const want = (c: number, r: number) => (newerValid(c, r) ? 2 : inOlder(c, r) ? 1 : 0);
    let fromNewer = 0;
    let fromOlder = 0;
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++)
        if (newerValid(c, r)) fromNewer++;
        else if (inOlder(c, r)) fromOlder++;
    assert.deepEqual(
      [fromNewer, fromOlder],
      [32, 48],
      "the oracle's own count: 36 less 4 cloud; 64 less the 4 × 5 overlap, plus 4 under the cloud",
    );
    const d = GRID.size / GRID.pixels;
    const pa = pixelArea({ geoTransform: [GRID.lon0, d, 0, GRID.lat0, 0, -d], crs: WGS84, height: H });
    const rowArea = (r: number) => (pa?.kind === "per-row" ? (pa.m2[r] as number) : NaN);
    const wantAreas = [0, 0, 0, 0, 0];
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++)
        if (want(c, r)) wantAreas[want(c, r)] = (wantAreas[want(c, r)] as number) + rowArea(r);
    const at = (c: number, r: number) => ({ lon: GRID.lon0 + (c + 0.5) * d, lat: GRID.lat0 - (r + 0.5) * d });

    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10)] });
    await putLive(await LiveView.open(nats.nc), [east("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    let livePng: Uint8Array | undefined;
    for (const phase of ["live over batch", "batch view alone"]) {
      const newerLane = phase === "live over batch" ? "live" : "batch";
      if (newerLane === "batch") await publishBatchComposite(srv, data.dir, [clear(10), east("batch", 150)]);
      const png = await cellClasses(srv);
      assert.deepEqual([png.width, png.height], [W, H], `${phase}: the union grid`);
      for (let r = 0; r < H; r++)
        for (let c = 0; c < W; c++) assert.equal(png.data[r * W + c], want(c, r), `${phase} (${c}, ${r})`);
      if (livePng)
        assert.deepEqual(png.data, livePng, "the batch view's composite is the live one, pixel for pixel");
      else livePng = png.data as Uint8Array;

      // A point the newer scene alone covers, beyond the covering older scene: its class and source.
      const beyond = await srv.json<Point & { pixel: { col: number; row: number } }>(
        `/v1/point?lon=${at(9, 8).lon}&lat=${at(9, 8).lat}`,
      );
      assert.equal(beyond.status, 200, `${phase}: a point beyond the older scene`);
      assert.deepEqual(
        [beyond.body.tileId, beyond.body.class.id, beyond.body.source?.tileId, beyond.body.source?.lane],
        ["east", 2, "east", newerLane],
      );
      assert.equal(beyond.body.source?.acquired, CLOUDY_AT);
      assert.deepEqual(beyond.body.pixel, { col: 9, row: 8 });
      // Under the newer scene's cloud and beyond its footprint: the older scene.
      for (const [c, r] of [
        [4, 3],
        [0, 0],
      ] as const) {
        const p = await srv.json<Point>(`/v1/point?lon=${at(c, r).lon}&lat=${at(c, r).lat}`);
        assert.deepEqual(
          [p.body.class.id, p.body.source?.tileId, p.body.source?.lane],
          [1, "clear", "batch"],
        );
      }
      // The union's corner no scene covers: no source, no class.
      const none = await srv.json<Point>(`/v1/point?lon=${at(9, 0).lon}&lat=${at(9, 0).lat}`);
      assert.deepEqual([none.status, none.body.class.id, none.body.source], [200, 0, null]);

      // Stats over the union and the cell's detail: every pixel with a source counted once, at the
      // union grid's own pixel areas; the corners no scene covers are class 0 with no m², as any
      // pixel of a composite without a source.
      const noSource = W * H - fromNewer - fromOlder;
      const got = await areasOf(srv, "10,49.91,10.1,50");
      assert.equal(got.pixels, W * H, phase);
      const stats = await srv.json<AreaStats>("/v1/stats?bbox=10,49.91,10.1,50");
      assert.deepEqual(
        stats.body.classes
          .filter((c) => c.pixels > 0)
          .map((c) => [c.id, c.pixels, c.id === 0 ? c.areaM2 : 1]),
        [
          [0, noSource, 0],
          [1, fromOlder, 1],
          [2, fromNewer, 1],
        ],
        phase,
      );
      assertAreas(got.stats, wantAreas, `${phase}, /v1/stats`);
      assertAreas(got.detail, wantAreas, `${phase}, /v1/tiles/{id}`);
      const detail = await srv.json<{
        composite: {
          sources: { tileId: string; lane: string; pixels: number }[];
          noSourcePixels: number;
          gridClipped: string | null;
        };
      }>("/v1/tiles/c0000r0000");
      assert.deepEqual(
        detail.body.composite.sources.map((s) => [s.tileId, s.lane, s.pixels]),
        [
          ["east", newerLane, fromNewer],
          ["clear", "batch", fromOlder],
        ],
      );
      assert.equal(detail.body.composite.noSourcePixels, noSource);
      assert.equal(detail.body.composite.gridClipped, null);
      // The listing: the newest scene's id on the union grid, its bbox the union's.
      const list = await srv.json<{
        items: { tileId: string; width: number; height: number; bbox: number[]; validPixels: number }[];
      }>("/v1/tiles");
      const item = list.body.items[0];
      assert.deepEqual([item?.tileId, item?.width, item?.height, item?.validPixels], ["east", W, H, 80]);
      (item?.bbox ?? []).forEach((v, i) =>
        assert.ok(Math.abs(v - [10, 49.91, 10.1, 50][i]!) < 1e-9, `bbox ${item?.bbox}`),
      );
      // classes.tif is georeferenced on the union grid.
      const tif = await readGeoTiffInfo(
        new Uint8Array(await (await srv.get("/v1/tiles/c0000r0000/classes.tif")).arrayBuffer()),
      );
      assert.deepEqual([tif.width, tif.height], [W, H]);
      (tif.geoTransform ?? []).forEach((v, i) =>
        assert.ok(Math.abs(v - [10, 0.01, 0, 50, 0, -0.01][i]!) < 1e-9, `classes.tif ${tif.geoTransform}`),
      );
      // age.png has no age where no scene is.
      const age = decodePng(
        new Uint8Array(await (await srv.get("/v1/tiles/c0000r0000/age.png")).arrayBuffer()),
      );
      assert.deepEqual([age.width, age.height], [W, H]);
      assert.equal(age.data[9], 0, `${phase}: no age where no scene is`);
      assert.equal(
        (age.data[0] ?? 0) - (age.data[8 * W + 9] ?? 0),
        4,
        `${phase}: the older pixels are four days older`,
      );
    }
  });
});

describe("two scenes of a cell far apart", () => {
  test("keep the covering scene's grid, and the cell's detail says the union was over its bound", async () => {
    await using data = await tempDataDir();
    // A newer scene 0.5° (50 px) east of the older one, in the same cell, its two west columns cloud:
    // the union would be 58 × 8 px, over 4 times either scene's 64.
    const FAR: LonLatGrid = { ...GRID, lon0: GRID.lon0 + 0.5 };
    const far = lonLatTile(FAR, {
      col: 0,
      row: 0,
      tileId: "far",
      lane: "batch",
      acquired: CLOUDY_AT,
      ingestSeq: 150,
      raster: makeRaster(8, (c) => (c < 2 ? 0 : 2)),
    });
    await writeBatchView(data.dir, { version: 1, watermark: 200, tiles: [clear(10), far], composite: true });
    await using srv = await startServing({ dataDir: data.dir });
    const d = await srv.json<{ composite: { gridClipped: string | null; sources: { tileId: string }[] } }>(
      "/v1/tiles/c0000r0000",
    );
    assert.equal(d.status, 200);
    assert.equal(d.body.composite.gridClipped, "too-large");
    const png = await cellClasses(srv);
    assert.deepEqual([png.width, png.height], [8, 8]);
    // The newer scene's own grid: its cloud stays a hole, the older scene is nowhere under it.
    for (let i = 0; i < 64; i++) assert.equal(png.data[i], i % 8 < 2 ? 0 : 2, `pixel ${i}`);
  });
});

describe("a clear newest scene far from an older one of its cell", () => {
  test("is shown alone on its own grid, and the cell's detail still says the union was over its bound", async () => {
    await using data = await tempDataDir();
    // As above, but the newer scene is clear: it is the cell's answer alone (the short-circuit), the
    // batch run stores no composite, and the union of the two would still be 58 × 8 px.
    const FAR: LonLatGrid = { ...GRID, lon0: GRID.lon0 + 0.5 };
    const far = lonLatTile(FAR, {
      col: 0,
      row: 0,
      tileId: "far",
      lane: "batch",
      acquired: CLOUDY_AT,
      ingestSeq: 150,
      raster: makeRaster(8, () => 2),
    });
    await writeBatchView(data.dir, { version: 1, watermark: 200, tiles: [clear(10), far], composite: true });
    await using srv = await startServing({ dataDir: data.dir });
    const d = await srv.json<{
      composite: {
        gridClipped: string | null;
        sources: { tileId: string; pixels: number }[];
        grid: { width: number; height: number; geoTransform: number[]; epsg: number | null; bbox: number[] };
      };
    }>("/v1/tiles/c0000r0000");
    assert.equal(d.status, 200);
    assert.deepEqual(
      d.body.composite.sources.map((s) => [s.tileId, s.pixels]),
      [["far", 64]],
    );
    assert.equal(d.body.composite.gridClipped, "too-large");
    // The grid it is on is the newer scene's own, as the listing gives it.
    const list = await srv.json<{ items: { width: number; height: number; bbox: number[] }[] }>("/v1/tiles");
    const item = list.body.items[0];
    const g = d.body.composite.grid;
    assert.deepEqual([g.width, g.height, g.bbox], [item?.width, item?.height, item?.bbox]);
    assert.deepEqual([g.width, g.height, g.epsg], [8, 8, 4326]);
    g.geoTransform.forEach((v, i) =>
      assert.ok(Math.abs(v - [10.5, 0.01, 0, 50, 0, -0.01][i]!) < 1e-9, `geoTransform ${g.geoTransform}`),
    );
  });
});

describe("each lane's image of a cell", { skip: natsMissing() }, () => {
  test("is drawn on the grid that lane's listing gives: the same pixel size, whichever way the map reaches it", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // An older batch scene (8×8 px) and a newer one shifted south-east (6×6 px, its north-west 2×2
    // cloud): their union grid is 10 × 9 px on the older scene's lattice.
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10)] });
    await putLive(await LiveView.open(nats.nc), [east("live", 150)]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const sizes = async (lane: "merged" | "batch" | "live") => {
      const list = await srv.json<{ items: { tileId: string; width: number; height: number }[] }>(
        `/v1/tiles?lane=${lane}`,
      );
      const item = list.body.items[0];
      const images: number[][] = [];
      for (const name of ["classes.png", "confidence.png", "age.png"]) {
        const res = await srv.get(cellImagePath("c0000r0000", name, lane));
        assert.equal(res.status, 200, `${lane} ${name}`);
        const png = decodePng(new Uint8Array(await res.arrayBuffer()));
        images.push([png.width, png.height]);
      }
      return { listed: [item?.tileId, item?.width, item?.height], images };
    };
    // Live over batch: the merged composite on the union grid, the batch view's scene and the live
    // scene each alone, on their own grids.
    assert.deepEqual(await sizes("merged"), {
      listed: ["east", 10, 9],
      images: [
        [10, 9],
        [10, 9],
        [10, 9],
      ],
    });
    assert.deepEqual(await sizes("batch"), {
      listed: ["clear", 8, 8],
      images: [
        [8, 8],
        [8, 8],
        [8, 8],
      ],
    });
    assert.deepEqual(await sizes("live"), {
      listed: ["east", 6, 6],
      images: [
        [6, 6],
        [6, 6],
        [6, 6],
      ],
    });
    // A point answers per lane as that lane's image draws it: where both scenes are valid the merged
    // and live views give the newer scene's class 2, the batch view its clear scene's class 1; under
    // the newer scene's cloud the live view says so (class 0) while the merged view shows the batch
    // pixel through it; beyond the batch scene the batch view has no coverage.
    const point = async (lon: number, lat: number, lane?: string) => {
      const res = await srv.json<{ class: { id: number }; tileId: string; source: { lane: string } | null }>(
        `/v1/point?lon=${lon}&lat=${lat}${lane ? `&lane=${lane}` : ""}`,
      );
      return res.status === 200
        ? [res.body.class.id, res.body.tileId, res.body.source?.lane ?? null]
        : res.status;
    };
    assert.deepEqual(await point(10.065, 49.945), [2, "east", "live"]);
    assert.deepEqual(await point(10.065, 49.945, "live"), [2, "east", "live"]);
    assert.deepEqual(await point(10.065, 49.945, "batch"), [1, "clear", "batch"]);
    assert.deepEqual(await point(10.045, 49.965), [1, "clear", "batch"]);
    assert.deepEqual(await point(10.045, 49.965, "live"), [0, "east", null]);
    assert.deepEqual(await point(10.095, 49.915, "batch"), 404);
    assert.deepEqual(await point(10.095, 49.915, "live"), [2, "east", "live"]);
    assert.equal((await srv.get("/v1/point?lon=10.065&lat=49.945&lane=orbit")).status, 400);
    // The batch view alone, with the newer scene in it: its composite on the union grid is the batch
    // lane's answer, though the newest scene's tile id alone draws that scene's own 6 × 6 px.
    await publishBatchComposite(srv, data.dir, [clear(10), east("batch", 150)]);
    assert.deepEqual(await sizes("batch"), {
      listed: ["east", 10, 9],
      images: [
        [10, 9],
        [10, 9],
        [10, 9],
      ],
    });
    const alone = decodePng(
      new Uint8Array(await (await srv.get("/v1/tiles/east/classes.png")).arrayBuffer()),
    );
    assert.deepEqual([alone.width, alone.height], [6, 6]);
    // A lane with no answer for the cell: 404, and an unknown lane: 400.
    assert.equal((await srv.get("/v1/tiles/c0000r0000/classes.png?lane=orbit")).status, 400);
  });
});

describe("a point in one lane", { skip: natsMissing() }, () => {
  test("finds that lane's tile by its own box, even outside the cell's merged footprint", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // A newer live scene 0.5° east of the batch scene, smaller than it: their union (54 × 8 px) is
    // over 4 times the covering batch scene's 64 px, so the merged answer keeps the batch grid and the
    // live scene lies outside every merged box; the live lane still draws it, and a click on it must
    // answer, not 404.
    const FAR: LonLatGrid = { lon0: GRID.lon0 + 0.5, lat0: GRID.lat0, size: 0.04, pixels: 4 };
    const far = lonLatTile(FAR, {
      col: 0,
      row: 0,
      tileId: "far",
      lane: "live",
      acquired: CLOUDY_AT,
      ingestSeq: 150,
      raster: makeRaster(4, () => 2),
    });
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [clear(10)] });
    await putLive(await LiveView.open(nats.nc), [far]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
    const d = await srv.json<{ composite: { gridClipped: string | null } }>("/v1/tiles/c0000r0000");
    assert.equal(d.body.composite.gridClipped, "too-large");
    const at = (lane: string) =>
      srv.json<{ tileId: string; class: { id: number } }>(
        `/v1/point?lon=${FAR.lon0 + 0.015}&lat=${FAR.lat0 - 0.015}&lane=${lane}`,
      );
    const live = await at("live");
    assert.equal(live.status, 200);
    assert.deepEqual([live.body.tileId, live.body.class.id], ["far", 2]);
    assert.equal((await at("batch")).status, 404);
    // The batch scene answers in its own lane and in the merged view.
    const home = await srv.json<{ tileId: string }>(
      `/v1/point?lon=${GRID.lon0 + 0.015}&lat=${GRID.lat0 - 0.015}&lane=batch`,
    );
    assert.deepEqual([home.status, home.body.tileId], [200, "clear"]);
  });
});

describe(
  "a lon/lat scene reaching beyond a covering UTM scene",
  { skip: natsMissing() ?? missing({ peer: true }) },
  () => {
    test("the composite is on the UTM lattice extended to the lon/lat outline, equal to rasterio's oracle pixel for pixel, live and from the batch view", async () => {
      await using nats = await natsFixture();
      await using data = await tempDataDir();
      // The older lon/lat scene (8×8 px of 0.01°, class 1 + column mod 3) reaches about 2.3 km south of
      // the newer 10 km UTM square (50×50 px of 200 m, its top half cloud, class 4 below), which covers
      // more ground: the union is on the UTM lattice.
      const LONLAT: LonLatGrid = { lon0: 14.96, lat0: 50.0, size: 0.08, pixels: 8 };
      const { older, utm } = utmOverLonLat(LONLAT, 5_542_000);
      // The oracle, by rasterio (PROJ): the lon/lat scene's bounds in UTM (transform_bounds, 21 points
      // per edge) snapped outward onto the UTM lattice and joined with the square; then each union
      // pixel's centre taken to lon/lat: the UTM class where valid, else the lon/lat pixel it falls in.
      const py = spawnSync(
        "/usr/bin/python3",
        [
          "-c",
          [
            "import json, math, rasterio.warp as w",
            "x0, y0, m, n = 495000.0, 5542000.0, 200.0, 50",
            "b = w.transform_bounds('EPSG:4326', 'EPSG:32633', 14.96, 49.92, 15.04, 50.0, densify_pts=21)",
            "c0 = min(0, math.floor((b[0] - x0) / m)); c1 = max(n, math.ceil((b[2] - x0) / m))",
            "r0 = min(0, math.floor((y0 - b[3]) / m)); r1 = max(n, math.ceil((y0 - b[1]) / m))",
            "W, H = c1 - c0, r1 - r0",
            "xs = [x0 + (c0 + c + 0.5) * m for r in range(H) for c in range(W)]",
            "ys = [y0 - (r0 + r + 0.5) * m for r in range(H) for c in range(W)]",
            "lons, lats = w.transform('EPSG:32633', 'EPSG:4326', xs, ys)",
            "out = []",
            "for i in range(W * H):",
            "  r, c = r0 + i // W, c0 + i % W",
            "  if 25 <= r < n and 0 <= c < n: out.append(4); continue",
            "  lc, lr = math.floor((lons[i] - 14.96) / 0.01), math.floor((50.0 - lats[i]) / 0.01)",
            "  out.append(1 + lc % 3 if 0 <= lc < 8 and 0 <= lr < 8 else 0)",
            "print(json.dumps({'origin': [x0 + c0 * m, y0 - r0 * m], 'width': W, 'height': H, 'classes': out}))",
          ].join("\n"),
        ],
        { encoding: "utf8" },
      );
      assert.equal(py.status, 0, py.stderr);
      const oracle = JSON.parse(py.stdout) as {
        origin: number[];
        width: number;
        height: number;
        classes: number[];
      };
      assert.deepEqual(
        [oracle.width, oracle.height],
        [50, 62],
        "the oracle's union: 12 rows below the square",
      );

      await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: [older] });
      await putLive(await LiveView.open(nats.nc), [utm("live", 150)]);
      await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });
      for (const phase of ["live over batch", "batch view alone"]) {
        if (phase === "batch view alone")
          await publishBatchComposite(srv, data.dir, [older, utm("batch", 150)]);
        const png = await cellClasses(srv);
        assert.deepEqual([png.width, png.height], [oracle.width, oracle.height], phase);
        assert.deepEqual(Array.from(png.data), oracle.classes, `${phase}: classes against rasterio's oracle`);
        const tif = await readGeoTiffInfo(
          new Uint8Array(await (await srv.get("/v1/tiles/c0000r0000/classes.tif")).arrayBuffer()),
        );
        assert.deepEqual(tif.geoTransform, [oracle.origin[0], 200, 0, oracle.origin[1], 0, -200]);
        // A pixel south of the square: the lon/lat scene's, with its lane, tile and acquisition.
        const i = oracle.classes.findIndex((c, j) => c !== 0 && Math.floor(j / oracle.width) >= 55);
        const [x, y] = [
          oracle.origin[0]! + ((i % oracle.width) + 0.5) * 200,
          oracle.origin[1]! - (Math.floor(i / oracle.width) + 0.5) * 200,
        ];
        const [lon, lat] = toWgs84(crsFromEpsg(32633), x, y);
        const p = await srv.json<Point>(`/v1/point?lon=${lon}&lat=${lat}`);
        assert.equal(p.status, 200, `${phase}: a point south of the UTM square`);
        assert.deepEqual(
          [p.body.class.id, p.body.source?.tileId, p.body.source?.lane, p.body.source?.acquired],
          [oracle.classes[i], "lonlat", "batch", CLEAR_AT],
        );
      }
    });
  },
);

describe("a batch view written before composites stored their grid", () => {
  test("is read on the grid of the tile covering the cell, as it was written", async () => {
    await using data = await tempDataDir();
    // A newer 4×4 patch inside the older 8×8 scene: the composite lies on the older scene's grid.
    const PATCH: LonLatGrid = { lon0: GRID.lon0 + 0.02, lat0: GRID.lat0 - 0.02, size: 0.04, pixels: 4 };
    const patch = lonLatTile(PATCH, {
      col: 0,
      row: 0,
      tileId: "patch",
      lane: "batch",
      acquired: CLOUDY_AT,
      ingestSeq: 150,
      raster: makeRaster(4, () => 3),
    });
    const name = await writeBatchView(data.dir, {
      version: 1,
      watermark: 200,
      tiles: [clear(10), patch],
      composite: true,
    });
    // The composites table as views had it before the grid columns.
    const db = await DuckDbDatabase.open(join(data.dir, "views", "batch", name, BATCH_VIEW_FILES.duckdb));
    try {
      for (const column of ["geo_transform", "epsg", "proj4"])
        await db.run(`ALTER TABLE composites DROP COLUMN ${column}`);
      await db.run("CHECKPOINT");
    } finally {
      db.closeSync();
    }
    await using srv = await startServing({ dataDir: data.dir });
    const png = await cellClasses(srv);
    assert.deepEqual([png.width, png.height], [8, 8]);
    for (let r = 0; r < 8; r++)
      for (let c = 0; c < 8; c++) assert.equal(png.data[r * 8 + c], inBlock(c, r) ? 3 : 1, `(${c}, ${r})`);
    const d = await srv.json<{ composite: { sources: { tileId: string; pixels: number }[] } }>(
      "/v1/tiles/c0000r0000",
    );
    assert.deepEqual(
      d.body.composite.sources.map((x) => [x.tileId, x.pixels]),
      [
        ["patch", 16],
        ["clear", 48],
      ],
    );
  });
});
