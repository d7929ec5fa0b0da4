import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  type Crs,
  DEFAULT_MAX_PIXELS,
  PixelBudgetError,
  decodeGeoTiff,
  parseDateTime,
  parseGdalMetadata,
  parseNodata,
  readGeoTiffInfo,
  toWgs84,
} from "../../shared/internal.js";
import { missing, sharedData } from "../helpers/env.js";
import { type TagSpec, buildTiff, deflateBlock, sampleBytes } from "../helpers/tiff-bytes.js";

const GDAL_METADATA = 42112;
const GDAL_NODATA = 42113;
const DATETIME = 306;
const GEOKEYS = 34735;
const TIEPOINT = 33922;
const PIXEL_SCALE = 33550;

/** A north-up UTM 33N (EPSG:32633) georeferencing with 10 m pixels, origin (500000, 4000000). */
function utmTags(rasterType: 1 | 2 = 1): TagSpec[] {
  return [
    { tag: PIXEL_SCALE, type: 12, values: [10, 10, 0] },
    { tag: TIEPOINT, type: 12, values: [0, 0, 0, 500000, 4000000, 0] },
    { tag: GEOKEYS, type: 3, values: [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, rasterType, 3072, 0, 1, 32633] },
  ];
}

function tinyFloat(tags: TagSpec[]): Uint8Array {
  return buildTiff({
    width: 3,
    height: 2,
    bitsPerSample: 32,
    sampleFormat: 3,
    blocks: [sampleBytes(new Float32Array([1, NaN, 3, 4, 5, 6]))],
    tags,
  });
}

