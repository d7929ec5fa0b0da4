/**
 * GET /v1/tiles/{id}/classes.tif carries exactly the archived source's georeferencing, whatever its
 * CRS (issue 9 item 7), checked with gdalinfo as the oracle through the real serving stack: a
 * Transverse Mercator in US survey feet with no EPSG code (made with gdal_translate -a_srs), whose
 * view row has no EPSG code. Class names reach GDAL through the PAM sidecar served next to it.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { decodeGeoTiff, encodeGeoTiff, type Bounds } from "../../shared/index.js";
import { registerFastDecoders } from "../../shared/internal.js";
import { missing } from "../helpers/env.js";
import { startServing, type ServingFixture } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  TEST_CLASSES,
  lonLatTile,
  makeRaster,
  summarise,
  tempDataDir,
  writeBatchView,
} from "../helpers/serving-views.js";

/** Arizona Central-like TM in US feet, given as parameters so that no EPSG code identifies it. */
const TM_FEET =
  "+proj=tmerc +lat_0=31 +lon_0=-111.9166666666667 +k=0.9999 +x_0=213360 +y_0=0 " +
  "+ellps=GRS80 +towgs84=0,0,0 +units=us-ft +no_defs";

interface GdalInfo {
  coordinateSystem?: { wkt?: string };
  geoTransform?: number[];
  cornerCoordinates?: Record<string, number[]>;
  wgs84Extent?: unknown;
  bands: {
    colorTable?: { count: number; entries: number[][] };
    categories?: string[];
    noDataValue?: number;
  }[];
  metadata?: Record<string, Record<string, string>>;
}

/**
 * `gdalinfo -json`, run asynchronously: over /vsicurl/ it calls this process's own server, which a
 * blocking spawn would starve.
 */
