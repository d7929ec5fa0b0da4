/**
 * Property: any GeoTIFF that `gdal_translate -a_srs EPSG:<code>` writes gets GDAL's lon/lat corners
 * from lanemap (within 1e-7°), or a clear refusal (a CrsError naming the CRS) — never NaN, never a
 * silently wrong place. Codes are drawn, seeded, from epsg-index's projected and geographic 2D CRSs; each
 * tile is placed at the centre of the code's area of use. GDAL runs without grid files, like lanemap's
 * PROJ. Bounded: COUNT codes, a few seconds each.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CrsError, readGeoTiffInfo, toWgs84 } from "../../shared/index.js";
import { missing, projectRoot } from "../helpers/env.js";

const SEED = 20261130;
const COUNT = 16;
const skip =
  missing({ gdal: true }) ??
  (existsSync("/usr/share/proj/proj.db") ? undefined : "no /usr/share/proj/proj.db");

/** mulberry32: a small seeded PRNG, so a failure names a reproducible code. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface EpsgEntry {
  code: string;
  kind: string;
  bbox?: number[];
}

describe("a GeoTIFF of a random EPSG CRS gets GDAL's corners or a clear refusal", { skip }, () => {
  let work = "";
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test(`${COUNT} codes drawn with seed ${SEED}`, async (t) => {
    work = mkdtempSync(join(tmpdir(), "lanemap-epsg-"));
    const projData = join(work, "proj");
    spawnSync("mkdir", [projData]);
    symlinkSync("/usr/share/proj/proj.db", join(projData, "proj.db"));
    const env = { ...process.env, PROJ_DATA: projData, PROJ_LIB: projData };
    const gdal = (cmd: string, args: string[], input?: string) =>
      spawnSync(cmd, args, { encoding: "utf8", env, input, cwd: projectRoot });

    const require = createRequire(import.meta.url);
    const all = JSON.parse(readFileSync(require.resolve("epsg-index/all.json"), "utf8")) as Record<
      string,
      EpsgEntry
    >;
    const pool = Object.values(all)
      .filter((e) => (e.kind === "CRS-PROJCRS" || e.kind === "CRS-GEOGCRS") && e.bbox?.length === 4)
      .sort((a, b) => Number(a.code) - Number(b.code));
    const random = prng(SEED);
    const base = join(projectRoot, "test", "fixtures", "crs", "libgeotiff", "byte.tif");
    let equal = 0;
    const refused: string[] = [];
    const unplaceable: string[] = [];
    let tried = 0;
    while (equal + refused.length < COUNT && tried < COUNT * 4) {
      tried++;
      const e = pool[Math.floor(random() * pool.length)] as EpsgEntry;
      const [north, west, south, east] = e.bbox as [number, number, number, number];
      const lon = west <= east ? (west + east) / 2 : (((west + east + 360) / 2 + 180) % 360) - 180;
      const lat = (north + south) / 2;
      const tr = gdal(
        "gdaltransform",
        ["-s_srs", "EPSG:4326", "-t_srs", `EPSG:${e.code}`, "-output_xy"],
        `${lon} ${lat}\n`,
      );
      const [x, y] = tr.stdout.trim().split(/\s+/).map(Number);
      if (
        tr.status !== 0 ||
        x === undefined ||
        y === undefined ||
        !Number.isFinite(x) ||
        !Number.isFinite(y)
      ) {
        unplaceable.push(e.code);
        continue;
      }
      const d = e.kind === "CRS-GEOGCRS" ? 0.01 : 1000;
      const file = join(work, `${e.code}.tif`);
      const made = gdal("gdal_translate", [
        "-q",
        "-outsize",
        "4",
        "4",
        "-a_srs",
        `EPSG:${e.code}`,
        "-a_ullr",
        `${x}`,
        `${y + d}`,
        `${x + d}`,
        `${y}`,
        base,
        file,
      ]);
      // GDAL's corners: gdaltransform from the file's pixel/line corners to lon/lat, full precision
      // (gdalinfo -json's wgs84Extent is rounded to 7 decimals and, on this GDAL, not always the
      // corner itself: for EPSG:32745 it prints -40.0 where its own transform gives -39.99999941).
      const corners =
        made.status === 0
          ? gdal("gdaltransform", ["-t_srs", "EPSG:4326", "-output_xy", file], "0 0\n0 4\n4 4\n4 0\n")
          : null;
      const lonlat = corners?.stdout
        .trim()
        .split("\n")
        .map((l) => l.trim().split(/\s+/).map(Number));
      if (
        corners?.status !== 0 ||
        /ERROR/.test(corners.stderr) ||
        lonlat?.length !== 4 ||
        !lonlat.every((p) => p.length === 2 && p.every(Number.isFinite))
      ) {
        unplaceable.push(e.code);
        continue;
      }
      let mine;
      try {
        mine = await readGeoTiffInfo(readFileSync(file));
      } catch (err) {
        assert.ok(err instanceof CrsError, `EPSG:${e.code}: ${String(err)}`);
        assert.match(err.message, new RegExp(`EPSG:${e.code}\\b|"`), "the refusal names the CRS");
        refused.push(`EPSG:${e.code}`);
        continue;
      }
      const gt = mine.geoTransform!;
      [
        [0, 0],
        [0, 4],
        [4, 4],
        [4, 0],
      ].forEach(([c, r], i) => {
        const [glon, glat] = lonlat[i]!;
        const [mlon, mlat] = toWgs84(
          mine.crs!,
          gt[0] + c! * gt[1] + r! * gt[2],
          gt[3] + c! * gt[4] + r! * gt[5],
        );
        assert.ok(
          Math.abs(mlon - glon!) <= 1e-7 && Math.abs(mlat - glat!) <= 1e-7,
          `EPSG:${e.code} corner ${i}: ${mlon},${mlat} vs GDAL's ${glon},${glat}`,
        );
      });
      equal++;
    }
    t.diagnostic(
      `${equal} equal GDAL's corners, ${refused.length} refused (${refused.join(", ") || "none"}); ` +
        `${unplaceable.length} codes GDAL could not place a tile in were drawn again`,
    );
    assert.equal(equal + refused.length, COUNT, "enough codes GDAL could place");
  });
});
