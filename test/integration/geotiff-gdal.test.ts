/**
 * GDAL is the oracle: every real sample (and GDAL-made variants of them covering every dtype, codec,
 * predictor, byte order, layout and planar configuration lanemap decodes) must decode to exactly the
 * values `gdal_translate -of ENVI` writes, with the size, geotransform, EPSG code, nodata and
 * scale/offset `gdalinfo -json` reports.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fromArrayBuffer } from "geotiff";
import { type BandArray, type Raster, decodeGeoTiff, registerFastDecoders } from "../../shared/internal.js";
import { missing, sharedData } from "../helpers/env.js";

const skip = missing({ shared: true, gdal: true });

function gdal(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

interface GdalInfo {
  size: [number, number];
  geoTransform?: number[];
  coordinateSystem?: { wkt?: string };
  stac?: { "proj:epsg"?: number | null };
  bands: {
    type: string;
    noDataValue?: number | string;
    scale?: number;
    offset?: number;
    metadata?: { IMAGE_STRUCTURE?: { PIXELTYPE?: string } };
  }[];
}

const GDAL_TYPES: Readonly<Record<string, string>> = {
  Byte: "uint8",
  Int8: "int8",
  UInt16: "uint16",
  Int16: "int16",
  UInt32: "uint32",
  Int32: "int32",
  Float32: "float32",
  Float64: "float64",
};

/** The EPSG code gdalinfo identifies: STAC's proj:epsg, or the WKT's top-level ID. */
function gdalEpsg(info: GdalInfo): number | null {
  const stac = info.stac?.["proj:epsg"];
  if (typeof stac === "number") return stac;
  const m = /ID\["EPSG",(\d+)\]\]\s*$/.exec(info.coordinateSystem?.wkt ?? "");
  return m ? Number(m[1]) : null;
}

/** gdal_translate -of ENVI writes band-sequential samples in host byte order. */
function gdalPixels(file: string, dir: string, raster: Raster): BandArray[] {
  const out = join(dir, `${basename(file)}.bin`);
  gdal("gdal_translate", ["-q", "-of", "ENVI", "-co", "INTERLEAVE=BSQ", file, out]);
  const buf = readFileSync(out);
  const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const n = raster.width * raster.height;
  const Ctor = raster.bands[0]?.constructor as new (b: ArrayBuffer, o: number, l: number) => BandArray;
  const bps = raster.bands[0]?.BYTES_PER_ELEMENT ?? 1;
  assert.equal(bytes.byteLength, n * bps * raster.bandCount, "ENVI file size");
  return raster.bands.map((_, b) => new Ctor(bytes.buffer, b * n * bps, n));
}

/** Compares two bands; NaN equals NaN. Counts differing pixels, the largest and the mean difference. */
function compare(
  a: BandArray,
  b: BandArray,
): { diff: number; maxAbs: number; meanAbs: number; first: number } {
  let diff = 0;
  let maxAbs = 0;
  let sumAbs = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    diff++;
    if (first < 0) first = i;
    maxAbs = Math.max(maxAbs, Math.abs(x - y));
    sumAbs += Math.abs(x - y);
  }
  return { diff, maxAbs, meanAbs: sumAbs / Math.max(1, a.length), first };
}

/**
 * How far JPEG pixels may be from GDAL's: geotiff.js's IDCT rounds differently from libjpeg (±1 on a
 * fraction of a percent of pixels), and it upsamples subsampled chroma by replication where libjpeg
 * interpolates ("fancy upsampling"), which moves YCbCr pixels by a few levels near colour edges.
 */
interface JpegTolerance {
  readonly maxAbs: number;
  readonly meanAbs: number;
}

