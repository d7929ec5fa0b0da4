/**
 * Valid-pixel masks exactly as GDAL reads them: rasterio's `read_masks` is the oracle
 * (test/helpers/gdal-masks.py). Covers nodata compared in the band's sample type (float32 nodata
 * written by rasterio, integer nodata that is fractional or out of range) — the field case
 * ../shared/data/field/make_f32_nodata.py included.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { addArchiveFolder } from "../../batch/index.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import {
  applyPam,
  computeFeatures,
  createFeatureSpec,
  decodeGeoTiff,
  readPamSidecar,
  type Raster,
} from "../../shared/index.js";
import { registerFastDecoders } from "../../shared/internal.js";
import { missing, projectRoot, sharedData } from "../helpers/env.js";

/** GDAL's Python bindings write the test files (python3-gdal; .ci/run installs it). */
function osgeoMissing(): string | undefined {
  const r = spawnSync("/usr/bin/python3", ["-c", "from osgeo import gdal"], { stdio: "ignore" });
  return r.status === 0 ? undefined : "GDAL's Python bindings are absent (apt-get install python3-gdal)";
}

const skip = missing({ peer: true, gdal: true }) ?? osgeoMissing();
const ORACLE = join(projectRoot, "test", "helpers", "gdal-masks.py");

interface OracleAnswer {
  path: string;
  nodata: (number | string | null)[];
  scale: number[];
  offset: number[];
  valid: number[];
}

