import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { DuckDBBlobValue } from "@duckdb/node-api";
import { tableFromIPC } from "apache-arrow";
import { addArchiveFolder, createBatchRunner, TileWorkerPool, type RunReport } from "../../batch/index.js";
import { readCurrentBatch, listBatchVersions } from "../../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import {
  BATCH_VIEW_FILES,
  batchManifestSchema,
  classifyTileBytes,
  createClassifier,
  decodeClassRaster,
  registerTile,
  type CatalogueEntry,
} from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { missing, sharedData } from "../helpers/env.js";
import {
  makeDataDir,
  makeSampleSet,
  testLogger,
  type DataDirFixture,
  type SampleSet,
} from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet();
});
after(() => set?.dispose());

async function catalogue(store: { entries(): AsyncGenerator<CatalogueEntry> }): Promise<CatalogueEntry[]> {
  const out: CatalogueEntry[] = [];
  for await (const e of store.entries()) out.push(e);
  return out.sort((a, b) => a.tileId.localeCompare(b.tileId));
}

const sql = (path: string) => `'${path.replaceAll("'", "''")}'`;

describe("a batch run end to end", () => {
  /** One run over the sample, which the first two cases only read (a run costs a pool of threads). */
  let e2e: { fx: DataDirFixture; report: RunReport };
  before(async () => {
    const fx = await makeDataDir(set, "e2e");
    e2e = { fx, report: await createBatchRunner(fx.config(), { logger: fx.logger }).run() };
  });

  test("publishes a view in which every tile equals the direct classification of that tile", async () => {
    const { fx, report } = e2e;
    assert.equal(report.version, "v000001");
    assert.deepEqual(
      { total: report.tiles.total, classified: report.tiles.classified, failed: report.tiles.failed },
      { total: 9, classified: 9, failed: 0 },
    );
    const current = await readCurrentBatch(fx.dataDir);
    assert.equal(current?.name, "v000001");
    const manifest = batchManifestSchema.parse(
      JSON.parse(readFileSync(join(current!.dir, "manifest.json"), "utf8")),
    );
    assert.deepEqual(
      Object.keys(manifest.files).sort(),
      [
        BATCH_VIEW_FILES.duckdb,
        BATCH_VIEW_FILES.model,
        BATCH_VIEW_FILES.parquet,
        BATCH_VIEW_FILES.arrow,
      ].sort(),
    );
    assert.equal(manifest.modelVersion, set.model.version);
    assert.equal(manifest.cells, 9);

    const classifier = createClassifier(set.model);
    const db = await DuckDbDatabase.open(join(current!.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
    try {
      for (const entry of await catalogue(fx.store)) {
        const direct = await classifyTileBytes(
          await fx.store.readObject(entry.contentHash),
          classifier,
          entry,
          "batch",
          {
            maxPixels: 1e8,
          },
        );
        const [row] = await db.allJS<{
          counts: number[];
          dominant_class: number;
          valid_pixels: number;
          mean_confidence: number;
        }>("SELECT counts, dominant_class, valid_pixels, mean_confidence FROM tiles WHERE tile_id = $1", [
          entry.tileId,
        ]);
        assert.ok(row, `tile ${entry.tileId} is in the view`);
        assert.deepEqual(row.counts.map(Number), [...direct.result.counts], `counts of ${entry.tileId}`);
        assert.equal(row.dominant_class, direct.result.dominantClass, `dominant class of ${entry.tileId}`);
        assert.equal(Number(row.valid_pixels), direct.result.validPixels);
        assert.ok(Math.abs(row.mean_confidence - direct.result.meanConfidence) < 1e-12);
        const [stored] = await db.all<{ raster: DuckDBBlobValue; k: number }>(
          "SELECT raster, k FROM rasters WHERE tile_id = $1",
          [entry.tileId],
        );
        const a = decodeClassRaster(stored!.raster.bytes, entry.width, entry.height, stored!.k);
        const b = decodeClassRaster(direct.raster, entry.width, entry.height, direct.k);
        assert.deepEqual(Buffer.from(a.classes), Buffer.from(b.classes), `class raster of ${entry.tileId}`);
        assert.deepEqual(Buffer.from(a.votes), Buffer.from(b.votes));
      }
      const classes = await db.allJS<{ id: number; name: string }>(
        "SELECT id, name FROM classes ORDER BY id",
      );
      assert.deepEqual(
        classes.map((c) => c.name),
        set.model.classes.map((c) => c.name),
      );
    } finally {
      db.closeSync();
    }
  });

  test("the Arrow and Parquet exports hold exactly the rows of the DuckDB tiles table", async () => {
    const current = (await readCurrentBatch(e2e.fx.dataDir))!;
    const db = await DuckDbDatabase.open(join(current.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
    try {
      const rows = await db.allJS<Record<string, unknown>>("SELECT * FROM tiles ORDER BY tile_id");
      assert.equal(rows.length, 9);
      const parquet = await db.allJS<Record<string, unknown>>(
        `SELECT * FROM read_parquet(${sql(join(current.dir, BATCH_VIEW_FILES.parquet))}) ORDER BY tile_id`,
      );
      assert.deepEqual(parquet, rows);
      const arrow = tableFromIPC(readFileSync(join(current.dir, BATCH_VIEW_FILES.arrow)));
      assert.equal(arrow.numRows, rows.length);
      assert.deepEqual(
        arrow.schema.fields.map((f) => f.name),
        Object.keys(rows[0]!),
      );
      const norm = (v: unknown): unknown =>
        v instanceof Date
          ? v.getTime()
          : typeof v === "bigint"
            ? Number(v)
            : v !== null && typeof v === "object" && Symbol.iterator in v
              ? [...(v as Iterable<unknown>)].map(norm)
              : v;
      rows.forEach((row, i) => {
        const a = arrow.get(i)!.toJSON() as Record<string, unknown>;
        for (const [key, value] of Object.entries(row))
          assert.deepEqual(norm(a[key]), norm(value), `row ${i}, ${key}`);
      });
    } finally {
      db.closeSync();
    }
  });

  test("an unchanged archive is reused whole, a new acquisition is the only tile classified, and --full recomputes all", async () => {
    const fx = await makeDataDir(set, "incremental");
    const runner = createBatchRunner(fx.config(), { logger: fx.logger });
    const first = await runner.run();
    assert.equal(first.tiles.classified, 9);

    const again = await runner.run();
    assert.deepEqual([again.tiles.classified, again.tiles.reused, again.workers], [0, 9, 0]);

    // A new, later acquisition of cell c0001r0001: the cell's view must switch to it.
    const fresh = generateTile({
      seed: 7,
      col: 1,
      row: 1,
      tileSize: 64,
      acquired: "2031-06-01T10:00:00.000Z",
    });
    const dir = join(set.root, "fresh-acq");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${fresh.cell}.tif`), fresh.bytes);
    const added = await addArchiveFolder(fx.store, dir, { logger: fx.logger, maxPixels: 1e8 });
    assert.equal(added.added, 1);
    const third = await runner.run();
    assert.deepEqual([third.tiles.total, third.tiles.classified, third.tiles.reused], [10, 1, 9]);
    assert.equal(third.cells, 9);
    const db = await DuckDbDatabase.open(join(third.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
    try {
      const [cell] = await db.all<{ tile_id: string }>("SELECT tile_id FROM cells WHERE cell = $1", [
        fresh.cell,
      ]);
      assert.match(cell!.tile_id, /^c0001r0001-2031/);
      const [n] = await db.all<{ n: bigint }>("SELECT count(*) AS n FROM tiles WHERE reused");
      assert.equal(Number(n!.n), 9);
    } finally {
      db.closeSync();
    }

    const full = await runner.run({ full: true });
    assert.deepEqual([full.tiles.classified, full.tiles.reused], [10, 0]);
    assert.deepEqual(
      (await listBatchVersions(fx.dataDir)).map((v) => v.name),
      ["v000002", "v000003", "v000004"],
      "retention keeps the newest three",
    );
  });

  test("only catalogue entries at or below the watermark are in a run", async () => {
    const fx = await makeDataDir(set, "watermark");
    const streamed = generateTile({
      seed: 7,
      col: 2,
      row: 0,
      tileSize: 64,
      acquired: "2032-01-01T00:00:00.000Z",
    });
    await registerTile(fx.store, streamed.bytes, {
      ingestSeq: 5,
      source: "stream",
      fileName: `${streamed.cell}.tif`,
    });
    let floor = 3;
    const runner = createBatchRunner(fx.config(), { logger: fx.logger, watermark: () => floor });
    const low = await runner.run();
    assert.deepEqual([low.watermark, low.tiles.total, low.tiles.excluded], [3, 9, 1]);
    floor = 100;
    const high = await runner.run();
    assert.deepEqual(
      [high.watermark, high.tiles.total, high.tiles.excluded, high.tiles.classified],
      [5, 10, 0, 1],
    );
    const manifest = (await readCurrentBatch(fx.dataDir))!.manifest;
    assert.equal(manifest.watermark, 5);
  });

  test("trigger runs in the background with statuses, and a second trigger meanwhile is refused with BATCH_RUN_ACTIVE", async () => {
    const fx = await makeDataDir(set, "trigger");
    const runner = createBatchRunner(fx.config(), {
      logger: fx.logger,
      hooks: { tileDelayMs: 100, publishDelayMs: 0 },
    });
    const { runId } = await runner.trigger({ order: "natural" });
    assert.ok(["queued", "running"].includes(runner.status(runId)!.state));
    assert.equal(runner.current()?.runId, runId);
    await assert.rejects(runner.trigger(), { code: "BATCH_RUN_ACTIVE" });
    await assert.rejects(runner.run(), { code: "BATCH_RUN_ACTIVE" });
    while (["queued", "running"].includes(runner.status(runId)!.state))
      await new Promise((r) => setTimeout(r, 50));
    const done = runner.status(runId)!;
    assert.equal(done.state, "succeeded", JSON.stringify(done.error));
    assert.equal(done.report?.order, "natural");
    assert.deepEqual(done.progress, { done: 9, total: 9, failed: 0 });
    assert.equal(runner.current(), undefined);
  });

  test("a failed run is reported with its error and publishes nothing", async () => {
    const fx = await makeDataDir(set, "failing");
    const runner = createBatchRunner(fx.config(), { logger: fx.logger });
    const { runId } = await runner.trigger({ model: join(set.root, "no-such-model.json") });
    while (["queued", "running"].includes(runner.status(runId)!.state))
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(runner.status(runId)!.state, "failed");
    assert.equal(runner.status(runId)!.error?.code, "MODEL_NOT_FOUND");
    assert.equal(await readCurrentBatch(fx.dataDir), null);
  });

  test("bad files are recorded with their reason at load time and never stop the load", async (t) => {
    const reason = missing({ shared: true });
    if (reason) return t.skip(reason);
    const fx = await makeDataDir(set, "bad");
    const dir = join(set.root, "with-broken");
    mkdirSync(dir, { recursive: true });
    for (const name of ["corrupt.tif", "no_ifd0.tif", "wrong_version.tif", "fuzz_oom_000000.tif"])
      copyFileSync(sharedData("broken", name)!, join(dir, name));
    copyFileSync(join(set.tilesDir, "c0000r0000.tif"), join(dir, "c0000r0000.tif"));
    const report = await addArchiveFolder(fx.store, dir, { logger: fx.logger, maxPixels: 1e8 });
    assert.deepEqual([report.files, report.added, report.present, report.bad.length], [5, 0, 1, 4]);
    const recorded: { key: string; code: string; reason: string }[] = [];
    for await (const b of fx.store.badTiles()) recorded.push(b);
    assert.deepEqual(
      recorded.map((b) => [b.key, b.code, b.reason]).sort(),
      report.bad.map((b) => [b.file, b.code, b.reason]).sort(),
    );
    for (const b of report.bad) assert.ok(b.reason.length > 0 && b.code === "TILE_DECODE", JSON.stringify(b));
  });

  test("a tile that fails at classification is recorded in the failures table and the manifest, and the run publishes the rest", async () => {
    const fx = await makeDataDir(set, "misfit");
    // A valid GeoTIFF with 4 bands where the model needs 6: it registers, then cannot be classified.
    const misfit = generateTile({
      seed: 7,
      col: 5,
      row: 5,
      tileSize: 64,
      bands: 4,
      acquired: "2030-01-01T00:00:00.000Z",
    });
    await registerTile(fx.store, misfit.bytes, {
      ingestSeq: 0,
      source: "bulk",
      fileName: `${misfit.cell}.tif`,
    });
    const run = await createBatchRunner(fx.config(), { logger: fx.logger }).run();
    assert.deepEqual([run.tiles.total, run.tiles.classified, run.tiles.failed], [10, 9, 1]);
    assert.equal(run.failures[0]?.tileId, "c0005r0005-20300101T000000Z");
    assert.equal(run.failures[0]?.code, "TILE_INVALID");
    const manifest = (await readCurrentBatch(fx.dataDir))!.manifest;
    assert.deepEqual(manifest.failures, run.failures);
    assert.equal(manifest.tiles.failed, 1);
    const db = await DuckDbDatabase.open(join(run.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
    try {
      const failures = await db.allJS<{ tile_id: string; code: string; reason: string }>(
        "SELECT * FROM failures",
      );
      assert.deepEqual(
        failures.map((f) => [f.tile_id, f.code, f.reason]),
        run.failures.map((f) => [f.tileId, f.code, f.reason]),
      );
      const [n] = await db.all<{ n: bigint }>("SELECT count(*) AS n FROM tiles");
      assert.equal(Number(n!.n), 9);
    } finally {
      db.closeSync();
    }
    const again = await createBatchRunner(fx.config(), { logger: fx.logger }).run();
    assert.deepEqual(
      [again.tiles.reused, again.tiles.failed],
      [9, 1],
      "failed tiles are retried, not reused",
    );
  });
});

describe("the tile worker pool", () => {
  test("a tile over its deadline is tried once more on a fresh thread, then failed with DEADLINE, its workers replaced, and the pool goes on", async () => {
    const fx = await makeDataDir(set, "deadline");
    const entries = await catalogue(fx.store);
    const lines: { msg: string }[] = [];
    const pool = await TileWorkerPool.start({
      size: 1,
      workerData: { dataDir: fx.dataDir, modelPath: set.modelPath, maxPixels: 1e8, tileDelayMs: 8000 },
      // The base bounds a replacement's warm-up (its model load) too: 300 ms failed it once at load 15.
      deadline: { decodeTimeoutMs: 2000, decodeMsPerMsample: 0 },
      logger: testLogger(lines),
    });
    try {
      const first = await pool.process(entries[0]!);
      assert.deepEqual([first.ok, !first.ok && first.code], [false, "DEADLINE"]);
      assert.match(
        !first.ok ? first.reason : "",
        /within the 2000 ms \(2000 ms base \+ 0\.0246 Msample × 0 ms\)/,
      );
      const second = await pool.process(entries[1]!);
      assert.deepEqual([second.ok, !second.ok && second.code], [false, "DEADLINE"]);
      // Each tile missed its deadline twice: a first miss says more about the moment than the tile.
      assert.equal(pool.replaced, 4);
      assert.equal(lines.filter((l) => l.msg.startsWith("tile over its deadline")).length, 4);
      assert.equal(
        lines.filter((l) => l.msg.startsWith("tile missed its deadline: trying it once more")).length,
        2,
      );
    } finally {
      await pool.close();
    }
  });

  test("a model that cannot be loaded fails the pool's start with WORKER_START", async () => {
    const broken = join(set.root, "broken-model.json");
    writeFileSync(broken, "{}");
    await assert.rejects(
      TileWorkerPool.start({
        size: 1,
        workerData: { dataDir: set.root, modelPath: broken, maxPixels: 1e8, tileDelayMs: 0 },
        deadline: { decodeTimeoutMs: 1000, decodeMsPerMsample: 0 },
        logger: testLogger(),
      }),
      { code: "WORKER_START" },
    );
  });
});
