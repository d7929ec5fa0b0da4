/**
 * `lanemap info` and `lanemap classify` against GDAL: `info --json` reports what `gdalinfo -json` does
 * (size, band types, geotransform, lon/lat corners within 1e-7°), and a class GeoTIFF carries exactly
 * its tile's georeferencing — also for a CRS without an EPSG code — plus class names and a colour
 * table as `gdalinfo` reads them.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseColour, parseModel } from "../../shared/index.js";
import { missing, projectRoot, sharedData } from "../helpers/env.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");
const FEET_TM =
  "+proj=tmerc +lat_0=31 +lon_0=-110.1666666666667 +k=0.9999 +x_0=213360 +y_0=0 +datum=NAD83 +units=ft +no_defs";

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: projectRoot, maxBuffer: 64 * 2 ** 20 });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const lanemap = (...args: string[]): string => run(process.execPath, [CLI, ...args]);

interface GdalInfo {
  size: number[];
  geoTransform: number[];
  coordinateSystem?: { wkt: string };
  wgs84Extent?: { coordinates: number[][][] };
  bands: {
    type: string;
    colorTable?: { count: number; entries: number[][] };
    categories?: string[];
  }[];
}

const gdalinfo = (file: string): GdalInfo => JSON.parse(run("gdalinfo", ["-json", file])) as GdalInfo;

function assertCornersEqual(got: number[][], want: number[][]): void {
  for (let i = 0; i < 4; i++)
    for (let k = 0; k < 2; k++)
      assert.ok(
        Math.abs((got[i]?.[k] ?? NaN) - (want[i]?.[k] ?? NaN)) <= 1e-7,
        `corner ${i}: ${got[i]?.join(",")} vs GDAL's ${want[i]?.join(",")}`,
      );
}

describe("lanemap info reads a tile as gdalinfo does", { skip: missing({ gdal: true }) }, () => {
  const files = [join(projectRoot, "test", "fixtures", "crs", "generated", "tm_feet.tif")];
  const field = sharedData("field", "GeogPrimeMeridianGeoKey.tif");
  if (field !== null) files.push(field);
  for (const file of files)
    test(`info --json on ${file.split("/").pop()} has gdalinfo's size, types, geotransform and corners`, () => {
      const mine = JSON.parse(lanemap("info", file, "--json")) as {
        size: number[];
        geoTransform: number[];
        bands: { type: string }[];
        coordinateSystem: { wkt: string };
        wgs84Extent: { coordinates: number[][][] };
      };
      const gdal = gdalinfo(file);
      assert.deepEqual(mine.size, gdal.size);
      assert.deepEqual(mine.geoTransform, gdal.geoTransform);
      assert.deepEqual(
        mine.bands.map((b) => b.type),
        gdal.bands.map((b) => b.type),
      );
      assert.match(mine.coordinateSystem.wkt, /^(PROJCRS|GEOGCRS)\[/);
      assertCornersEqual(mine.wgs84Extent.coordinates[0]!, gdal.wgs84Extent!.coordinates[0]!);
    });
});

describe(
  "a class GeoTIFF keeps its tile's georeferencing, class names and colours",
  { skip: missing({ gdal: true }) },
  () => {
    let work = "";
    before(() => {
      work = mkdtempSync(join(tmpdir(), "lanemap-crs-cli-"));
    });
    after(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test("classify on a tile in a user-defined Transverse Mercator in feet (no EPSG code)", () => {
      lanemap("generate", "--out", join(work, "gen"), "--grid", "1x1", "--tile-size", "64", "--seed", "3");
      const tile = join(work, "gen", "tiles", readdirSync(join(work, "gen", "tiles"))[0]!);
      lanemap(
        "train",
        "--tiles",
        tile,
        "--train",
        join(work, "gen", "training.geojson"),
        "--out",
        join(work, "model.json"),
      );
      const model = parseModel(readFileSync(join(work, "model.json"), "utf8"));
      // The same pixels, re-georeferenced in a CRS that has no EPSG code.
      const feet = join(work, "feet.tif");
      run("gdal_translate", [
        "-q",
        "-a_srs",
        FEET_TM,
        "-a_ullr",
        "700000",
        "500000",
        "764000",
        "436000",
        tile,
        feet,
      ]);
      const out = join(work, "classes.tif");
      lanemap("classify", feet, "--model", join(work, "model.json"), "--out", out);

      const src = gdalinfo(feet);
      const cls = gdalinfo(out);
      assert.equal(cls.coordinateSystem?.wkt, src.coordinateSystem?.wkt, "the same CRS, as GDAL reads it");
      assert.deepEqual(cls.geoTransform, src.geoTransform);
      assertCornersEqual(cls.wgs84Extent!.coordinates[0]!, src.wgs84Extent!.coordinates[0]!);
      const band = cls.bands[0]!;
      // Class names where GDAL reads them (PAM), by pixel value; 0 is "not classified".
      const expected = ["not classified"];
      for (const c of model.classes) expected[c.id] = c.name;
      assert.deepEqual(band.categories, expected);
      // A TIFF colour map always has 2^8 entries; the used ones are the classes' colours.
      for (const c of model.classes)
        assert.deepEqual(band.colorTable?.entries[c.id]?.slice(0, 3), [...parseColour(c.colour)], c.name);
    });
  },
);