function python(args: string[], cwd: string, script?: string): string {
  const r = spawnSync("/usr/bin/python3", script !== undefined ? ["-c", script, ...args] : args, {
    cwd,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`python3 ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

function oracle(file: string): OracleAnswer {
  const [answer] = JSON.parse(python([ORACLE, file], tmpdir())) as OracleAnswer[];
  assert.ok(answer);
  return answer;
}

/** lanemap's valid mask: the descriptors' (every band not nodata and not NaN). */
function lanemapValid(raster: Raster): number[] {
  const spec = createFeatureSpec(raster.bandCount, { red: 1, nir: raster.bandCount });
  return Array.from(computeFeatures(raster, spec).valid);
}

/** Writes a 4x1 single-band GeoTIFF of `dtype` with `values` and GDAL nodata `nodata`, through GDAL. */
const WRITE_ONE_BAND = `
import sys, json
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
path, dtype, nodata, values = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
types = {"uint8": gdal.GDT_Byte, "int16": gdal.GDT_Int16, "uint16": gdal.GDT_UInt16, "int32": gdal.GDT_Int32,
         "float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64}
ds = gdal.GetDriverByName("GTiff").Create(path, len(values), 1, 1, types[dtype])
ds.SetGeoTransform([500000, 30, 0, 1800000, 0, -30])
band = ds.GetRasterBand(1)
band.WriteArray(np.array([values], dtype=dtype))
band.SetNoDataValue(nodata)
ds = None
`;

describe("nodata is compared in the band's sample type, as GDAL does", { skip }, () => {
  let dir: string;
  before(() => {
    registerFastDecoders();
    dir = mkdtempSync(join(tmpdir(), "lanemap-nodata-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const nodata of ["-3.4e38", "0.1"]) {
    test(`a float32 band with nodata ${nodata} written by rasterio masks the 4 pixels GDAL masks (field case)`, async (t) => {
      const script = sharedData("field", "make_f32_nodata.py");
      if (script === null) return t.skip("../shared/data is absent");
      python([script, nodata], dir);
      const file = join(dir, "f32_nodata", "tile.tif");
      const raster = await decodeGeoTiff(readFileSync(file));
      const expected = oracle(file);
      const valid = lanemapValid(raster);
      assert.deepEqual(valid, expected.valid);
      assert.equal(valid.filter((v) => v === 0).length, 4, "4 masked pixels");
      assert.equal(
        raster.nodata[0],
        expected.nodata[0],
        "nodata as compared equals GDAL's (float32-rounded)",
      );
    });
  }

  const cases: { dtype: string; nodata: string; values: number[]; why: string }[] = [
    { dtype: "uint8", nodata: "1.5", values: [0, 1, 2, 3], why: "a fractional nodata truncates toward zero" },
    {
      dtype: "int16",
      nodata: "-2.7",
      values: [2, -3, -2, 1],
      why: "negative fractions truncate toward zero",
    },
    {
      dtype: "uint16",
      nodata: "-1",
      values: [0, 65535, 1, 2],
      why: "a nodata below the range masks nothing",
    },
    { dtype: "uint8", nodata: "256", values: [0, 255, 1, 0], why: "a nodata above the range masks nothing" },
    {
      dtype: "float32",
      nodata: "1e40",
      values: [1, 2, 3, 4],
      why: "a nodata beyond float32 masks no finite value",
    },
    {
      dtype: "float64",
      nodata: "0.1",
      values: [0.1, 0.2, 0.1, 1],
      why: "float64 compares the double itself",
    },
  ];
  for (const c of cases) {
    test(`a ${c.dtype} band with nodata ${c.nodata}: ${c.why}`, async () => {
      const file = join(dir, `${c.dtype}-${c.nodata}.tif`);
      python([file, c.dtype, c.nodata, JSON.stringify(c.values)], dir, WRITE_ONE_BAND);
      const raster = await decodeGeoTiff(readFileSync(file));
      assert.deepEqual(lanemapValid(raster), oracle(file).valid);
    });
  }
});

/**
 * A 2-band int16 file whose TIFF says nodata 1 for both bands, then (opened read-only, as GDAL does
 * for a file it may not rewrite) band 2 gets nodata 3 and scale/offset 0.5/10, band 1 scale 7: GDAL
 * writes those to <file>.aux.xml. Band 1 keeps the TIFF's own scale 2 / offset 1 (the TIFF wins).
 */
const WRITE_PAM = `
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
path = sys.argv[1]
ds = gdal.GetDriverByName("GTiff").Create(path, 4, 2, 2, gdal.GDT_Int16)
ds.SetGeoTransform([500000, 30, 0, 1800000, 0, -30])
ds.SetProjection("EPSG:32615")
for b in (1, 2):
    ds.GetRasterBand(b).WriteArray(np.array([[1, 2, 3, 4], [3, 1, 5, 6]], dtype="int16"))
    ds.GetRasterBand(b).SetNoDataValue(1)
ds.GetRasterBand(1).SetScale(2)
ds.GetRasterBand(1).SetOffset(1)
ds = None
ds = gdal.Open(path, gdal.GA_ReadOnly)
ds.GetRasterBand(2).SetNoDataValue(3)
ds.GetRasterBand(2).SetScale(0.5)
ds.GetRasterBand(2).SetOffset(10)
ds.GetRasterBand(1).SetScale(7)
ds = None
`;

describe("a GDAL PAM sidecar (.aux.xml) changes the mask and values as GDAL applies it", { skip }, () => {
  let dir: string;
  let file: string;
  before(() => {
    registerFastDecoders();
    dir = mkdtempSync(join(tmpdir(), "lanemap-pam-"));
    mkdirSync(join(dir, "tiles"));
    file = join(dir, "tiles", "scene_2024-05-01.tif");
    python([file], dir, WRITE_PAM);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("band 2's own nodata from the sidecar masks the pixels rasterio masks", async () => {
    const pam = await readPamSidecar(file);
    assert.ok(pam, "GDAL wrote the sidecar");
    const raster = applyPam(await decodeGeoTiff(readFileSync(file)), pam);
    const expected = oracle(file);
    assert.deepEqual(lanemapValid(raster), expected.valid);
    assert.deepEqual(raster.nodata, expected.nodata);
    assert.deepEqual(
      raster.scale,
      expected.scale,
      "band 1 keeps the TIFF's scale; band 2 takes the sidecar's",
    );
    assert.deepEqual(raster.offset, expected.offset);
    // Without the sidecar, band 2's pixels of value 3 would count as valid.
    const bare = await decodeGeoTiff(readFileSync(file));
    assert.notDeepEqual(lanemapValid(bare), expected.valid);
  });

  test("archive add records the sidecar in the catalogue, so the archived bytes mask the same pixels", async () => {
    const store = new ArchiveStore(join(dir, "data"));
    const report = await addArchiveFolder(store, join(dir, "tiles"), {
      logger: pino({ level: "silent" }),
      maxPixels: 1e6,
    });
    assert.equal(report.added, 1, JSON.stringify(report.bad));
    const entries = [];
    for await (const e of store.entries()) entries.push(e);
    const entry = entries[0];
    assert.ok(entry?.pam, "the entry carries the sidecar's band values");
    const bytes = await store.readObject(entry.contentHash);
    const raster = applyPam(await decodeGeoTiff(bytes), entry.pam);
    assert.deepEqual(lanemapValid(raster), oracle(file).valid);
  });
});
