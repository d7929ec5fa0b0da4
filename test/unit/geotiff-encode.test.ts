import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { constants as zlibConstants, deflateSync } from "node:zlib";
import { fromArrayBuffer } from "geotiff";
import {
  TileEncodeError,
  createRandom,
  encodeGeoTiff,
  type BandArray,
  type GeoTiffEncodeOptions,
  type GeoTiffInput,
} from "../../shared/internal.js";
import { missing } from "../helpers/env.js";

const dir = mkdtempSync(join(tmpdir(), "lanemap-encode-"));
after(() => rmSync(dir, { recursive: true, force: true }));

type Ctor = new (n: number) => BandArray;
const DTYPES: { name: string; gdal: string; ctor: Ctor; min: number; max: number }[] = [
  { name: "uint8", gdal: "Byte", ctor: Uint8Array, min: 0, max: 255 },
  { name: "int8", gdal: "Int8", ctor: Int8Array, min: -128, max: 127 },
  { name: "uint16", gdal: "UInt16", ctor: Uint16Array, min: 0, max: 65535 },
  { name: "int16", gdal: "Int16", ctor: Int16Array, min: -32768, max: 32767 },
  { name: "uint32", gdal: "UInt32", ctor: Uint32Array, min: 0, max: 4294967295 },
  { name: "int32", gdal: "Int32", ctor: Int32Array, min: -2147483648, max: 2147483647 },
  { name: "float32", gdal: "Float32", ctor: Float32Array, min: -1e6, max: 1e6 },
  { name: "float64", gdal: "Float64", ctor: Float64Array, min: -1e12, max: 1e12 },
];

/** Bands with the type's extremes, a smooth ramp and random values, so wrapping and predictors matter. */
function makeBands(ctor: Ctor, min: number, max: number, w: number, h: number, count: number, seed: number) {
  const rnd = createRandom(seed);
  const float = ctor === Float32Array || ctor === Float64Array;
  return Array.from({ length: count }, (_, b) => {
    const a = new ctor(w * h);
    for (let i = 0; i < a.length; i++) {
      if (i === 0) a[i] = min;
      else if (i === 1) a[i] = max;
      else if ((i + b) % 3 === 0) a[i] = min + ((i * 37) % 1000);
      else {
        const v = min + rnd.next() * (max - min);
        a[i] = float ? v : Math.floor(v);
      }
    }
    return a;
  });
}

function write(name: string, input: GeoTiffInput, options?: GeoTiffEncodeOptions): string {
  const path = join(dir, name);
  writeFileSync(path, encodeGeoTiff(input, options));
  return path;
}

interface GdalInfo {
  size: [number, number];
  geoTransform?: number[];
  metadata?: Record<string, Record<string, string>>;
  stac?: { "proj:epsg"?: number | null };
  bands: {
    type: string;
    noDataValue?: number | string;
    scale?: number;
    offset?: number;
    description?: string;
    colorInterpretation?: string;
    colorTable?: { count: number; entries: number[][] };
    metadata?: Record<string, Record<string, string>>;
  }[];
}

/** The band's data type; GDAL before 3.7 spells Int8 as Byte with PIXELTYPE=SIGNEDBYTE. */
function gdalType(band: GdalInfo["bands"][number]): string {
  if (band.type === "Byte" && band.metadata?.["IMAGE_STRUCTURE"]?.["PIXELTYPE"] === "SIGNEDBYTE")
    return "Int8";
  return band.type;
}

function gdalinfo(path: string): GdalInfo {
  const r = spawnSync("gdalinfo", ["-json", path], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as GdalInfo;
}

/** GDAL's own decoding of every band, as raw band-sequential native-endian bytes. */
function gdalRawBytes(path: string): Uint8Array {
  const out = `${path}.bsq`;
  const r = spawnSync("gdal_translate", ["-q", "-of", "ENVI", "-co", "INTERLEAVE=BSQ", path, out], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return new Uint8Array(readFileSync(out));
}

function concatBytes(bands: readonly BandArray[]): Uint8Array {
  const total = bands.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const b of bands) {
    out.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), o);
    o += b.byteLength;
  }
  return out;
}

const UTM = [500000, 30, 0, 1800000, 0, -30] as const;

