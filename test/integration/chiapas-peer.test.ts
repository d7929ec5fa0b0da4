/**
 * lanemap against the PyData peer (../shared/peer/thematic_map.py: rasterio + scikit-learn) on the
 * Chiapas Landsat 7 stack and its 30 labelled polygons: the same features bit for bit, the same
 * training pixels, the same class raster (>= 99.9% of pixels), and the same accuracy against the
 * label raster, both for the full model and for a seeded stratified hold-out.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  assessAccuracy,
  collectSamples,
  computeFeatures,
  confusionMatrix,
  createClassifier,
  createFeatureSpec,
  createRandom,
  decodeGeoTiff,
  encodeGeoTiff,
  labelledGeometries,
  modelFromSamples,
  polygonPixels,
  stratifiedSplit,
  subsetSamples,
  trainModel,
  type AccuracyReport,
  type GeoTransform,
  type Raster,
} from "../../shared/internal.js";
import { missing, peerScript, sharedData } from "../helpers/env.js";

const skip = missing({ shared: true, peer: true });
const STACK = "LE70220491999322EDC01_stack";
/** The label raster's codes (see ../shared/data/README.md). */
const CODES: Record<string, string> = {
  "1": "forest",
  "2": "water",
  "3": "herbaceous",
  "4": "barren",
  "5": "urban",
};

const HELPER = String.raw`
import importlib.util, json, sys
import numpy as np, rasterio.features
from affine import Affine
peer_path, stack, polygons, cases, out = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("peer", peer_path)
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
x, valid, profile, transform = peer.read_features(stack, 3, 4)
np.ascontiguousarray(x, dtype="<f8").tofile(out + "/features.bin")
valid.astype("u1").tofile(out + "/valid.bin")
h, w = valid.shape
def mask(geometry, shape, t):
    m = rasterio.features.geometry_mask([geometry], shape, t, invert=True)
    return np.flatnonzero(m.ravel()).tolist()
masks = [mask(ft["geometry"], (h, w), transform) for ft in json.load(open(polygons))["features"]]
synthetic = [mask({"type": "Polygon", "coordinates": c["rings"]}, (c["height"], c["width"]), Affine.from_gdal(*c["gt"])) for c in json.load(open(cases))]
json.dump({"masks": masks, "synthetic": synthetic}, open(out + "/masks.json", "w"))
`;

interface Case {
  gt: GeoTransform;
  width: number;
  height: number;
  rings: [number, number][][];
}

/**
 * Polygons that probe the scanline fill's edge cases: vertices often on pixel corners or centres
 * (edges along rows of pixel centres), both orientations, holes, north-up and south-up grids.
 */
function syntheticCases(count: number): Case[] {
  const rng = createRandom("rasterise-cases");
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const size = [1, 30, 0.5][rng.int(3)] as number;
    const northUp = rng.next() < 0.75;
    const gt: GeoTransform = northUp
      ? [1000 * rng.int(50), size, 0, 5000 + 100 * rng.int(50), 0, -size]
      : [0, size, 0, 0, 0, size];
    const width = 6 + rng.int(6);
    const height = 6 + rng.int(6);
    const coordinate = (v: number): number => (rng.next() < 0.6 ? Math.round(v * 2) / 2 : v);
    const star = (cx: number, cy: number, r0: number, r1: number, n: number): [number, number][] => {
      const angles = Array.from({ length: n }, () => rng.next() * 2 * Math.PI).sort((a, b) => a - b);
      const ring = angles.map((a): [number, number] => {
        const r = r0 + rng.next() * (r1 - r0);
        return [coordinate(cx + r * Math.cos(a)), coordinate(cy + r * Math.sin(a))];
      });
      if (rng.next() < 0.5) ring.reverse();
      return [...ring, ring[0] as [number, number]];
    };
    const cx = 1 + rng.next() * (width - 2);
    const cy = 1 + rng.next() * (height - 2);
    const pixelRings = [star(cx, cy, 2, 4, 3 + rng.int(6))];
    if (rng.next() < 0.4) pixelRings.push(star(cx, cy, 0.3, 1.2, 3 + rng.int(4)));
    const world = pixelRings.map((ring) =>
      ring.map(([px, py]): [number, number] => [gt[0] + px * gt[1], gt[3] + py * gt[5]]),
    );
    cases.push({ gt, width, height, rings: world });
  }
  return cases;
}

