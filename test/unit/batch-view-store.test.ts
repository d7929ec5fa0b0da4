import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { DuckDBBlobValue } from "@duckdb/node-api";
import { tableFromIPC } from "apache-arrow";
import { rowsToArrowIpc } from "../../batch/arrow-export.js";
import { StagingViewStore } from "../../batch/view-store.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import {
  cellKey,
  createRandom,
  encodeClassRaster,
  type CatalogueEntry,
  type ClassifiedTile,
} from "../../shared/internal.js";

const dir = mkdtempSync(join(tmpdir(), "lanemap-viewstore-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Generated results: `n` tiles over a few cells, some cells with two acquisitions. */
function generate(
  n: number,
  modelVersion: string,
  seed = 1,
): { tiles: ClassifiedTile[]; entries: CatalogueEntry[] } {
  const rnd = createRandom(seed);
  const tiles: ClassifiedTile[] = [];
  const entries: CatalogueEntry[] = [];
  for (let i = 0; i < n; i++) {
    const cell = cellKey(i % 7, 0);
    const acquired = new Date(Date.UTC(2024, 0, 1 + (i % 3), 10, 0, 0, rnd.int(1000))).toISOString();
    const tileId = `tile-${String(i).padStart(3, "0")}`;
    const contentHash = rnd.uint32().toString(16).padStart(64, "a");
    const counts = [rnd.int(50), rnd.int(5000), rnd.int(5000), rnd.int(5000)];
    const classes = new Uint8Array(64 * 64).map(() => rnd.int(4));
    const votes = classes.map((c) => (c ? 1 + rnd.int(5) : 0));
    tiles.push({
      result: {
        lane: "batch",
        tileId,
        cell,
        acquired,
        ingestSeq: i % 4,
        contentHash,
        modelVersion,
        width: 64,
        height: 64,
        geoTransform: [500000 + i * 1920, 30, 0, 4000000, 0, -30],
        epsg: i % 5 === 0 ? null : 32615,
        proj4: i % 5 === 0 ? "+proj=utm +zone=15 +datum=WGS84" : null,
        boundsWgs84:
          i % 6 === 0 ? null : { minX: -93 + i * 0.01, minY: 36, maxX: -92.99 + i * 0.01, maxY: 36.01 },
        validPixels: counts.slice(1).reduce((a, b) => a + b, 0),
        counts,
        areasM2: counts.map((c, k) => (k === 0 ? 0 : c * 900)),
        dominantClass: 1 + rnd.int(3),
        meanConfidence: Math.round(rnd.next() * 1000) / 1000,
        processedAt: new Date(Date.UTC(2024, 5, 1, 0, 0, i)).toISOString(),
      },
      k: 5,
      raster: encodeClassRaster({ width: 64, height: 64, classes, votes, k: 5 }),
    });
    entries.push({ tileId, contentHash } as CatalogueEntry);
  }
  return { tiles, entries };
}

describe("the staging view store", () => {
  test("appended tiles come back identical from DuckDB, the Parquet export and the Arrow export", async () => {
    const { tiles } = generate(40, "m1");
    const store = await StagingViewStore.open(join(dir, "a.duckdb"));
    const parquet = join(dir, "a.parquet");
    let arrowBytes: Uint8Array;
    try {
      await store.appendFinished(tiles.slice(0, 25));
      await store.appendFinished(tiles.slice(25));
      await store.exportParquet(parquet);
      const { columns, rows } = await store.tileRows();
      arrowBytes = rowsToArrowIpc(columns, rows);
    } finally {
      await store.closeCheckpointed();
    }
    const db = await DuckDbDatabase.open(join(dir, "a.duckdb"), { readOnly: true });
    try {
      const dbRows = await db.allJS<Record<string, unknown>>("SELECT * FROM tiles ORDER BY tile_id");
      assert.equal(dbRows.length, 40);
      const pqRows = await db.allJS<Record<string, unknown>>(
        `SELECT * FROM read_parquet('${parquet.replaceAll("'", "''")}') ORDER BY tile_id`,
      );
      assert.deepEqual(pqRows, dbRows);
      const table = tableFromIPC(arrowBytes);
      assert.equal(table.numRows, 40);
      const norm = (v: unknown): unknown =>
        v instanceof Date
          ? v.getTime()
          : typeof v === "bigint"
            ? Number(v)
            : v && typeof v === "object" && Symbol.iterator in v
              ? [...(v as Iterable<unknown>)].map(norm)
              : v;
      for (let i = 0; i < dbRows.length; i++) {
        const arrowRow = table.get(i)!.toJSON() as Record<string, unknown>;
        const dbRow = dbRows[i]!;
        for (const key of Object.keys(dbRow))
          assert.deepEqual(norm(arrowRow[key]), norm(dbRow[key]), `row ${i} column ${key}`);
      }
      // Every result field landed in its column.
      const t7 = tiles[7]!.result;
      const r7 = dbRows[7]!;
      assert.equal(r7["tile_id"], t7.tileId);
      assert.equal((r7["acquired"] as Date).toISOString(), t7.acquired);
      assert.deepEqual((r7["counts"] as unknown[]).map(Number), t7.counts);
      assert.equal(r7["reused"], false);
      const [raster] = await db.all<{ raster: DuckDBBlobValue; k: number }>(
        "SELECT raster, k FROM rasters WHERE tile_id = $1",
        [t7.tileId],
      );
      assert.deepEqual(Buffer.from(raster!.raster.bytes), Buffer.from(tiles[7]!.raster));
    } finally {
      db.closeSync();
    }
  });

  test("cells name the newest acquisition per cell, ties to the higher ingest sequence", async () => {
    const { tiles } = generate(21, "m1", 2);
    const store = await StagingViewStore.open(join(dir, "cells.duckdb"));
    try {
      await store.appendFinished(tiles);
      const n = await store.finalize([{ id: 1, name: "water", colour: "#0000ff" }]);
      assert.equal(n, 7);
      const { rows } = await store.tileRows();
      assert.equal(rows.length, 21);
    } finally {
      await store.closeCheckpointed();
    }
    const db = await DuckDbDatabase.open(join(dir, "cells.duckdb"), { readOnly: true });
    try {
      const cells = await db.all<{ cell: string; tile_id: string }>("SELECT * FROM cells ORDER BY cell");
      for (const { cell, tile_id } of cells) {
        const mine = tiles.map((t) => t.result).filter((r) => r.cell === cell);
        const best = [...mine].sort(
          (a, b) => Date.parse(b.acquired) - Date.parse(a.acquired) || b.ingestSeq - a.ingestSeq,
        )[0]!;
        assert.equal(tile_id, best.tileId, `cell ${cell}`);
      }
      const tables = await db.all<{ n: string }>("SELECT table_name AS n FROM duckdb_tables() ORDER BY 1");
      assert.deepEqual(
        tables.map((t) => t.n),
        ["cells", "classes", "composite_sources", "composites", "failures", "rasters", "tiles"],
      );
    } finally {
      db.closeSync();
    }
  });

  test("a checkpoint keeps only rows of the same model and content, and reuse copies unchanged tiles from the previous version", async () => {
    const { tiles, entries } = generate(12, "m1", 3);
    const prevPath = join(dir, "prev.duckdb");
    const prev = await StagingViewStore.open(prevPath);
    await prev.appendFinished(tiles);
    await prev.closeCheckpointed();

    const changed = { ...entries[3]!, contentHash: "f".repeat(64) };
    const runSet = entries.map((e, i) => (i === 3 ? changed : e));
    const next = await StagingViewStore.open(join(dir, "next.duckdb"));
    try {
      // A checkpoint holding two of this run's tiles (one since changed) and one of an older model.
      await next.appendFinished([tiles[3]!, tiles[5]!]);
      const other = generate(1, "m0", 9).tiles[0]!;
      await next.appendFinished([{ ...other, result: { ...other.result, tileId: "tile-old" } }]);
      await next.setRunSet(runSet);
      assert.equal(await next.pruneCheckpoint("m1"), 1, "only tile-005 survives");
      assert.equal(
        await next.reuseFrom(prevPath, "m1"),
        10,
        "every unchanged tile but the checkpointed one is copied",
      );
      const done = await next.finishedTileIds();
      assert.equal(done.has("tile-003"), false, "the changed tile is left to classify");
      assert.equal(done.size, 11);
      const tally = await next.tally();
      assert.deepEqual(tally, { tiles: 11, reused: 10, failed: 0 });
      assert.equal(await next.reuseFrom(prevPath, "m2"), 0, "nothing is reused across models");
    } finally {
      await next.closeCheckpointed();
    }
    const db = await DuckDbDatabase.open(join(dir, "next.duckdb"), { readOnly: true });
    try {
      const [r] = await db.all<{ n: bigint }>("SELECT count(*) AS n FROM rasters");
      assert.equal(Number(r!.n), 11);
    } finally {
      db.closeSync();
    }
    assert.ok(readFileSync(prevPath).length > 0);
  });
});
