/**
 * `lanemap train` on a point set partly outside the scene and partly under nodata, as a field campaign's
 * always is: it trains on what falls inside, reports what it left out, and takes the same samples the
 * peer (../shared/peer, rasterio + scikit-learn) takes; `--strict` keeps the old refusal.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { missing, peerScript, projectRoot, sharedData } from "../helpers/env.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

function lanemap(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", cwd: projectRoot });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Per-class sample counts of the peer's own `training_samples` on the same tiles and labels. */
const PEER_SAMPLES = `
import collections, json, sys, types
sys.path.insert(0, sys.argv[1])
import thematic_map
args = types.SimpleNamespace(train=sys.argv[3], labels=None, red=1, nir=2)
tiles = [sys.argv[2]]
x, names = thematic_map.training_samples(tiles, args)
print(json.dumps(dict(collections.Counter(names.tolist()))))
`;

describe(
  "lanemap train on labels partly outside the tiles and on nodata",
  { skip: missing({ shared: true, peer: true }) },
  () => {
    let work = "";
    let tile = "";
    let labelsFile = "";
    before(() => {
      work = mkdtempSync(join(tmpdir(), "lanemap-train-partial-"));
      const script = sharedData("field", "make_f32_nodata.py") as string;
      const r = spawnSync("/usr/bin/python3", [script], { cwd: work, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      mkdirSync(join(work, "tiles"));
      tile = join(work, "tiles", "tile.tif");
      renameSync(join(work, "f32_nodata", "tile.tif"), tile);
      const points = JSON.parse(readFileSync(join(work, "f32_nodata", "points.geojson"), "utf8")) as {
        features: { properties: { class: string }; geometry: { coordinates: number[] } }[];
      };
      // The tile spans x 500000..500240, y 1799760..1800000 (30 m pixels); pixels (0..3, 0) are nodata.
      const at = (name: string, x: number, y: number): object => ({
        type: "Feature",
        properties: { class: name },
        geometry: { type: "Point", coordinates: [x, y] },
      });
      points.features.push(
        at("a", 500015, 1799985) as never, // on a nodata pixel
        at("b", 510000, 1799900) as never, // 10 km east
        at("c", 490000, 1790000) as never, // the only "c", outside
      );
      labelsFile = join(work, "points.geojson");
      writeFileSync(labelsFile, JSON.stringify(points));
    });
    after(() => rmSync(work, { recursive: true, force: true }));

    test("trains on the points inside and reports the ones outside and on nodata, in --json", () => {
      const out = join(work, "model.json");
      const r = lanemap(
        "train",
        "--tiles",
        join(work, "tiles"),
        "--train",
        labelsFile,
        "--red",
        "1",
        "--nir",
        "2",
        "--k",
        "1",
        "--out",
        out,
        "--json",
      );
      assert.equal(r.status, 0, r.stderr);
      const summary = JSON.parse(r.stdout) as {
        samples: number;
        classes: { name: string; samples: number }[];
        labels: Record<string, unknown>;
      };
      const { lostToNodata, ...counts } = summary.labels as { lostToNodata: { onNodata: number }[] };
      // The one pixel on nodata is named by its label.
      assert.equal(lostToNodata.length, 1);
      assert.equal(lostToNodata[0]?.onNodata, 1);
      assert.deepEqual(counts, {
        features: 9,
        featuresOutside: 2,
        points: 9,
        pointsOutside: 2,
        labelledPixels: 7,
        onNodata: 1,
        classesWithoutSamples: ["c"],
      });
      assert.equal(summary.samples, 6);
      assert.deepEqual(
        summary.classes.map((c) => c.name),
        ["a", "b"],
      );
      const peer = spawnSync(
        "/usr/bin/python3",
        ["-c", PEER_SAMPLES, dirname(peerScript() as string), tile, labelsFile],
        {
          encoding: "utf8",
        },
      );
      assert.equal(peer.status, 0, peer.stderr);
      const peerCounts = JSON.parse(peer.stdout) as Record<string, number>;
      assert.deepEqual(
        Object.fromEntries(summary.classes.map((c) => [c.name, c.samples])),
        peerCounts,
        "the peer's samples",
      );
    });

    test("says in the human summary what it left out", () => {
      const r = lanemap(
        "train",
        "--tiles",
        join(work, "tiles"),
        "--train",
        labelsFile,
        "--red",
        "1",
        "--nir",
        "2",
        "--k",
        "1",
        "--out",
        join(work, "m2.json"),
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /left out: 2 of 9 features outside every tile/);
      assert.match(r.stdout, /left out: 1 of 7 labelled pixels on nodata/);
      assert.match(r.stdout, /classes without samples \(not in the model\): "c"/);
    });

    test("--strict refuses the labels when any feature lies outside every tile", () => {
      const r = lanemap(
        "train",
        "--tiles",
        join(work, "tiles"),
        "--train",
        labelsFile,
        "--red",
        "1",
        "--nir",
        "2",
        "--k",
        "1",
        "--strict",
        "--out",
        join(work, "m3.json"),
      );
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /2 of 9 features \(first: feature 8, class "b"\) lie outside every tile/);
    });
  },
);