describe("encodeGeoTiff read back by GDAL", { skip: missing({ gdal: true }) }, () => {
  for (const dt of DTYPES) {
    for (const options of [
      { compression: "deflate", interleave: "band" },
      { compression: "none", interleave: "pixel", rowsPerStrip: 4 },
      ...(dt.name.startsWith("float") ? [] : [{ compression: "deflate", predictor: 2, rowsPerStrip: 7 }]),
      { compression: "deflate", deflateStrategy: "rle", interleave: "pixel", rowsPerStrip: 5 },
    ] as GeoTiffEncodeOptions[]) {
      const label = `${options.compression}${options.predictor === 2 ? "+predictor" : ""}${options.deflateStrategy === "rle" ? "+rle" : ""}, ${options.interleave ?? "band"}`;
      test(`a 3-band ${dt.name} raster (${label}) keeps size, type, georeferencing, nodata, scale and pixels`, () => {
        const w = 37;
        const h = 23;
        const bands = makeBands(dt.ctor, dt.min, dt.max, w, h, 3, 11);
        const nodata = dt.min === 0 ? 0 : -1;
        const path = write(
          `${dt.name}-${label.replace(/\W+/g, "_")}.tif`,
          {
            width: w,
            height: h,
            bands,
            geoTransform: UTM,
            epsg: 32615,
            nodata,
            scale: [0.0001, 1, 2.5],
            offset: [0, -0.1, 0],
            bandNames: ["blue", "green", "red"],
            acquired: "2024-03-05T10:20:30Z",
            description: "a test raster",
            metadata: { LANEMAP_CELL: "c0001r0002" },
          },
          options,
        );
        const info = gdalinfo(path);
        assert.deepEqual(info.size, [w, h]);
        assert.deepEqual(info.geoTransform, [...UTM]);
        assert.equal(info.stac?.["proj:epsg"], 32615);
        assert.equal(info.bands.length, 3);
        for (const b of info.bands) {
          assert.equal(gdalType(b), dt.gdal);
          assert.equal(Number(b.noDataValue), nodata);
        }
        assert.deepEqual(
          info.bands.map((b) => [b.scale ?? 1, b.offset ?? 0]),
          [
            [0.0001, 0],
            [1, -0.1],
            [2.5, 0],
          ],
        );
        assert.deepEqual(
          info.bands.map((b) => b.description),
          ["blue", "green", "red"],
        );
        const meta = info.metadata?.[""] ?? {};
        assert.equal(meta["LANEMAP_CELL"], "c0001r0002");
        assert.equal(meta["TIFFTAG_DATETIME"], "2024:03:05 10:20:30");
        assert.equal(meta["TIFFTAG_IMAGEDESCRIPTION"], "a test raster");
        assert.equal(meta["AREA_OR_POINT"], "Area");
        const structure = info.metadata?.["IMAGE_STRUCTURE"] ?? {};
        assert.equal(structure["COMPRESSION"], options.compression === "none" ? undefined : "DEFLATE");
        assert.equal(structure["INTERLEAVE"], options.interleave === "pixel" ? "PIXEL" : "BAND");
        assert.equal(structure["PREDICTOR"], options.predictor === 2 ? "2" : undefined);
        assert.deepEqual(gdalRawBytes(path), concatBytes(bands));
      });
    }
  }

  test("a single uint8 band with a colour map is a palette image with that colour table", () => {
    const w = 16;
    const h = 9;
    const classes = new Uint8Array(w * h).map((_, i) => i % 4);
    const colors = [
      [0, 0, 0],
      [30, 100, 200],
      [34, 139, 34],
      [255, 255, 255],
    ] as const;
    const path = write("palette.tif", {
      width: w,
      height: h,
      bands: [classes],
      geoTransform: UTM,
      epsg: 32615,
      nodata: 0,
      colorMap: colors,
    });
    const band = gdalinfo(path).bands[0];
    assert.equal(band?.colorInterpretation, "Palette");
    assert.equal(band?.colorTable?.count, 256);
    // GDAL makes the nodata entry transparent; every other entry is opaque.
    assert.deepEqual(band?.colorTable?.entries.slice(0, 5), [
      [0, 0, 0, 0],
      ...colors.slice(1).map((c) => [...c, 255]),
      [0, 0, 0, 255],
    ]);
    assert.deepEqual(gdalRawBytes(path), classes);
  });

  test("a rotated geotransform is written as a model transformation GDAL reads back exactly", () => {
    const gt = [-93, 0.001, 0.0002, 17, 0.0001, -0.001] as const;
    const path = write("rotated.tif", {
      width: 5,
      height: 4,
      bands: [new Float32Array(20).fill(1.5)],
      geoTransform: gt,
      epsg: 4326,
    });
    const info = gdalinfo(path);
    assert.deepEqual(info.geoTransform, [...gt]);
    assert.equal(info.stac?.["proj:epsg"], 4326);
  });

  test("a NaN nodata value on float data is written the way GDAL spells it", () => {
    const path = write("nan.tif", {
      width: 3,
      height: 2,
      bands: [new Float64Array([1, NaN, 3, 4, 5, 6])],
      geoTransform: UTM,
      epsg: 32615,
      nodata: NaN,
    });
    assert.equal(String(gdalinfo(path).bands[0]?.noDataValue), "NaN");
  });
});