interface PeerRun {
  training_samples: number;
  classes: string[];
}

function runPeer(args: string[]): PeerRun {
  const r = spawnSync("/usr/bin/python3", [peerScript() as string, ...args], { encoding: "utf8" });
  assert.equal(r.status, 0, `peer failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as PeerRun;
}

async function readRaster(path: string): Promise<Raster> {
  return decodeGeoTiff(new Uint8Array(readFileSync(path)));
}

/** OA and kappa of predicted class names against reference names at the given pixels. */
function accuracyByName(reference: readonly string[], predicted: readonly string[]): AccuracyReport {
  const names = [...new Set(Object.values(CODES))].sort();
  const id = (n: string): number => names.indexOf(n) + 1;
  return assessAccuracy(
    confusionMatrix(
      reference.map(id),
      predicted.map(id),
      names.map((_, i) => i + 1),
    ),
    names,
  );
}

describe("lanemap against the rasterio + scikit-learn peer on Chiapas", { skip }, () => {
  const dataDir = sharedData("chiapas-l7-labels") as string;
  const polygons = join(dataDir, "training_data.geojson");
  let work = "";
  let stack: Raster;
  let labels: Raster;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "lanemap-peer-"));
    // The peer picks up *.tif and *.tiff only; the stack ships as .gtif.
    mkdirSync(join(work, "tiles"));
    copyFileSync(join(dataDir, `${STACK}.gtif`), join(work, "tiles", `${STACK}.tif`));
    stack = await readRaster(join(dataDir, `${STACK}.gtif`));
    labels = await readRaster(join(dataDir, "training_data.gtif"));
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("computes the peer's features bit for bit and rasterises polygons as rasterio does", () => {
    const cases = syntheticCases(300);
    writeFileSync(join(work, "cases.json"), JSON.stringify(cases));
    const r = spawnSync(
      "/usr/bin/python3",
      [
        "-c",
        HELPER,
        peerScript() as string,
        join(work, "tiles", `${STACK}.tif`),
        polygons,
        join(work, "cases.json"),
        work,
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    const theirs = new Float64Array(new Uint8Array(readFileSync(join(work, "features.bin"))).buffer);
    const theirValid = new Uint8Array(readFileSync(join(work, "valid.bin")));
    const ours = computeFeatures(stack, createFeatureSpec(8, { red: 3, nir: 4 }));
    assert.deepEqual(ours.valid, theirValid);
    // The peer keeps features of invalid pixels, lanemap zeroes them: every pixel is valid here.
    assert.equal(ours.validCount, stack.width * stack.height);
    assert.deepEqual(ours.data, theirs);

    const { masks, synthetic } = JSON.parse(readFileSync(join(work, "masks.json"), "utf8")) as {
      masks: number[][];
      synthetic: number[][];
    };
    const geoms = labelledGeometries(JSON.parse(readFileSync(polygons, "utf8")));
    const gt = stack.geoTransform as GeoTransform;
    geoms.forEach((g, i) => {
      assert.deepEqual(
        Array.from(polygonPixels(g.parts, gt, stack.width, stack.height)),
        masks[i],
        `polygon ${i + 1}`,
      );
    });
    assert.equal(
      masks.reduce((sum, m) => sum + m.length, 0),
      718,
    );
    cases.forEach((c, i) => {
      assert.deepEqual(
        Array.from(polygonPixels(c.rings, c.gt, c.width, c.height)),
        synthetic[i],
        `case ${i}: ${JSON.stringify(c)}`,
      );
    });
  });

  test("classifies the stack as the peer does on at least 99.9% of pixels, with the same accuracy", async (t) => {
    const out = join(work, "peer-polygons");
    const peer = runPeer([
      "--tiles",
      join(work, "tiles"),
      "--train",
      polygons,
      "--red",
      "3",
      "--nir",
      "4",
      "--out",
      out,
    ]);
    const model = trainModel(
      [stack],
      { kind: "geojson", geojson: JSON.parse(readFileSync(polygons, "utf8")) },
      {
        features: createFeatureSpec(stack.bands.length, { red: 3, nir: 4 }),
        source: "training_data.geojson",
      },
    );
    assert.equal(model.samples.y.length, peer.training_samples);
    assert.deepEqual(
      model.classes.map((c) => c.name),
      peer.classes,
    );

    const ours = createClassifier(model).classify(stack).classes;
    const theirs = (await readRaster(join(out, `${STACK}.classes.tif`))).bands[0] as Uint8Array;
    let same = 0;
    for (let p = 0; p < ours.length; p++) if (ours[p] === theirs[p]) same++;
    const agreement = same / ours.length;
    t.diagnostic(`same class as the peer: ${same} of ${ours.length} pixels`);
    assert.ok(agreement >= 0.999, `agreement ${(agreement * 100).toFixed(3)} %`);

    // Both against the label raster, on its labelled pixels.
    const codes = labels.bands[0] as Uint8Array;
    const reference: string[] = [];
    const oursNames: string[] = [];
    const theirNames: string[] = [];
    for (let p = 0; p < codes.length; p++) {
      const code = codes[p] as number;
      if (code === 0) continue;
      reference.push(CODES[String(code)] as string);
      oursNames.push(model.classes[(ours[p] as number) - 1]?.name ?? "none");
      theirNames.push(peer.classes[(theirs[p] as number) - 1] ?? "none");
    }
    const a = accuracyByName(reference, oursNames);
    const b = accuracyByName(reference, theirNames);
    t.diagnostic(`label raster: OA ${a.oa} kappa ${a.kappa}; peer OA ${b.oa} kappa ${b.kappa}`);
    assert.equal(a.n, 718);
    assert.ok(Math.abs((a.oa as number) - (b.oa as number)) <= 0.02, `OA ${a.oa} vs peer ${b.oa}`);
    assert.ok(
      Math.abs((a.kappa as number) - (b.kappa as number)) <= 0.02,
      `kappa ${a.kappa} vs peer ${b.kappa}`,
    );
  });

  test("matches the peer's accuracy on a seeded stratified hold-out of the label raster", async (t) => {
    const spec = createFeatureSpec(stack.bands.length, { red: 3, nir: 4 });
    const samples = collectSamples([stack], { kind: "raster", raster: labels, names: CODES }, spec);
    const split = stratifiedSplit(samples.y, 0.3, 1);

    // The peer learns from a label raster holding only the training part.
    const trainCodes = new Uint8Array(labels.width * labels.height);
    const codes = labels.bands[0] as Uint8Array;
    for (const i of split.train) {
      const p = samples.pixel[i] as number;
      trainCodes[p] = codes[p] as number;
    }
    const trainTif = join(work, "train-labels.tif");
    writeFileSync(
      trainTif,
      encodeGeoTiff({
        width: labels.width,
        height: labels.height,
        bands: [trainCodes],
        geoTransform: labels.geoTransform,
        epsg: labels.crs?.epsg ?? null,
        nodata: 0,
      }),
    );
    const out = join(work, "peer-holdout");
    const peer = runPeer([
      "--tiles",
      join(work, "tiles"),
      "--labels",
      trainTif,
      "--red",
      "3",
      "--nir",
      "4",
      "--out",
      out,
    ]);
    assert.equal(peer.training_samples, split.train.length);
    const theirs = (await readRaster(join(out, `${STACK}.classes.tif`))).bands[0] as Uint8Array;

    const model = modelFromSamples(subsetSamples(samples, split.train), {
      features: spec,
      source: "hold-out",
    });
    const test = subsetSamples(samples, split.test);
    const ours = createClassifier(model).classifyFeatures(test.x, split.test.length).classes;

    const reference = Array.from(test.y, (c) => samples.classNames[c - 1] as string);
    const oursNames = Array.from(ours, (c) => model.classes[c - 1]?.name ?? "none");
    // The peer names label-raster classes by their codes ("1".."5").
    const theirNames = Array.from(
      split.test,
      (i) => CODES[peer.classes[(theirs[samples.pixel[i] as number] as number) - 1] ?? ""] ?? "none",
    );
    const a = accuracyByName(reference, oursNames);
    const b = accuracyByName(reference, theirNames);
    t.diagnostic(
      `hold-out (${split.test.length} test pixels): OA ${a.oa} kappa ${a.kappa}; peer OA ${b.oa} kappa ${b.kappa}`,
    );
    assert.equal(a.n, split.test.length);
    assert.ok(Math.abs((a.oa as number) - (b.oa as number)) <= 0.02, `OA ${a.oa} vs peer ${b.oa}`);
    assert.ok(
      Math.abs((a.kappa as number) - (b.kappa as number)) <= 0.02,
      `kappa ${a.kappa} vs peer ${b.kappa}`,
    );
  });
});