async function gdalinfo(path: string, env: Record<string, string> = {}): Promise<GdalInfo> {
  const { stdout } = await promisify(execFile)("gdalinfo", ["-json", path], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return JSON.parse(stdout) as GdalInfo;
}

describe(
  "classes.tif over HTTP keeps the source's georeferencing and names its classes as GDAL reads them",
  { skip: missing({ gdal: true }) },
  () => {
    let srv: ServingFixture;
    let data: { dir: string } & AsyncDisposable;
    let source = "";
    const raster = makeRaster(8, (c, r) => ((c + r) % 4) + 1);
    // Its content hash (of the tile id) names no archived object.
    const lonLat = lonLatTile(DEFAULT_GRID, {
      col: 0,
      row: 0,
      tileId: "lonlat-20240101",
      lane: "batch",
      acquired: "2024-01-01T00:00:00Z",
      ingestSeq: 0,
      raster: makeRaster(4, () => 1),
    });

    before(async () => {
      registerFastDecoders();
      data = await tempDataDir();
      const plain = join(data.dir, "plain.tif");
      writeFileSync(plain, encodeGeoTiff({ width: 8, height: 8, bands: [new Uint8Array(64).fill(9)] }));
      source = join(data.dir, "tm-feet.tif");
      const t = spawnSync(
        "gdal_translate",
        ["-q", "-a_srs", TM_FEET, "-a_ullr", "700000", "1000800", "700800", "1000000", plain, source],
        { encoding: "utf8" },
      );
      assert.equal(t.status, 0, t.stderr);
      const bytes = readFileSync(source);
      const { contentHash } = await new ArchiveStore(data.dir).putObject(bytes);
      const decoded = await decodeGeoTiff(bytes);
      assert.equal(decoded.crs?.epsg ?? null, null, "the source CRS has no EPSG code");
      const result = summarise(
        {
          lane: "batch",
          tileId: "tm-feet-20240101",
          cell: "tmfeet",
          acquired: "2024-01-01T00:00:00Z",
          ingestSeq: 0,
          contentHash,
          modelVersion: "m1",
          width: 8,
          height: 8,
          geoTransform: [...(decoded.geoTransform ?? [])],
          epsg: null,
          proj4: TM_FEET,
          boundsWgs84: decoded.boundsWgs84 as Bounds,
          processedAt: "2024-01-01T00:00:00Z",
        },
        raster,
        100 * 0.3048 * 0.3048,
      );
      await writeBatchView(data.dir, { version: 1, watermark: 0, tiles: [{ result, raster }, lonLat] });
      srv = await startServing({ dataDir: data.dir });
    });
    after(async () => {
      await srv?.[Symbol.asyncDispose]();
      await data?.[Symbol.asyncDispose]();
    });

    test("gdalinfo reads the same CRS, geotransform and corners from classes.tif as from the source", async () => {
      const res = await srv.get("/v1/tiles/tm-feet-20240101/classes.tif");
      assert.equal(res.status, 200);
      const out = join(data.dir, "classes.tif");
      writeFileSync(out, new Uint8Array(await res.arrayBuffer()));
      const want = await gdalinfo(source);
      const got = await gdalinfo(out);
      assert.ok(want.coordinateSystem?.wkt?.includes("US survey foot"), want.coordinateSystem?.wkt);
      assert.equal(got.coordinateSystem?.wkt, want.coordinateSystem?.wkt);
      assert.deepEqual(got.geoTransform, want.geoTransform);
      assert.deepEqual(got.cornerCoordinates, want.cornerCoordinates);
      assert.deepEqual(got.wgs84Extent, want.wgs84Extent);
      const decoded = await decodeGeoTiff(readFileSync(out));
      assert.deepEqual([...(decoded.bands[0] as Uint8Array)], [...raster.classes]);
    });

    test("the colour table gives each model class its colour, 0 black as nodata, and unused entries black", async () => {
      const got = await gdalinfo(`/vsicurl/${srv.url}/v1/tiles/tm-feet-20240101/classes.tif`, {
        GDAL_DISABLE_READDIR_ON_OPEN: "EMPTY_DIR",
      });
      const band = got.bands[0];
      assert.equal(band?.noDataValue, 0);
      const entries = band?.colorTable?.entries ?? [];
      // GDAL reports the nodata entry of a palette as transparent.
      assert.deepEqual(entries[0], [0, 0, 0, 0]);
      for (const c of TEST_CLASSES) {
        const n = parseInt(c.colour.slice(1), 16);
        assert.deepEqual(entries[c.id], [(n >> 16) & 255, (n >> 8) & 255, n & 255, 255], c.name);
      }
      assert.equal(entries.length, 256);
      for (let id = TEST_CLASSES.length + 1; id < 256; id++)
        assert.deepEqual(entries[id], [0, 0, 0, 255], `unused entry ${id}`);
      for (const c of TEST_CLASSES) assert.equal(got.metadata?.[""]?.[`CLASS_${c.id}`], c.name);
    });

    test("gdalinfo over HTTP shows the class names as band 1 categories, from the served PAM sidecar", async () => {
      // With GDAL's default settings it asks for <url>.aux.xml next to the file (the directory
      // listing it tries first is a 404 here); only GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR stops that.
      const url = `/vsicurl/${srv.url}/v1/tiles/tm-feet-20240101/classes.tif`;
      const got = await gdalinfo(url);
      assert.deepEqual(got.bands[0]?.categories, ["not classified", ...TEST_CLASSES.map((c) => c.name)]);
      assert.ok(got.coordinateSystem?.wkt?.includes("US survey foot"));
    });

    test("a tile whose source is not in the archive gets the view's geotransform and EPSG code", async () => {
      const res = await srv.get("/v1/tiles/lonlat-20240101/classes.tif");
      assert.equal(res.status, 200);
      const out = join(data.dir, "lonlat-classes.tif");
      writeFileSync(out, new Uint8Array(await res.arrayBuffer()));
      const got = await gdalinfo(out);
      assert.match(got.coordinateSystem?.wkt ?? "", /ID\["EPSG",4326\]\]$/);
      assert.deepEqual(got.geoTransform, [...lonLat.result.geoTransform]);
    });
  },
);