/** Checks a decoded raster against GDAL: exactly, or within `jpeg`'s tolerance for JPEG files. */
async function checkAgainstGdal(file: string, dir: string, jpeg?: JpegTolerance): Promise<void> {
  const raster = await decodeGeoTiff(readFileSync(file));
  const info = JSON.parse(gdal("gdalinfo", ["-json", file])) as GdalInfo;
  assert.deepEqual([raster.width, raster.height], info.size, "size");
  assert.equal(raster.bandCount, info.bands.length, "band count");
  // GDAL 3.6 reports signed bytes as Byte with PIXELTYPE=SIGNEDBYTE; 3.7+ as Int8.
  const signedByte = info.bands[0]?.metadata?.IMAGE_STRUCTURE?.PIXELTYPE === "SIGNEDBYTE";
  assert.equal(raster.dtype, signedByte ? "int8" : GDAL_TYPES[info.bands[0]?.type ?? ""], "dtype");
  if (info.geoTransform) {
    assert.ok(raster.geoTransform, "geotransform present");
    raster.geoTransform.forEach((v, i) => {
      const g = info.geoTransform?.[i] ?? NaN;
      assert.ok(Math.abs(v - g) <= 1e-9 * Math.max(1, Math.abs(g)), `geotransform[${i}] ${v} vs ${g}`);
    });
  }
  assert.equal(raster.crs?.epsg ?? null, gdalEpsg(info), "EPSG");
  info.bands.forEach((band, b) => {
    const nd = band.noDataValue;
    const expected = nd === undefined ? null : typeof nd === "string" ? Number(nd) : nd;
    const got = raster.nodata[b];
    if (expected !== null && Number.isNaN(expected)) assert.ok(Number.isNaN(got), `band ${b + 1} nodata NaN`);
    else assert.equal(got, expected, `band ${b + 1} nodata`);
    assert.equal(raster.scale[b], band.scale ?? 1, `band ${b + 1} scale`);
    assert.equal(raster.offset[b], band.offset ?? 0, `band ${b + 1} offset`);
  });
  const expected = gdalPixels(file, dir, raster);
  raster.bands.forEach((band, b) => {
    const r = compare(band, expected[b] as BandArray);
    if (jpeg === undefined) {
      assert.equal(r.diff, 0, `band ${b + 1}: ${r.diff} pixels differ from GDAL, first at ${r.first}`);
    } else {
      assert.ok(r.maxAbs <= jpeg.maxAbs, `band ${b + 1}: JPEG difference up to ${r.maxAbs} > ${jpeg.maxAbs}`);
      assert.ok(
        r.meanAbs <= jpeg.meanAbs,
        `band ${b + 1}: mean JPEG difference ${r.meanAbs} > ${jpeg.meanAbs}`,
      );
    }
  });
}

/** RGB or grey JPEG: only IDCT rounding differs. */
const IDCT_ONLY: JpegTolerance = { maxAbs: 1, meanAbs: 0.1 };
/** YCbCr 4:2:0 JPEG: chroma upsampling differs too. */
const YCBCR: JpegTolerance = { maxAbs: 12, meanAbs: 0.5 };

describe("decoding the real samples matches GDAL", { skip }, () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "lanemap-gdal-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const folder of ["encodings", "olinda-l7", "l8-cloudy", "chiapas-l7-labels"]) {
    const root = sharedData(folder);
    const files = root ? readdirSync(root).filter((f) => /\.(tif|gtif)$/.test(f)) : [];
    for (const name of files) {
      const jpeg = name === "alpha.tif" ? IDCT_ONLY : undefined;
      test(`${folder}/${name} decodes to GDAL's pixels, georeferencing and band metadata`, async () => {
        await checkAgainstGdal(join(root as string, name), dir, jpeg);
      });
    }
  }
});

