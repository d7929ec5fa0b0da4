/**
 * Progressive publish: a run asked for an interim view classifies the viewport's tiles first,
 * publishes a view that carries the current view's rows for every other tile (each keeping its own
 * model version), and then publishes the final view with the new model everywhere. Real sample
 * GeoTIFFs, real DuckDB files, real worker threads.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createBatchRunner } from "../../batch/index.js";
import { listBatchVersions, readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import {
  BATCH_VIEW_FILES,
  batchManifestSchema,
  createFeatureSpec,
  dataPaths,
  decodeGeoTiff,
  saveModelFile,
  trainModel,
  type CatalogueEntry,
  type Model,
} from "../../shared/index.js";
import { SAMPLE_NIR_BAND, SAMPLE_RED_BAND } from "../../sample/index.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
/** A second model over the same archive (k = 3): what the analyst retrained and activated. */
let modelB: Model;
let modelBPath: string;
before(async () => {
  set = await makeSampleSet();
  const names = readdirSync(set.tilesDir)
    .filter((n) => n.endsWith(".tif"))
    .sort();
  const rasters = await Promise.all(
    names.map((n) => decodeGeoTiff(new Uint8Array(readFileSync(join(set.tilesDir, n))))),
  );
  modelB = trainModel(
    rasters,
    { kind: "geojson", geojson: JSON.parse(readFileSync(join(set.sampleDir, "training.geojson"), "utf8")) },
    {
      features: createFeatureSpec(rasters[0]!.bandCount, { red: SAMPLE_RED_BAND, nir: SAMPLE_NIR_BAND }),
      source: "training.geojson",
      tileNames: names,
      k: 3,
    },
  );
  modelBPath = join(set.root, `model-${modelB.version}.json`);
  await saveModelFile(modelBPath, modelB);
});
after(() => set?.dispose());

interface Row {
  tile_id: string;
  model_version: string;
  counts: string;
  reused: boolean;
}

async function viewRows(dir: string): Promise<Map<string, Row>> {
  const db = await DuckDbDatabase.open(join(dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
  try {
    const rows = await db.all<Row>(
      "SELECT tile_id, model_version, counts::VARCHAR AS counts, reused FROM tiles ORDER BY tile_id",
    );
    return new Map(rows.map((r) => [r.tile_id, r]));
  } finally {
    db.closeSync();
  }
}

async function viewCells(dir: string): Promise<number> {
  const db = await DuckDbDatabase.open(join(dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
  try {
    const [row] = await db.all<{ n: bigint }>("SELECT count(*) AS n FROM cells");
    return Number(row?.n ?? 0n);
  } finally {
    db.closeSync();
  }
}

async function catalogue(store: { entries(): AsyncGenerator<CatalogueEntry> }): Promise<CatalogueEntry[]> {
  const out: CatalogueEntry[] = [];
  for await (const e of store.entries()) out.push(e);
  return out;
}

describe("a progressive batch run", () => {
  test("publishes an interim view with the new model in the viewport and the previous view elsewhere, then the final view", async () => {
    const fx = await makeDataDir(set, "progressive");
    const lines: { msg: string; [k: string]: unknown }[] = [];
    const runner = createBatchRunner(fx.config(), { logger: testLogger(lines) });
    const first = await runner.run({ model: set.modelPath });
    assert.equal(first.version, "v000001");

    // The viewport: the bounds of the tiles of the bottom-left 2×2 cells of the 3×3 archive.
    const entries = await catalogue(fx.store);
    const inView = entries.filter((e) => /^c000[01]r000[01]$/.test(e.cell));
    assert.equal(inView.length, 4);
    const b = inView.map((e) => e.boundsWgs84!);
    const viewport = {
      minLon: Math.min(...b.map((x) => x.minX)) + 1e-9,
      minLat: Math.min(...b.map((x) => x.minY)) + 1e-9,
      maxLon: Math.max(...b.map((x) => x.maxX)) - 1e-9,
      maxLat: Math.max(...b.map((x) => x.maxY)) - 1e-9,
    };
    const viewportIds = new Set(inView.map((e) => e.tileId));

    const report = await runner.run({
      model: modelBPath,
      around: `${(viewport.minLon + viewport.maxLon) / 2},${(viewport.minLat + viewport.maxLat) / 2}`,
      interim: { viewport },
    });
    assert.deepEqual(report.interim, { version: "v000002", tiles: 4, carried: 5 });
    assert.equal(report.version, "v000003", "the final view comes after the interim one");
    assert.equal(report.tiles.classified, 9, "every tile is classified once");

    const versions = await listBatchVersions(fx.dataDir);
    const interim = versions.find((v) => v.name === "v000002")!;
    assert.deepEqual(interim.manifest.carried, {
      tiles: 5,
      fromVersion: "v000001",
      modelVersions: [set.model.version, modelB.version].sort(),
    });
    assert.equal(interim.manifest.modelVersion, modelB.version);
    assert.equal(interim.manifest.watermark, report.watermark, "the interim view has the run's watermark");
    assert.deepEqual(interim.manifest.tiles, { total: 9, classified: 4, reused: 0, failed: 0 });

    const v1 = await viewRows(versions.find((v) => v.name === "v000001")!.dir);
    const v2 = await viewRows(interim.dir);
    const v3 = await viewRows(report.dir);
    assert.equal(v2.size, 9, "the interim view has one row per tile: none lost, none twice");
    assert.equal(await viewCells(interim.dir), 9);
    for (const [id, row] of v2) {
      if (viewportIds.has(id)) {
        assert.equal(row.model_version, modelB.version, `${id} is in the viewport: the new model's`);
        assert.equal(row.reused, false);
        assert.deepEqual(row, v3.get(id), `${id}: the final view keeps the interim's result`);
      } else {
        assert.deepEqual(row, { ...v1.get(id)!, reused: true }, `${id} is carried from v000001 as it was`);
      }
    }
    assert.equal(v3.size, 9);
    for (const [id, row] of v3) assert.equal(row.model_version, modelB.version, `${id} in the final view`);

    const final = batchManifestSchema.parse(
      JSON.parse(readFileSync(join(report.dir, BATCH_VIEW_FILES.manifest), "utf8")),
    );
    assert.equal(final.carried, undefined, "the final view carries nothing");
    assert.equal((await readCurrentBatch(fx.dataDir))?.name, "v000003");
    assert.deepEqual(readdirSync(dataPaths(fx.dataDir).batchStaging), [], "no staging folder is left");

    // The interim's legend names the classes of both models (one catalogue, so ids agree).
    const db = await DuckDbDatabase.open(join(interim.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
    try {
      const classes = await db.all<{ id: number; name: string }>("SELECT id, name FROM classes ORDER BY id");
      assert.deepEqual(
        classes,
        modelB.classes.map((c) => ({ id: c.id, name: c.name })),
      );
    } finally {
      db.closeSync();
    }
    const order = lines.map((l) => l.msg).filter((m) => /^batch (interim view|view) published/.test(m));
    assert.deepEqual(order, [
      "batch view published", // v000001
      "batch view published", // v000002, by the same publisher as every view
      "batch interim view published",
      "batch view published", // v000003
    ]);
  });

  test("publishes no interim view when there is no current view to carry from", async () => {
    const fx = await makeDataDir(set, "progressive-first");
    const runner = createBatchRunner(fx.config(), { logger: fx.logger });
    const report = await runner.run({ model: modelBPath, interim: { tiles: 2 } });
    assert.equal(report.interim, undefined);
    assert.equal(report.version, "v000001");
  });
});
