import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  CrsError,
  TileInvalidError,
  WGS84,
  crsFromEpsg,
  fromWgs84,
  projectPoint,
  proj4NeedsGrid,
  toWgs84,
  transformBounds,
} from "../../shared/index.js";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);

describe("CRS helpers", () => {
  test("crsFromEpsg gives the EPSG index's name and proj4 definition", () => {
    const utm = crsFromEpsg(32615);
    assert.equal(utm.epsg, 32615);
    assert.equal(utm.name, "WGS 84 / UTM zone 15N");
    assert.match(utm.proj4 ?? "", /\+proj=utm \+zone=15 \+datum=WGS84/);
    assert.equal(crsFromEpsg(4326), WGS84);
  });

  test("crsFromEpsg refuses a code the EPSG index does not know with a CrsError, a kind of TileInvalidError", () => {
    assert.throws(() => crsFromEpsg(999_999), CrsError);
    assert.throws(() => crsFromEpsg(-1), TileInvalidError);
  });

  test("a UTM point on the central meridian at the equator maps to (central meridian, 0)", () => {
    const [lon, lat] = toWgs84(crsFromEpsg(32615), 500000, 0);
    close(lon, -93, 1e-9, "lon");
    close(lat, 0, 1e-9, "lat");
  });

  test("fromWgs84 inverts toWgs84 to the millimetre", () => {
    const sirgas = crsFromEpsg(31985);
    const [lon, lat] = toWgs84(sirgas, 293749.5, 9115744.75);
    const [x, y] = fromWgs84(sirgas, lon, lat);
    close(x, 293749.5, 1e-3, "x");
    close(y, 9115744.75, 1e-3, "y");
  });

  test("projectPoint between two projected systems goes through their datums", () => {
    // EPSG:3857 and EPSG:32615 of the same lon/lat.
    const [mx, my] = fromWgs84(crsFromEpsg(3857), -93.3, 15.7);
    const [ux, uy] = projectPoint(crsFromEpsg(3857), crsFromEpsg(32615), mx, my);
    const [lon, lat] = toWgs84(crsFromEpsg(32615), ux, uy);
    close(lon, -93.3, 1e-9, "lon");
    close(lat, 15.7, 1e-9, "lat");
  });

  test("a point outside a projection's domain comes back non-finite instead of throwing", () => {
    const [, y] = fromWgs84(crsFromEpsg(3857), 0, 90);
    assert.ok(!Number.isFinite(y));
  });

  test("transformBounds covers the bulge of a projected rectangle's edges", () => {
    // A wide UTM box: its top edge curves north of its corners in lon/lat, and the midpoints catch it.
    const utm = crsFromEpsg(32615);
    const box = { minX: 200000, minY: 5000000, maxX: 800000, maxY: 5600000 };
    const corners = transformBounds(utm, WGS84, box, 0);
    const midpoints = transformBounds(utm, WGS84, box);
    assert.ok(midpoints.maxY > corners.maxY, "the edge midpoints reach further north than the corners");
    const [, topMid] = toWgs84(utm, 500000, 5600000);
    close(midpoints.maxY, topMid, 1e-12, "maxY is the top edge's midpoint");
    assert.deepEqual([midpoints.minX, midpoints.maxX], [corners.minX, corners.maxX]);
  });

  test("a CRS without a proj4 definition cannot be transformed", () => {
    assert.throws(
      () => toWgs84({ epsg: null, proj4: null, name: "local grid" }, 1, 2),
      /local grid has no proj4/,
    );
  });
});

describe("proj4js as lanemap runs it", () => {
  // PROJ's own proj4 export of EPSG:2046 (Hartebeesthoek94 / Lo15): westing and southing axes.
  const lo15 = {
    epsg: null,
    proj4:
      "+proj=tmerc +axis=wsu +lat_0=0 +lon_0=15 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +towgs84=0,0,0,0,0,0,0 +units=m +no_defs",
    name: "Lo15",
  };

  test("westing/southing axes (+axis=wsu) land in the southern hemisphere, where GDAL puts them", () => {
    const [lon, lat] = toWgs84(lo15, 440720, 3751320);
    close(lon, 10.2429147, 1e-7, "lon");
    close(lat, -33.7968587, 1e-7, "lat");
    const [x, y] = fromWgs84(lo15, lon, lat);
    close(x, 440720, 1e-6, "westing back");
    close(y, 3751320, 1e-6, "southing back");
  });

  test("a definition that needs a datum grid is a CrsError naming the CRS, not NaN coordinates", () => {
    for (const proj4 of [
      "+proj=longlat +datum=NAD27 +no_defs",
      "+proj=tmerc +ellps=bessel +nadgrids=BETA2007.gsb",
    ]) {
      assert.equal(proj4NeedsGrid(proj4), true, proj4);
      assert.throws(
        () => toWgs84({ epsg: 4267, proj4, name: null }, -100, 40),
        /EPSG:4267: .*needs a datum grid/,
      );
    }
    assert.equal(proj4NeedsGrid("+proj=longlat +ellps=clrk66 +nadgrids=@null"), false);
  });
});
