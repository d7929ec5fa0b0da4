/**
 * `lanemap train`, `classify` and `evaluate` as a user runs them: real processes on the Chiapas
 * scene, and bad arguments or files ending in one line on stderr and a non-zero exit.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeGeoTiff, encodeGeoTiff, parseModel } from "../../shared/index.js";
import { hasGdal, missing, projectRoot, sharedData } from "../helpers/env.js";
import { runSync } from "../helpers/processes.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

function lanemap(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return runSync(process.execPath, [CLI, ...args], { cwd: projectRoot });
}

/** Asserts a failed run: the exit code and one line on stderr matching `message`. */
function assertFails(r: ReturnType<typeof lanemap>, code: number, message: RegExp): void {
  assert.equal(r.status, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0] as string, /^lanemap: /);
  assert.match(lines[0] as string, message);
}

const STACK = "LE70220491999322EDC01_stack";

describe("lanemap train, classify and evaluate on Chiapas", { skip: missing({ shared: true }) }, () => {
  const data = sharedData("chiapas-l7-labels") as string;
  let work = "";
  before(() => {
    work = mkdtempSync(join(tmpdir(), "lanemap-cli-core-"));
    mkdirSync(join(work, "tiles"));
    copyFileSync(join(data, `${STACK}.gtif`), join(work, "tiles", `${STACK}.gtif`));
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("train writes a model and prints its classes, samples per class and version", () => {
    const r = lanemap(
      "train",
      "--tiles",
      join(work, "tiles"),
      "--train",
      join(data, "training_data.geojson"),
      "--red",
      "3",
      "--nir",
      "4",
      "--out",
      join(work, "model.json"),
    );
    assert.equal(r.status, 0, r.stderr);
    const model = parseModel(readFileSync(join(work, "model.json"), "utf8"));
    assert.match(r.stdout, new RegExp(`^model ${model.version} -> `));
    assert.match(
      r.stdout,
      /classes: 1 barren \(109\), 2 forest \(383\), 3 herbaceous \(145\), 4 urban \(65\), 5 water \(16\)/,
    );
    assert.match(r.stdout, /samples: 718 from 1 tile; k = 5/);
  });

  test("classify writes a uint8 class GeoTIFF on the tile's grid and prints a JSON summary", async () => {
    const out = join(work, "classes.tif");
    const r = lanemap(
      "classify",
      join(work, "tiles", `${STACK}.gtif`),
      "--model",
      join(work, "model.json"),
      "--out",
      out,
    );
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as {
      modelVersion: string;
      validPixels: number;
      classes: { id: number; name: string; pixels: number; areaM2: number }[];
      dominant: { name: string };
      meanConfidence: number;
    };
    const model = parseModel(readFileSync(join(work, "model.json"), "utf8"));
    assert.equal(summary.modelVersion, model.version);
    assert.equal(summary.validPixels, 62500);
    assert.equal(
      summary.classes.reduce((s, c) => s + c.pixels, 0),
      62500,
    );
    for (const c of summary.classes) assert.equal(c.areaM2, c.pixels * 900);
    assert.equal(summary.dominant.name, "herbaceous");
    assert.ok(summary.meanConfidence > 0.2 && summary.meanConfidence <= 1);

    const tile = await decodeGeoTiff(new Uint8Array(readFileSync(join(data, `${STACK}.gtif`))));
    const classes = await decodeGeoTiff(new Uint8Array(readFileSync(out)));
    assert.equal(classes.dtype, "uint8");
    assert.equal(classes.compression, "deflate");
    assert.deepEqual(classes.geoTransform, tile.geoTransform);
    assert.equal(classes.crs?.epsg, 32615);
    const counts = new Array<number>(6).fill(0);
    for (const v of classes.bands[0] as Uint8Array) counts[v] = (counts[v] as number) + 1;
    assert.deepEqual(
      counts.slice(1),
      summary.classes.map((c) => c.pixels),
    );

    if (hasGdal()) {
      const info = JSON.parse(spawnSync("gdalinfo", ["-json", out], { encoding: "utf8" }).stdout) as {
        bands: { colorTable?: { entries: number[][] } }[];
      };
      const entries = info.bands[0]?.colorTable?.entries ?? [];
      for (const c of model.classes) {
        const hex = `#${(entries[c.id] ?? [])
          .slice(0, 3)
          .map((v) => v.toString(16).padStart(2, "0"))
          .join("")}`;
        assert.equal(hex, c.colour, `colour of ${c.name}`);
      }
    }
  });

  test("evaluate reports OA, kappa, the confusion matrix and per-class figures, also by hold-out and folds", () => {
    const base = [
      "evaluate",
      "--model",
      join(work, "model.json"),
      "--tiles",
      join(work, "tiles"),
      "--reference",
      join(data, "training_data.gtif"),
      "--label-names",
      "1=forest,2=water,3=herbaceous,4=barren,5=urban",
    ];
    const full = lanemap(...base);
    assert.equal(full.status, 0, full.stderr);
    const e = JSON.parse(full.stdout) as {
      method: string;
      samples: number;
      oa: number;
      kappa: number;
      confusion: { classes: string[]; matrix: number[][] };
      perClass: { class: string; producers: number; users: number; f1: number }[];
    };
    assert.equal(e.method, "model");
    assert.equal(e.samples, 718);
    assert.deepEqual(e.confusion.classes, ["barren", "forest", "herbaceous", "urban", "water"]);
    assert.equal(
      e.confusion.matrix.flat().reduce((s, v) => s + v, 0),
      718,
    );
    assert.ok(e.oa > 0.9 && e.kappa > 0.85, `oa ${e.oa}, kappa ${e.kappa}`);
    assert.equal(e.perClass.length, 5);

    const holdout = JSON.parse(lanemap(...base, "--holdout", "0.3", "--seed", "1").stdout) as {
      method: string;
      samples: number;
      trainSamples: number;
    };
    assert.equal(holdout.method, "holdout");
    assert.equal(holdout.samples + holdout.trainSamples, 718);
    const again = JSON.parse(lanemap(...base, "--holdout", "0.3", "--seed", "1").stdout) as unknown;
    assert.deepEqual(again, holdout);

    const folds = JSON.parse(lanemap(...base, "--folds", "5").stdout) as {
      method: string;
      samples: number;
      folds: unknown[];
    };
    assert.equal(folds.method, "folds");
    assert.equal(folds.samples, 718);
    assert.equal(folds.folds.length, 5);
  });
});

describe("lanemap train, classify and evaluate on bad input", () => {
  let work = "";
  before(() => {
    work = mkdtempSync(join(tmpdir(), "lanemap-cli-core-bad-"));
    mkdirSync(join(work, "tiles"));
    // A small 4-band UTM tile: pixel values grow left to right, so the two halves differ.
    const width = 12;
    const height = 8;
    const bands = [1, 2, 3, 4].map((b) =>
      Uint16Array.from({ length: width * height }, (_, p) => 100 * b + (p % width) * 50),
    );
    const gt = [462405, 30, 0, 1741815, 0, -30] as const;
    writeFileSync(
      join(work, "tiles", "tile.tif"),
      encodeGeoTiff({ width, height, bands, geoTransform: gt, epsg: 32615 }),
    );
    writeFileSync(
      join(work, "two-bands.tif"),
      encodeGeoTiff({ width, height, bands: bands.slice(0, 2), geoTransform: gt, epsg: 32615 }),
    );
    writeFileSync(join(work, "not-a-tiff.tif"), "this is not a TIFF\n");
    const square = (c0: number, c1: number): number[][] => [
      [gt[0] + c0 * 30 + 5, gt[3] - 5],
      [gt[0] + c1 * 30 + 25, gt[3] - 5],
      [gt[0] + c1 * 30 + 25, gt[3] - 7 * 30 - 25],
      [gt[0] + c0 * 30 + 5, gt[3] - 7 * 30 - 25],
      [gt[0] + c0 * 30 + 5, gt[3] - 5],
    ];
    const polygons = (property: string) => ({
      type: "FeatureCollection",
      crs: { type: "name", properties: { name: "urn:ogc:def:crs:EPSG::32615" } },
      features: [
        {
          type: "Feature",
          properties: { [property]: "west" },
          geometry: { type: "Polygon", coordinates: [square(0, 3)] },
        },
        {
          type: "Feature",
          properties: { [property]: "east" },
          geometry: { type: "Polygon", coordinates: [square(8, 11)] },
        },
      ],
    });
    writeFileSync(join(work, "labels.geojson"), JSON.stringify(polygons("class")));
    writeFileSync(join(work, "other-property.geojson"), JSON.stringify(polygons("landcover")));
    writeFileSync(join(work, "broken.geojson"), "{ not json");
    const r = lanemap(
      "train",
      "--tiles",
      join(work, "tiles"),
      "--train",
      join(work, "labels.geojson"),
      "--out",
      join(work, "model.json"),
      "--json",
    );
    assert.equal(r.status, 0, r.stderr);
    const model = JSON.parse(readFileSync(join(work, "model.json"), "utf8")) as { k: number };
    writeFileSync(join(work, "tampered.json"), JSON.stringify({ ...model, k: 3 }));
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("train names a missing --out, a missing tiles folder and a bad --k, exiting 2", () => {
    assertFails(
      lanemap("train", "--tiles", join(work, "tiles"), "--train", join(work, "labels.geojson")),
      2,
      /--out <model\.json> is required/,
    );
    assertFails(
      lanemap(
        "train",
        "--tiles",
        join(work, "absent"),
        "--train",
        join(work, "labels.geojson"),
        "--out",
        join(work, "m.json"),
      ),
      2,
      /--tiles: .*absent does not exist/,
    );
    assertFails(
      lanemap(
        "train",
        "--tiles",
        join(work, "tiles"),
        "--train",
        join(work, "labels.geojson"),
        "--k",
        "zero",
        "--out",
        join(work, "m.json"),
      ),
      2,
      /--k must be a positive integer/,
    );
  });

  test("train names unusable labels: a missing class property, broken JSON, a band that does not exist", () => {
    assertFails(
      lanemap(
        "train",
        "--tiles",
        join(work, "tiles"),
        "--train",
        join(work, "other-property.geojson"),
        "--out",
        join(work, "m.json"),
      ),
      1,
      /feature 1 has no "class" property/,
    );
    assertFails(
      lanemap(
        "train",
        "--tiles",
        join(work, "tiles"),
        "--train",
        join(work, "broken.geojson"),
        "--out",
        join(work, "m.json"),
      ),
      1,
      /broken\.geojson is not valid JSON/,
    );
    assertFails(
      lanemap(
        "train",
        "--tiles",
        join(work, "tiles"),
        "--train",
        join(work, "labels.geojson"),
        "--nir",
        "7",
        "--out",
        join(work, "m.json"),
      ),
      2,
      /nir band 7 does not exist: the raster has 4 bands/,
    );
  });

  test("classify refuses a changed model, a file that is not a TIFF and a tile of another layout, exiting 1", () => {
    assertFails(
      lanemap("classify", join(work, "tiles", "tile.tif"), "--model", join(work, "tampered.json")),
      1,
      /model field version/,
    );
    assertFails(
      lanemap("classify", join(work, "not-a-tiff.tif"), "--model", join(work, "model.json")),
      1,
      /not-a-tiff\.tif: /,
    );
    assertFails(
      lanemap("classify", join(work, "two-bands.tif"), "--model", join(work, "model.json")),
      1,
      /the raster has 2 bands/,
    );
    assertFails(lanemap("classify", join(work, "tiles", "tile.tif")), 2, /--model <model\.json> is required/);
  });

  test("evaluate refuses --holdout with --folds and a hold-out fraction outside (0, 1), exiting 2", () => {
    const base = [
      "evaluate",
      "--model",
      join(work, "model.json"),
      "--tiles",
      join(work, "tiles"),
      "--reference",
      join(work, "labels.geojson"),
    ];
    assertFails(lanemap(...base, "--holdout", "0.3", "--folds", "5"), 2, /either --holdout or --folds/);
    assertFails(lanemap(...base, "--holdout", "1.5"), 2, /--holdout must be a fraction between 0 and 1/);
    const ok = lanemap(...base);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { oa: number }).oa, 1);
  });
});