describe("decodeGeoTiff on hand-built files", () => {
  test("a pixel-interleaved uint16 file decodes to one array per band, in band order", async () => {
    // Three bands, 2x2: band k holds 100k + pixel index.
    const px = new Uint16Array([0, 100, 200, 1, 101, 201, 2, 102, 202, 3, 103, 203]);
    const r = await decodeGeoTiff(
      buildTiff({ width: 2, height: 2, bitsPerSample: 16, samplesPerPixel: 3, blocks: [sampleBytes(px)] }),
    );
    assert.equal(r.dtype, "uint16");
    assert.deepEqual(
      r.bands.map((b) => Array.from(b)),
      [
        [0, 1, 2, 3],
        [100, 101, 102, 103],
        [200, 201, 202, 203],
      ],
    );
  });

  test("a big-endian band-planar int16 file with two strips per band decodes to host-order samples", async () => {
    const band0 = new Int16Array([-1, 2, -300, 4000]);
    const band1 = new Int16Array([5, -6, 7, -32768]);
    const strips = [band0.subarray(0, 2), band0.subarray(2), band1.subarray(0, 2), band1.subarray(2)];
    const r = await decodeGeoTiff(
      buildTiff({
        width: 2,
        height: 2,
        bitsPerSample: 16,
        sampleFormat: 2,
        samplesPerPixel: 2,
        planar: 2,
        rowsPerStrip: 1,
        bigEndian: true,
        blocks: strips.map((s) => sampleBytes(s, true)),
      }),
    );
    assert.deepEqual(Array.from(r.bands[0] ?? []), Array.from(band0));
    assert.deepEqual(Array.from(r.bands[1] ?? []), Array.from(band1));
  });

  test("a tiled deflate file with tiles overhanging the image keeps only the image's pixels", async () => {
    // 3x3 image in 2x2 tiles: four tiles, the right and bottom ones half outside the image.
    const tile = (v: number) => deflateBlock(new Uint8Array([v, v + 1, v + 2, v + 3]));
    const r = await decodeGeoTiff(
      buildTiff({
        width: 3,
        height: 3,
        compression: 8,
        tile: { width: 2, height: 2 },
        blocks: [tile(0), tile(10), tile(20), tile(30)],
      }),
    );
    assert.deepEqual(Array.from(r.bands[0] ?? []), [0, 1, 10, 2, 3, 12, 20, 21, 30]);
    assert.equal(r.tiled, true);
    assert.equal(r.compression, "deflate");
  });

  test("GDAL_NODATA 'nan' reads as a NaN nodata value for every band", async () => {
    const r = await decodeGeoTiff(tinyFloat([{ tag: GDAL_NODATA, type: 2, values: "nan" }]));
    assert.equal(r.nodata.length, 1);
    assert.ok(Number.isNaN(r.nodata[0]));
    assert.ok(Number.isNaN(r.bands[0]?.[1]));
  });

  test("GDAL_METADATA SCALE and OFFSET items set those bands' scale and offset; other bands keep 1 and 0", async () => {
    const xml =
      '<GDALMetadata>\n  <Item name="SCALE" sample="1" role="scale">0.0001</Item>\n' +
      '  <Item name="OFFSET" sample="1" role="offset">-0.1</Item>\n' +
      '  <Item name="SCALE" domain="other" sample="0">7</Item>\n</GDALMetadata>';
    const r = await decodeGeoTiff(
      buildTiff({
        width: 1,
        height: 1,
        samplesPerPixel: 2,
        blocks: [new Uint8Array([1, 2])],
        tags: [{ tag: GDAL_METADATA, type: 2, values: xml }],
      }),
    );
    assert.deepEqual(r.scale, [1, 0.0001]);
    assert.deepEqual(r.offset, [0, -0.1]);
  });

  test("the TIFF DateTime tag becomes an ISO 8601 UTC acquisition time", async () => {
    const info = await readGeoTiffInfo(
      tinyFloat([{ tag: DATETIME, type: 2, values: "2015:08:04 16:17:30" }]),
    );
    assert.equal(info.acquired, "2015-08-04T16:17:30Z");
  });

  test("an ACQUISITIONDATETIME metadata item is preferred to the DateTime tag", async () => {
    const xml = '<GDALMetadata><Item name="ACQUISITIONDATETIME">1999-11-18T16:02:11Z</Item></GDALMetadata>';
    const info = await readGeoTiffInfo(
      tinyFloat([
        { tag: DATETIME, type: 2, values: "2020:01:01 00:00:00" },
        { tag: GDAL_METADATA, type: 2, values: xml },
      ]),
    );
    assert.equal(info.acquired, "1999-11-18T16:02:11Z");
  });

  test("ModelTiepoint and ModelPixelScale give GDAL's geotransform and the EPSG CRS with WGS 84 bounds", async () => {
    const info = await readGeoTiffInfo(tinyFloat(utmTags()));
    assert.deepEqual(info.geoTransform, [500000, 10, 0, 4000000, 0, -10]);
    assert.equal(info.crs?.epsg, 32633);
    assert.match(info.crs?.proj4 ?? "", /\+proj=utm \+zone=33/);
    assert.deepEqual(info.bounds, { minX: 500000, minY: 3999980, maxX: 500030, maxY: 4000000 });
    // UTM 33N's central meridian is 15°E and x = 500000 lies on it.
    assert.ok(Math.abs((info.boundsWgs84?.minX ?? NaN) - 15) < 1e-6);
    assert.ok((info.boundsWgs84?.minY ?? NaN) > 36 && (info.boundsWgs84?.maxY ?? NaN) < 36.2);
  });

  test("a PixelIsPoint file's origin moves half a pixel up and left, as GDAL reads it", async () => {
    const info = await readGeoTiffInfo(tinyFloat(utmTags(2)));
    assert.deepEqual(info.geoTransform, [499995, 10, 0, 4000005, 0, -10]);
  });

  test("a file without georeferencing has no geotransform, CRS or bounds", async () => {
    const info = await readGeoTiffInfo(tinyFloat([]));
    assert.equal(info.geoTransform, null);
    assert.equal(info.crs, null);
    assert.equal(info.bounds, null);
    assert.equal(info.boundsWgs84, null);
  });

  test("readGeoTiffInfo reads the header of an image over the pixel budget that decodeGeoTiff refuses", async () => {
    // 20000 x 10000 pixels (200 Mpx, twice the default budget) in 200 sparse 1024 x 1024 tiles.
    const tiles = 20 * 10;
    const huge = buildTiff({
      width: 20_000,
      height: 10_000,
      tile: { width: 1024, height: 1024 },
      blocks: [],
      tags: [
        { tag: 324, type: 4, values: new Array<number>(tiles).fill(0) },
        { tag: 325, type: 4, values: new Array<number>(tiles).fill(0) },
      ],
    });
    const info = await readGeoTiffInfo(huge);
    assert.deepEqual([info.width, info.height], [20_000, 10_000]);
    await assert.rejects(decodeGeoTiff(huge), (err: unknown) => {
      assert.ok(err instanceof PixelBudgetError);
      assert.equal(err.pixels, 200_000_000);
      assert.equal(err.budget, DEFAULT_MAX_PIXELS);
      return true;
    });
  });

  test("a user-defined Transverse Mercator CRS is read by PROJ, which recognises it as UTM zone 32", async () => {
    // ProjectedCSType user-defined, geographic WGS 84, CT_TransverseMercator with its parameters as doubles.
    const keys = [
      1, 1, 0, 7, 1024, 0, 1, 1, 2048, 0, 1, 4326, 3072, 0, 1, 32767, 3075, 0, 1, 1, 3080, 34736, 1, 0, 3092,
      34736, 1, 1, 3082, 34736, 1, 2,
    ];
    const info = await readGeoTiffInfo(
      tinyFloat([
        { tag: PIXEL_SCALE, type: 12, values: [10, 10, 0] },
        { tag: TIEPOINT, type: 12, values: [0, 0, 0, 500000, 4000000, 0] },
        { tag: GEOKEYS, type: 3, values: keys },
        { tag: 34736, type: 12, values: [9, 0.9996, 500000] },
      ]),
    );
    assert.equal(info.crs?.epsg, null);
    // GDAL's proj4 export of what the keys say: the parameters are exactly UTM zone 32 North's.
    assert.equal(info.crs?.proj4, "+proj=utm +zone=32 +datum=WGS84 +units=m +no_defs");
    // The same projection as UTM 32N: x = 500000 is on the 9°E central meridian.
    assert.ok(Math.abs((info.boundsWgs84?.minX ?? NaN) - 9) < 1e-6);
  });

  test("an aborted signal rejects the decode with the signal's reason", async () => {
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await assert.rejects(decodeGeoTiff(tinyFloat([]), { signal: controller.signal }), /stop/);
  });
});

