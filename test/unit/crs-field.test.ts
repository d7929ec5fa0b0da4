/**
 * The field cases of ../shared/data/field (and the recipe ones, generated into test/fixtures/crs) as
 * regression tests: each tile's corners land on GDAL's lon/lat (`gdalinfo -json` wgs84Extent, run
 * with PROJ data without grid files, as lanemap's PROJ has none) within 1e-7 degrees. The comment on
 * each case is what lanemap said before its CRS came from PROJ. GDAL is not needed here: its answers
 * are the constants.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  CrsError,
  WGS84,
  labelsFromGeoJson,
  projectPoint,
  readGeoTiffInfo,
  resolveEpsgCrs,
  toWgs84,
} from "../../shared/index.js";
import { projectRoot, sharedData } from "../helpers/env.js";

const fixtures = join(projectRoot, "test", "fixtures", "crs");

interface FieldCase {
  readonly file: string | null;
  /** GDAL's upper-left and lower-right corners, lon/lat. */
  readonly ul: readonly [number, number];
  readonly lr: readonly [number, number];
  readonly epsg: number | null;
}

const field = (name: string): string | null => sharedData("field", name);
const generated = (name: string): string => join(fixtures, "generated", name);

const CASES: Readonly<Record<string, FieldCase>> = {
  // Before: the prime meridian ignored, 220.6 km west.
  "a geographic CRS on the Paris meridian": {
    file: field("GeogPrimeMeridianGeoKey.tif"),
    ul: [132.3372292, 32.0],
    lr: [133.3372292, 31.0],
    epsg: null,
  },
  // Before: the latitude of true scale lost, 136.3 km off.
  "a user-defined polar stereographic variant B": {
    file: field("polar_stereographic_variant_b.tif"),
    ul: [-42.0229002, -38.4504873],
    lr: [-42.0236466, -38.4507361],
    epsg: null,
  },
  // Before: the northern hemisphere, 7,523 km off.
  "EPSG:2046, a south-oriented Transverse Mercator (westing/southing axes)": {
    file: field("ProjectedCSTypeGeoKey_2046_transverse_mercator_south_oriented.tif"),
    ul: [10.2429147, -33.7968587],
    lr: [10.2422989, -33.7962946],
    epsg: 2046,
  },
  // Before: the false easting taken in metres, 485.5 km off.
  "a user-defined Transverse Mercator in feet": {
    file: generated("tm_feet.tif"),
    ul: [-110.1666667, 32.3745793],
    lr: [-110.1407594, 32.3525857],
    epsg: null,
  },
  // Before: latitude of true scale lost, 30.7 km off.
  "an NSIDC-style polar stereographic (lat_ts 70)": {
    file: generated("nsidc_polar_stereo.tif"),
    ul: [-39.2894069, 80.7420578],
    lr: [-38.8844964, 80.6615033],
    epsg: null,
  },
  // Before: NaN (proj4js cannot load the OSTN15 grid).
  "EPSG:27700, British National Grid": {
    file: generated("epsg27700.tif"),
    ul: [-2.0014331, 52.5977924],
    lr: [-1.8908736, 52.5303187],
    epsg: 27700,
  },
  // Before: NaN (NADCON grids).
  "EPSG:26715, NAD27 / UTM zone 15N": {
    file: generated("epsg26715.tif"),
    ul: [-93.0001929, 40.6527678],
    lr: [-92.9115675, 40.5851673],
    epsg: 26715,
  },
  // Before: NaN.
  "EPSG:4267, NAD27 geographic": {
    file: generated("epsg4267.tif"),
    ul: [-100.0004156, 39.9999969],
    lr: [-99.9004118, 39.8999985],
    epsg: 4267,
  },
  // Before: NaN (BETA2007 grid).
  "EPSG:31467, DHDN / Gauss-Kruger zone 3": {
    file: generated("epsg31467.tif"),
    ul: [8.9989636, 49.6367106],
    lr: [9.1026492, 49.5692316],
    epsg: 31467,
  },
};

