/**
 * End-to-end classification throughput: decode + descriptors + kNN for every tile of a generated
 * archive, single thread, against the PyData peer (rasterio + scikit-learn, n_jobs=1) on the same
 * tiles and the same training polygons, in the same run. Both train first; the figure compared is
 * classified pixels per second of the whole job, as the peer reports it.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  createClassifier,
  createFeatureSpec,
  decodeGeoTiff,
  generateArchive,
  trainModel,
} from "../../../shared/index.js";
import { hasPeerPython, peerScript } from "../../helpers/env.js";
import { printTable, writeResults, type Table } from "../harness.js";

export async function runE2eBench(options: { grid?: number; tileSize?: number } = {}): Promise<{
  table: Table;
  results: unknown;
}> {
  const grid = options.grid ?? 4;
  const tileSize = options.tileSize ?? 256;
  const dir = await mkdtemp(join(tmpdir(), "lanemap-bench-e2e-"));
  try {
    await generateArchive({ out: dir, grid: { width: grid, height: grid }, tileSize, seed: 1 });
    const tilesDir = join(dir, "tiles");
    const names = (await readdir(tilesDir)).filter((n) => n.endsWith(".tif")).sort();
    const trainingPath = join(dir, "training.geojson");

    // lanemap: train (decode every tile once for the samples), then classify every tile from bytes.
    const t0 = performance.now();
    const rasters = [];
    for (const n of names)
      rasters.push(await decodeGeoTiff(new Uint8Array(await readFile(join(tilesDir, n)))));
    const model = trainModel(
      rasters,
      { kind: "geojson", geojson: JSON.parse(await readFile(trainingPath, "utf8")) as unknown },
      { features: createFeatureSpec(6, { red: 3, nir: 4 }), source: "training.geojson", tileNames: names },
    );
    rasters.length = 0;
    const classifier = createClassifier(model);
    const tTrain = performance.now() - t0;
    let pixels = 0;
    const t1 = performance.now();
    for (const n of names) {
      const raster = await decodeGeoTiff(new Uint8Array(await readFile(join(tilesDir, n))));
      pixels += classifier.classify(raster).validPixels;
    }
    const tClassify = performance.now() - t1;
    const ours = {
      pixels,
      trainS: tTrain / 1000,
      classifyS: tClassify / 1000,
      pxPerS: pixels / ((tTrain + tClassify) / 1000),
    };

    let peer: { pixels: number; pxPerS: number; seconds: Record<string, number> } | null = null;
    const script = peerScript();
    if (script && hasPeerPython()) {
      const out = join(dir, "peer-out");
      const r = spawnSync(
        "/usr/bin/python3",
        [script, "--tiles", tilesDir, "--train", trainingPath, "--red", "3", "--nir", "4", "--out", out],
        { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" } },
      );
      if (r.status !== 0) throw new Error(`peer failed: ${r.stderr}`);
      const last = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
        pixels: number;
        pixels_per_s: number;
        seconds: Record<string, number>;
      };
      peer = { pixels: last.pixels, pxPerS: last.pixels_per_s, seconds: last.seconds };
    }
    const table: Table = {
      title: `End-to-end classification, ${grid}×${grid} tiles of ${tileSize}² × 6 bands, one thread each`,
      columns: ["implementation", "pixels", "train s", "classify s", "px/s", "× peer"],
      rows: [
        [
          "lanemap",
          ours.pixels,
          ours.trainS,
          ours.classifyS,
          ours.pxPerS,
          peer ? ours.pxPerS / peer.pxPerS : null,
        ],
        ...(peer
          ? [
              [
                "peer (rasterio + sklearn)",
                peer.pixels,
                peer.seconds["train"] ?? null,
                (peer.seconds["total"] ?? 0) - (peer.seconds["train"] ?? 0),
                peer.pxPerS,
                1,
              ] as (string | number | null)[],
            ]
          : [["peer (not installed)", null, null, null, null, null] as (string | number | null)[]]),
      ],
      notes: ["px/s = classified pixels / (train + classify) seconds, as the peer reports its pixels_per_s."],
    };
    return {
      table,
      results: { grid, tileSize, lanemap: ours, peer, ratio: peer ? ours.pxPerS / peer.pxPerS : null },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { table, results } = await runE2eBench();
  printTable(table);
  writeResults("core-e2e", results, [table]);
}