describe("encodeGeoTiff read back by geotiff.js", () => {
  for (const dt of DTYPES) {
    test(`a ${dt.name} raster decodes to the same samples, origin and resolution`, async () => {
      const w = 29;
      const h = 17;
      const bands = makeBands(dt.ctor, dt.min, dt.max, w, h, 2, 5);
      const predictor = dt.name.startsWith("float") ? 1 : 2;
      const bytes = encodeGeoTiff(
        { width: w, height: h, bands, geoTransform: UTM, epsg: 32615, nodata: 0 },
        { predictor, rowsPerStrip: 6 },
      );
      const tiff = await fromArrayBuffer(bytes.slice().buffer);
      const image = await tiff.getImage();
      assert.equal(image.getWidth(), w);
      assert.equal(image.getHeight(), h);
      assert.deepEqual(image.getOrigin(), [UTM[0], UTM[3], 0]);
      assert.deepEqual(image.getResolution(), [UTM[1], UTM[5], 0]);
      assert.equal(image.getGDALNoData(), 0);
      const rasters = (await image.readRasters()) as unknown as BandArray[];
      for (let b = 0; b < bands.length; b++) assert.deepEqual(rasters[b], bands[b]);
    });
  }
});

describe("encodeGeoTiff", () => {
  const base = { width: 4, height: 2, geoTransform: UTM, epsg: 32615 } as const;

  test("the same input always encodes to the same bytes", () => {
    const input = {
      ...base,
      bands: [new Uint16Array(8).map((_, i) => i * 1000)],
      acquired: "2020-01-01T00:00:00Z",
    };
    assert.deepEqual(encodeGeoTiff(input), encodeGeoTiff(input));
  });

  test("the run-length strategy writes zlib's Z_RLE stream of the strip", () => {
    // Runs, as a class raster has them: one strip of 4 × 64 uint8 samples.
    const band = new Uint8Array(256).map((_, i) => 1 + (i >> 5));
    const input = { ...base, width: 64, height: 4, bands: [band] };
    const rle = encodeGeoTiff(input, { deflateStrategy: "rle" });
    const want = deflateSync(band, { level: 6, strategy: zlibConstants.Z_RLE });
    assert.notDeepEqual(want, deflateSync(band, { level: 6 }));
    assert.ok(Buffer.from(rle).includes(want), "the Z_RLE stream is the file's strip");
    assert.ok(
      !Buffer.from(encodeGeoTiff(input)).includes(want),
      "the default strategy writes another stream",
    );
  });

  test("the predictor leaves the caller's band arrays untouched", () => {
    const band = new Uint16Array(8).map((_, i) => 100 + i * 3);
    const copy = band.slice();
    encodeGeoTiff({ ...base, bands: [band] }, { predictor: 2 });
    assert.deepEqual(band, copy);
  });

  test("bands of different types are refused with a TileEncodeError", () => {
    assert.throws(
      () => encodeGeoTiff({ ...base, bands: [new Uint16Array(8), new Uint8Array(8)] }),
      (e: unknown) => e instanceof TileEncodeError && /band 2 is uint8/.test(e.message),
    );
  });

  test("a band of the wrong length is refused", () => {
    assert.throws(() => encodeGeoTiff({ ...base, bands: [new Uint8Array(7)] }), TileEncodeError);
  });

  test("a colour map on anything but one uint8 band is refused", () => {
    assert.throws(
      () => encodeGeoTiff({ ...base, bands: [new Uint16Array(8)], colorMap: [[1, 2, 3]] }),
      TileEncodeError,
    );
  });

  test("predictor 2 on float data is refused", () => {
    assert.throws(
      () => encodeGeoTiff({ ...base, bands: [new Float32Array(8)] }, { predictor: 2 }),
      TileEncodeError,
    );
  });

  test("an unparseable acquisition time is refused", () => {
    assert.throws(
      () => encodeGeoTiff({ ...base, bands: [new Uint8Array(8)], acquired: "yesterday" }),
      TileEncodeError,
    );
  });

  test("an EPSG code that is not a CRS is refused unless its kind is given", () => {
    assert.throws(() => encodeGeoTiff({ ...base, bands: [new Uint8Array(8)], epsg: 1 }), TileEncodeError);
    assert.ok(
      encodeGeoTiff({ ...base, bands: [new Uint8Array(8)], epsg: 1, crsKind: "projected" }).length > 0,
    );
  });
});
