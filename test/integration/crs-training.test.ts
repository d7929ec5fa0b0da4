/**
 * The field case "CRS whose PROJ definition needs a grid" end to end: the Chiapas scene re-georeferenced
 * in British National Grid (EPSG:27700, whose proj4js form needs the OSTN15 grid), its labels moved with
 * it and then reprojected to WGS 84 by ogr2ogr, trains on exactly the samples the scene gives in its own
 * CRS. Before PROJ read the CRS, every label landed on NaN and training failed with "every feature
 * lies outside every tile".
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  mkdirSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createFeatureSpec, decodeGeoTiff, trainModel } from "../../shared/index.js";
import { missing, sharedData } from "../helpers/env.js";

const skip = missing({ shared: true, gdal: true });
const STACK = "LE70220491999322EDC01_stack.gtif";

/** Applies `f` to every coordinate pair of a GeoJSON geometry tree. */
function mapCoordinates(v: unknown, f: (x: number, y: number) => [number, number]): unknown {
  if (!Array.isArray(v)) return v;
  if (typeof v[0] === "number" && typeof v[1] === "number") return f(v[0], v[1]);
  return v.map((c) => mapCoordinates(c, f));
}

describe("training on a British National Grid tile with WGS 84 labels", { skip }, () => {
  let work = "";
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("gives the same samples as the scene in its own CRS", async (t) => {
    work = mkdtempSync(join(tmpdir(), "lanemap-bng-"));
    const data = sharedData("chiapas-l7-labels") as string;
    // GDAL without grid files, like lanemap's PROJ (Debian's proj-data has none for OSTN15 anyway).
    const projData = join(work, "proj");
    mkdirSync(projData);
    if (existsSync("/usr/share/proj/proj.db"))
      symlinkSync("/usr/share/proj/proj.db", join(projData, "proj.db"));
    const env = existsSync(join(projData, "proj.db"))
      ? { ...process.env, PROJ_DATA: projData, PROJ_LIB: projData }
      : process.env;
    const gdal = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { encoding: "utf8", env });
      assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
    };
    const bng = join(work, "bng.tif");
    gdal("gdal_translate", [
      "-q",
      "-a_srs",
      "EPSG:27700",
      "-a_ullr",
      "400000",
      "300000",
      "407500",
      "292500",
      join(data, STACK),
      bng,
    ]);

    // The labels move with the pixels (UTM 15N -> BNG by the two grids' offsets), then to WGS 84.
    const labels = JSON.parse(readFileSync(join(data, "training_data.geojson"), "utf8")) as {
      features: { geometry: { coordinates: unknown } }[];
    };
    const moved = {
      ...labels,
      crs: { type: "name", properties: { name: "urn:ogc:def:crs:EPSG::27700" } },
      features: labels.features.map((f) => ({
        ...f,
        geometry: {
          ...f.geometry,
          coordinates: mapCoordinates(f.geometry.coordinates, (x, y) => [
            x - 462405 + 400000,
            y - 1741815 + 300000,
          ]),
        },
      })),
    };
    writeFileSync(join(work, "bng.geojson"), JSON.stringify(moved));
    gdal("ogr2ogr", [
      "-f",
      "GeoJSON",
      "-s_srs",
      "EPSG:27700",
      "-t_srs",
      "EPSG:4326",
      "-lco",
      "COORDINATE_PRECISION=12",
      join(work, "wgs84.geojson"),
      join(work, "bng.geojson"),
    ]);
    const wgs84 = JSON.parse(readFileSync(join(work, "wgs84.geojson"), "utf8")) as unknown;

    const features = createFeatureSpec(8, { red: 3, nir: 4 });
    const own = trainModel(
      [await decodeGeoTiff(readFileSync(join(data, STACK)))],
      { kind: "geojson", geojson: labels },
      { features, source: "training_data.geojson", tileNames: [STACK] },
    );
    const tile = await decodeGeoTiff(readFileSync(bng));
    assert.equal(tile.crs?.epsg, 27700);
    const moved84 = trainModel(
      [tile],
      { kind: "geojson", geojson: wgs84 },
      { features, source: "wgs84.geojson", tileNames: ["bng.tif"] },
    );
    t.diagnostic(
      `${moved84.samples.y.length} samples on the BNG tile, ${own.samples.y.length} in the scene's own CRS`,
    );
    assert.equal(moved84.samples.y.length, own.samples.y.length);
    assert.deepEqual(moved84.training.samplesPerClass, own.training.samplesPerClass);
  });
});
