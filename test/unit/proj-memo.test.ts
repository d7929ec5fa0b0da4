import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";

// The cache folder is settled on first use, so the environment is set before anything asks PROJ.
const cacheHome = mkdtempSync(join(tmpdir(), "lanemap-proj-memo-"));
process.env["XDG_CACHE_HOME"] = cacheHome;

const { encodeGeoTiff, loadProjEngine, readGeoTiffCrsOnce, transformPointsOnce } =
  await import("../../shared/index.js");
const { projectRoot } = await import("../helpers/env.js");
const { MAX_ANSWERS, pruneAnswers } = await import("../../shared/crs/proj-memo.js");

/** A 1x1 GeoTIFF naming EPSG:32615 (WGS 84 / UTM zone 15N), the Chiapas scene's CRS. */
const utm15n = () =>
  encodeGeoTiff({
    width: 1,
    height: 1,
    bands: [new Uint8Array(1)],
    geoTransform: [500000, 30, 0, 1800000, 0, -30],
    epsg: 32615,
  });

const answers = () =>
  readdirSync(cacheHome, { recursive: true, withFileTypes: true }).filter((e) => e.name.endsWith(".json"));

after(() => rmSync(cacheHome, { recursive: true, force: true }));

describe("PROJ's answers kept on disk", () => {
  test("a GeoTIFF's CRS read through the cache is GDAL's own reading, stored once under the gdal3.js version", async () => {
    const bytes = utm15n();
    const cached = await readGeoTiffCrsOnce(bytes);
    const engine = await loadProjEngine();
    assert.deepEqual(cached, engine.readGeoTiffCrs(bytes));
    assert.equal(cached?.epsg, 32615);
    assert.equal(answers().length, 1);
    assert.ok(answers()[0]?.parentPath.endsWith(`proj-answers-gdal3.js-${engine.version}`));
    assert.deepEqual(await readGeoTiffCrsOnce(bytes), cached);
    assert.equal(answers().length, 1);
  });

  test("transformed points come back from the cache as the same doubles, and a point PROJ cannot map stays NaN", async () => {
    const xs = Float64Array.from([500000, 612345.678, Number.NaN]);
    const ys = Float64Array.from([1800000, 1790123.456, 0]);
    const direct = [xs.slice(), ys.slice()] as const;
    (await loadProjEngine()).transformer("EPSG:32615", "EPSG:4326")(direct[0], direct[1]);
    const first = [xs.slice(), ys.slice()] as const;
    await transformPointsOnce("EPSG:32615", "EPSG:4326", first[0], first[1]);
    const again = [xs.slice(), ys.slice()] as const;
    await transformPointsOnce("EPSG:32615", "EPSG:4326", again[0], again[1]);
    for (const got of [first, again]) {
      assert.deepEqual(Array.from(got[0]), Array.from(direct[0]));
      assert.deepEqual(Array.from(got[1]), Array.from(direct[1]));
    }
    assert.ok(Number.isNaN(again[0][2]) && Number.isNaN(again[1][2]));
  });

  test("a fresh process that finds both answers on disk does not start PROJ", () => {
    // The same questions as above, asked by a new process sharing the cache folder.
    const script = `
      import { encodeGeoTiff, loadedProjEngine, readGeoTiffCrsOnce, transformPointsOnce } from "./shared/index.ts";
      const bytes = encodeGeoTiff({ width: 1, height: 1, bands: [new Uint8Array(1)],
        geoTransform: [500000, 30, 0, 1800000, 0, -30], epsg: 32615 });
      const reading = await readGeoTiffCrsOnce(bytes);
      const xs = Float64Array.from([500000, 612345.678, NaN]);
      const ys = Float64Array.from([1800000, 1790123.456, 0]);
      await transformPointsOnce("EPSG:32615", "EPSG:4326", xs, ys);
      console.log(JSON.stringify({ epsg: reading?.epsg, lon: xs[0], started: loadedProjEngine() !== null }));
    `;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: projectRoot,
      encoding: "utf8",
      env: { ...process.env, XDG_CACHE_HOME: cacheHome },
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim()) as { epsg: number; lon: number; started: boolean };
    assert.equal(out.epsg, 32615);
    assert.ok(Math.abs(out.lon - -93) < 1e-9, `lon ${out.lon}`);
    assert.equal(out.started, false);
  });

  test("an answer file that does not parse, or is not shaped like an answer, is ignored and replaced by PROJ's answer", async () => {
    const bytes = utm15n();
    const expected = (await loadProjEngine()).readGeoTiffCrs(bytes);
    await readGeoTiffCrsOnce(bytes);
    for (const junk of ['{"reading": {"wkt"', JSON.stringify({ reading: { wkt: 42 } })]) {
      for (const e of answers()) writeFileSync(join(e.parentPath, e.name), junk);
      assert.deepEqual(await readGeoTiffCrsOnce(bytes), expected);
    }
    const stored = answers().map((e) => readFileSync(join(e.parentPath, e.name), "utf8"));
    assert.ok(stored.some((text) => text === JSON.stringify({ reading: expected })));
  });

  test("reading an answer marks it as recently used", async () => {
    const bytes = utm15n();
    await readGeoTiffCrsOnce(bytes);
    const old = new Date("2020-01-01T00:00:00Z");
    for (const e of answers()) utimesSync(join(e.parentPath, e.name), old, old);
    await readGeoTiffCrsOnce(bytes);
    assert.ok(answers().some((e) => statSync(join(e.parentPath, e.name)).mtimeMs > old.getTime()));
  });

  test("past its limit the folder keeps the most recently used three quarters, and drops temporary files a crashed writer left", () => {
    const dir = mkdtempSync(join(tmpdir(), "lanemap-proj-prune-"));
    try {
      const now = Date.parse("2026-06-01T12:00:00Z");
      const at = (name: string, msAgo: number) => {
        writeFileSync(join(dir, name), "{}");
        const t = new Date(now - msAgo);
        utimesSync(join(dir, name), t, t);
      };
      for (let i = 0; i < 9; i++) at(`answer-${i}.json`, (9 - i) * 1000); // answer-8 is the newest
      at(".answer-x.123.abc", 60 * 60 * 1000);
      at(".answer-y.456.def", 1000);
      pruneAnswers(dir, 8, now);
      assert.deepEqual(readdirSync(dir).sort(), [
        ".answer-y.456.def",
        ...[3, 4, 5, 6, 7, 8].map((i) => `answer-${i}.json`),
      ]);
      pruneAnswers(dir, 8, now);
      assert.equal(readdirSync(dir).length, 7, "under the limit nothing more goes");
      assert.ok(MAX_ANSWERS >= 1024, "the real limit keeps a working set of hundreds of tiles");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