describe("field cases: a tile's corners are GDAL's", () => {
  for (const [name, c] of Object.entries(CASES)) {
    test(
      name,
      { skip: c.file === null ? "../shared/data is absent (a fresh clone has none)" : false },
      async () => {
        const info = await readGeoTiffInfo(readFileSync(c.file as string));
        assert.ok(info.crs && info.geoTransform && info.boundsWgs84);
        assert.equal(info.crs.epsg, c.epsg);
        assert.match(info.crs.wkt ?? "", /^(PROJCRS|GEOGCRS)\[/, "the CRS carries PROJ's WKT2");
        const gt = info.geoTransform;
        const ul = toWgs84(info.crs, gt[0], gt[3]);
        const lr = toWgs84(info.crs, gt[0] + info.width * gt[1], gt[3] + info.height * gt[5]);
        for (const [got, want] of [
          [ul, c.ul],
          [lr, c.lr],
        ] as const) {
          assert.ok(Math.abs(got[0] - want[0]) <= 1e-7, `lon ${got[0]} vs GDAL's ${want[0]}`);
          assert.ok(Math.abs(got[1] - want[1]) <= 1e-7, `lat ${got[1]} vs GDAL's ${want[1]}`);
        }
        // The lon/lat footprint is PROJ's and holds both corners (proj4js's within 1 cm of PROJ's).
        const b = info.boundsWgs84;
        for (const [lon, lat] of [ul, lr]) {
          assert.ok(
            lon >= b.minX - 1e-7 && lon <= b.maxX + 1e-7 && lat >= b.minY - 1e-7 && lat <= b.maxY + 1e-7,
          );
        }
      },
    );
  }
});

describe("CRSs lanemap cannot transform exactly are refused at load, naming the CRS", () => {
  test("a Laborde oblique Mercator tile (no proj4js form) fails with a CrsError, not NaN coordinates", async () => {
    const bytes = readFileSync(
      join(fixtures, "libgeotiff", "ProjectedCSTypeGeoKey_8441_oblique_mercator_laborde.tif"),
    );
    await assert.rejects(readGeoTiffInfo(bytes), (err: unknown) => {
      assert.ok(err instanceof CrsError);
      assert.match(err.message, /EPSG:8441 \(Tananarive \/ Laborde Grid\)/);
      return true;
    });
  });

  test("without PROJ (decoder workers), a grid-needing proj4 definition is a CrsError instead of NaN", async () => {
    const info = await readGeoTiffInfo(readFileSync(generated("epsg27700.tif")), { crs: "keys" });
    assert.equal(info.boundsWgs84, null);
    assert.throws(() => toWgs84(info.crs!, 400000, 300000), CrsError);
  });
});

describe("training labels are placed by the same engine", () => {
  test("WGS 84 points at two pixel centres of a British National Grid tile label exactly those pixels", async () => {
    const tile = await readGeoTiffInfo(readFileSync(generated("epsg27700.tif")));
    // GDAL's lon/lat of the centres of pixels (0, 0) and (3, 3) (gdaltransform, no grid files).
    const geojson = {
      type: "FeatureCollection",
      features: [
        {
          type: "Feature",
          properties: { class: "a" },
          geometry: { type: "Point", coordinates: [-1.98759460974728, 52.5893638980106] },
        },
        {
          type: "Feature",
          properties: { class: "b" },
          geometry: { type: "Point", coordinates: [-1.90467498106128, 52.5387585638331] },
        },
      ],
    };
    const [labelled] = labelsFromGeoJson([tile], { kind: "geojson", geojson });
    assert.deepEqual([...labelled!.pixels], [0, 15]);
    assert.deepEqual([...labelled!.labels], [0, 1]);
  });

  test("an EPSG code resolved over an area transforms like the tile that names it", async () => {
    const area = { minX: 400000, minY: 292500, maxX: 407500, maxY: 300000 };
    const crs = await resolveEpsgCrs(27700, area);
    assert.equal(crs.epsg, 27700);
    const [lon, lat] = projectPoint(crs, WGS84, 400000, 300000);
    assert.ok(Math.abs(lon - -2.0014331) <= 1e-7 && Math.abs(lat - 52.5977924) <= 1e-7);
  });
});