describe("header text parsing", () => {
  test("parseDateTime accepts TIFF and ISO forms and normalises zones to UTC", () => {
    assert.equal(parseDateTime("2015:08:04 16:17:30"), "2015-08-04T16:17:30Z");
    assert.equal(parseDateTime("2015-08-04T16:17:30.25+02:00"), "2015-08-04T14:17:30.250Z");
    assert.equal(parseDateTime("2015-08-04"), "2015-08-04T00:00:00Z");
  });

  test("parseDateTime refuses impossible dates and free text", () => {
    assert.equal(parseDateTime("2023:02:30 00:00:00"), null);
    assert.equal(parseDateTime("2023:13:01 00:00:00"), null);
    assert.equal(parseDateTime("yesterday"), null);
    assert.equal(parseDateTime(null), null);
  });

  test("parseNodata reads numbers, nan and infinities, and nothing else", () => {
    assert.equal(parseNodata("-9999"), -9999);
    assert.equal(parseNodata(" 0 "), 0);
    assert.ok(Number.isNaN(parseNodata("nan")));
    assert.equal(parseNodata("-inf"), -Infinity);
    assert.equal(parseNodata("none"), null);
    assert.equal(parseNodata(""), null);
  });

  test("parseGdalMetadata reads items with their band, role and domain and unescapes XML entities", () => {
    const items = parseGdalMetadata(
      '<GDALMetadata><Item name="A&amp;B">x &lt; y</Item><Item name="SCALE" sample="2" role="scale">2</Item>' +
        '<Item name="k" domain="IMAGERY">v</Item></GDALMetadata>',
    );
    assert.deepEqual(items, [
      { name: "A&B", value: "x < y", sample: null, role: null, domain: null },
      { name: "SCALE", value: "2", sample: 2, role: "scale", domain: null },
      { name: "k", value: "v", sample: null, role: null, domain: "IMAGERY" },
    ]);
  });
});

describe("real files", () => {
  test(
    "Olinda's WGS 84 bounds are within 1e-6 degrees of gdalinfo's wgs84Extent",
    { skip: missing({ shared: true, gdal: true }) },
    async () => {
      const file = sharedData("olinda-l7", "L7_ETMs.tif") as string;
      const info = await readGeoTiffInfo(readFileSync(file));
      const gdal = JSON.parse(spawnSync("gdalinfo", ["-json", file], { encoding: "utf8" }).stdout) as {
        wgs84Extent: { coordinates: number[][][] };
      };
      const ring = gdal.wgs84Extent.coordinates[0] ?? [];
      const lons = ring.map((p) => p[0] as number);
      const lats = ring.map((p) => p[1] as number);
      const b = info.boundsWgs84;
      assert.ok(b);
      // gdalinfo rounds its extent to 7 decimals.
      assert.ok(Math.abs(b.minX - Math.min(...lons)) < 1e-6, `minX ${b.minX}`);
      assert.ok(Math.abs(b.maxX - Math.max(...lons)) < 1e-6, `maxX ${b.maxX}`);
      assert.ok(Math.abs(b.minY - Math.min(...lats)) < 1e-6, `minY ${b.minY}`);
      assert.ok(Math.abs(b.maxY - Math.max(...lats)) < 1e-6, `maxY ${b.maxY}`);
    },
  );

  test(
    "a user-defined UTM CRS on an unnamed datum is rebuilt from its GeoKeys",
    { skip: missing({ shared: true }) },
    async () => {
      const info = await readGeoTiffInfo(readFileSync(sharedData("encodings", "cog_scale.tif") as string));
      assert.equal(info.crs?.epsg, null);
      assert.equal(info.crs?.proj4, "+proj=utm +zone=52 +ellps=WGS84 +units=m +no_defs");
      // gdalinfo: upper left (300000, 4200000) = 126d43'28.10"E, 37d55'32.09"N (GDAL 3.6.2, rounded to 0.01").
      const [lon, lat] = toWgs84(info.crs as Crs, 300000, 4200000);
      assert.ok(Math.abs(lon - (126 + 43 / 60 + 28.1 / 3600)) < 1e-5, `lon ${lon}`);
      assert.ok(Math.abs(lat - (37 + 55 / 60 + 32.09 / 3600)) < 1e-5, `lat ${lat}`);
    },
  );

  test(
    "the Chiapas stack is int16 with nodata -9999 on all eight bands",
    { skip: missing({ shared: true }) },
    async () => {
      const r = await decodeGeoTiff(
        readFileSync(sharedData("chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif") as string),
      );
      assert.equal(r.dtype, "int16");
      assert.equal(r.bandCount, 8);
      assert.deepEqual(r.nodata, new Array(8).fill(-9999));
      assert.equal(r.crs?.epsg, 32615);
      assert.equal(
        r.bands.every((b) => b.length === 250 * 250),
        true,
      );
    },
  );
});