/** GDAL-made variants of the real scenes: one per encoding feature lanemap must handle. */
const VARIANTS: readonly { name: string; source: string[]; args: string[]; jpeg?: JpegTolerance }[] = [
  {
    name: "deflate-pred2-tiled",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: [
      "-co",
      "COMPRESS=DEFLATE",
      "-co",
      "PREDICTOR=2",
      "-co",
      "TILED=YES",
      "-co",
      "BLOCKXSIZE=128",
      "-co",
      "BLOCKYSIZE=64",
    ],
  },
  {
    name: "adobe-deflate-planar-band",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: ["-co", "COMPRESS=DEFLATE", "-co", "INTERLEAVE=BAND"],
  },
  {
    name: "lzw-pred2-int16-planar",
    source: ["chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif"],
    args: ["-co", "COMPRESS=LZW", "-co", "PREDICTOR=2", "-co", "INTERLEAVE=BAND"],
  },
  {
    name: "lzw-pred2-int16-pixel",
    source: ["chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif"],
    args: ["-co", "COMPRESS=LZW", "-co", "PREDICTOR=2", "-co", "TILED=YES"],
  },
  {
    name: "deflate-pred3-float32",
    source: ["chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif"],
    args: ["-ot", "Float32", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=3"],
  },
  {
    name: "lzw-pred3-float64-tiled",
    source: ["l8-cloudy", "l8_B4.tif"],
    args: ["-ot", "Float64", "-co", "COMPRESS=LZW", "-co", "PREDICTOR=3", "-co", "TILED=YES"],
  },
  { name: "packbits-uint8", source: ["olinda-l7", "L7_ETMs.tif"], args: ["-co", "COMPRESS=PACKBITS"] },
  {
    name: "packbits-int16-tiled-planar",
    source: ["chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif"],
    args: ["-co", "COMPRESS=PACKBITS", "-co", "TILED=YES", "-co", "INTERLEAVE=BAND"],
  },
  {
    name: "bigendian-deflate-pred2-int16",
    source: ["chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif"],
    args: ["-co", "ENDIANNESS=BIG", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=2"],
  },
  { name: "bigendian-none-uint16", source: ["l8-cloudy", "l8_B5.tif"], args: ["-co", "ENDIANNESS=BIG"] },
  {
    name: "bigendian-lzw-pred3-float32",
    source: ["l8-cloudy", "l8_B5.tif"],
    args: ["-ot", "Float32", "-co", "ENDIANNESS=BIG", "-co", "COMPRESS=LZW", "-co", "PREDICTOR=3"],
  },
  {
    name: "bigendian-packbits-uint32-planar",
    source: ["chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif"],
    args: ["-ot", "UInt32", "-co", "ENDIANNESS=BIG", "-co", "COMPRESS=PACKBITS", "-co", "INTERLEAVE=BAND"],
  },
  {
    name: "int8",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: ["-co", "PIXELTYPE=SIGNEDBYTE", "-co", "COMPRESS=DEFLATE"],
  },
  {
    name: "int32-deflate-pred2",
    source: ["chiapas-l7-labels", "LE70220491999322EDC01_stack.gtif"],
    args: ["-ot", "Int32", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=2"],
  },
  {
    name: "bigtiff-lzw",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: ["-co", "BIGTIFF=YES", "-co", "COMPRESS=LZW", "-co", "TILED=YES"],
  },
  {
    name: "sparse-tiles",
    source: ["chiapas-l7-labels", "training_data.gtif"],
    args: [
      "-co",
      "SPARSE_OK=TRUE",
      "-co",
      "TILED=YES",
      "-co",
      "BLOCKXSIZE=16",
      "-co",
      "BLOCKYSIZE=16",
      "-co",
      "COMPRESS=DEFLATE",
    ],
  },
  {
    name: "cog-deflate",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: [
      "-of",
      "COG",
      "-co",
      "COMPRESS=DEFLATE",
      "-co",
      "BLOCKSIZE=128",
      "-co",
      "OVERVIEWS=FORCE_USE_EXISTING",
    ],
  },
  {
    name: "jpeg-gray",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: ["-b", "4", "-co", "COMPRESS=JPEG", "-co", "TILED=YES"],
    jpeg: IDCT_ONLY,
  },
  {
    name: "jpeg-ycbcr",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: ["-b", "3", "-b", "2", "-b", "1", "-co", "COMPRESS=JPEG", "-co", "PHOTOMETRIC=YCBCR"],
    jpeg: YCBCR,
  },
  {
    name: "jpeg-planar-band",
    source: ["olinda-l7", "L7_ETMs.tif"],
    args: ["-co", "COMPRESS=JPEG", "-co", "INTERLEAVE=BAND"],
    jpeg: IDCT_ONLY,
  },
];

describe("decoding GDAL-made variants of the real scenes matches GDAL", { skip }, () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "lanemap-gdal-variants-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const v of VARIANTS) {
    test(`a ${v.name} GeoTIFF decodes to GDAL's pixels and metadata`, async () => {
      const src = sharedData(...v.source) as string;
      const file = join(dir, `${v.name}.tif`);
      gdal("gdal_translate", ["-q", ...v.args, src, file]);
      await checkAgainstGdal(file, dir, v.jpeg);
    });
  }

  // lanemap's codecs are registered with geotiff.js, so its own readRasters (and its predictor step,
  // BaseDecoder.decode) must give the same pixels as GDAL too. geotiff.js's predictor is only right for
  // little-endian files, which is why lanemap's decoder undoes predictors itself.
  for (const v of VARIANTS.filter((x) => /pred/.test(x.name) && !/bigendian/.test(x.name))) {
    test(`geotiff.js's readRasters with lanemap's codecs decodes the ${v.name} file to GDAL's pixels`, async () => {
      registerFastDecoders();
      const src = sharedData(...v.source) as string;
      const file = join(dir, `${v.name}-geotiffjs.tif`);
      gdal("gdal_translate", ["-q", ...v.args, src, file]);
      const buf = readFileSync(file);
      const image = await (
        await fromArrayBuffer(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))
      ).getImage(0);
      const bands = (await image.readRasters()) as unknown as BandArray[];
      const raster = await decodeGeoTiff(buf);
      const expected = gdalPixels(file, dir, raster);
      bands.forEach((band, b) => {
        const r = compare(band, expected[b] as BandArray);
        assert.equal(r.diff, 0, `band ${b + 1}: ${r.diff} pixels differ from GDAL`);
      });
    });
  }
});
