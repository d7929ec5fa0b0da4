import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { StagingViewStore } from "../../batch/view-store.js";
import {
  compositeRowSelect,
  DuckDbDatabase,
  compositeFromRow,
  type CompositeRow,
} from "../../shared/adapters/duckdb/index.js";
import {
  NO_SOURCE,
  decodeClassRaster,
  decodeSourceIndex,
  encodeClassRaster,
  type ClassifiedTile,
} from "../../shared/internal.js";

const dir = mkdtempSync(join(tmpdir(), "lanemap-composite-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const W = 8;
const N = W * W;

/** A tile of `cell` acquired on `day`: class `cls` everywhere but where `hole(i)` says cloud (0). */
function tile(
  cell: string,
  id: string,
  day: number,
  cls: number,
  hole: (i: number) => boolean,
  geoTransform: readonly number[] = [500000, 30, 0, 4000000, 0, -30],
): ClassifiedTile {
  const classes = new Uint8Array(N).map((_, i) => (hole(i) ? 0 : cls));
  const votes = classes.map((c) => (c ? 4 : 0));
  const valid = classes.reduce((a, c) => a + (c ? 1 : 0), 0);
  const counts = [N - valid, 0, 0, 0];
  counts[cls] = valid;
  return {
    result: {
      lane: "batch",
      tileId: id,
      cell,
      acquired: new Date(Date.UTC(2024, 0, day)).toISOString(),
      ingestSeq: day,
      contentHash: "a".repeat(64),
      modelVersion: "m1",
      width: W,
      height: W,
      geoTransform: [...geoTransform],
      epsg: 32615,
      proj4: null,
      boundsWgs84: null,
      validPixels: valid,
      counts,
      areasM2: counts.map((c, k) => (k === 0 ? 0 : c * 900)),
      dominantClass: cls,
      meanConfidence: 0.8,
      processedAt: new Date(Date.UTC(2024, 5, 1)).toISOString(),
    },
    k: 5,
    raster: encodeClassRaster({ width: W, height: W, classes, votes, k: 5 }),
  };
}

/** The cloud block: rows 2..5, columns 2..5. */
const block = (i: number) => Math.floor(i / W) >= 2 && Math.floor(i / W) < 6 && i % W >= 2 && i % W < 6;

describe("the batch view's per-pixel composite", () => {
  test("holds, for a cell whose newest scene is cloudy, the older clear pixels under the cloud and a source index", async () => {
    const path = join(dir, "a.duckdb");
    const store = await StagingViewStore.open(path);
    await store.appendFinished([
      tile("cloudy", "old", 1, 1, () => false),
      tile("cloudy", "mid", 2, 2, (i) => i < W), // first row missing (a scene edge)
      tile("cloudy", "new", 3, 3, block),
      tile("clear", "clear-old", 1, 1, () => false),
      tile("clear", "clear-new", 2, 2, () => false),
    ]);
    const out = await store.finalizeComposites([
      { id: 1, name: "a", colour: "#111111" },
      { id: 2, name: "b", colour: "#222222" },
      { id: 3, name: "c", colour: "#333333" },
    ]);
    await store.closeCheckpointed();
    assert.deepEqual(out, { cells: 2, composited: 1, clipped: [] });

    const db = await DuckDbDatabase.open(path, { readOnly: true });
    try {
      const rows = await db.allJS<CompositeRow>(compositeRowSelect({ meanConfidence: true, grid: true }));
      assert.equal(rows.length, 1, "the clear cell costs nothing: it has no composite row");
      const c = compositeFromRow(rows[0]!);
      // The cloud block is 16 pixels; "mid" fills them all, so "old" is never read.
      assert.deepEqual(c.sources, [
        { tileId: "new", pixels: N - 16 },
        { tileId: "mid", pixels: 16 },
      ]);
      assert.equal(c.validPixels, N);
      assert.deepEqual(c.counts, [0, 0, 16, N - 16]);
      assert.deepEqual(c.areasM2, [0, 0, 16 * 900, (N - 16) * 900]);
      const [blobs] = await db.all<{ raster: { bytes: Uint8Array }; source: { bytes: Uint8Array } }>(
        "SELECT raster, source FROM composites",
      );
      const raster = decodeClassRaster(blobs!.raster.bytes, W, W, c.k);
      const source = decodeSourceIndex(blobs!.source.bytes, N);
      for (let i = 0; i < N; i++) {
        assert.equal(raster.classes[i], block(i) ? 2 : 3);
        assert.equal(source[i], block(i) ? 1 : 0);
      }
      assert.equal(source.includes(NO_SOURCE), false);
      const cells = await db.all<{ cell: string; tile_id: string }>(
        "SELECT cell, tile_id FROM cells ORDER BY cell",
      );
      assert.deepEqual(
        cells.map((r) => [r.cell, r.tile_id]),
        [
          ["clear", "clear-new"],
          ["cloudy", "new"],
        ],
      );
    } finally {
      db.closeSync();
    }
  });

  test("holds, for two clear scenes of a cell overlapping in part, the union of both on the newest's lattice", async () => {
    const path = join(dir, "union.duckdb");
    const store = await StagingViewStore.open(path);
    // The newer scene is 4 px east and 2 px south of the older one, same size: a shifted path/row.
    await store.appendFinished([
      tile("shifted", "older", 1, 2, () => false),
      tile("shifted", "newer", 2, 3, () => false, [500120, 30, 0, 3999940, 0, -30]),
    ]);
    const out = await store.finalizeComposites([
      { id: 1, name: "a", colour: "#111111" },
      { id: 2, name: "b", colour: "#222222" },
      { id: 3, name: "c", colour: "#333333" },
    ]);
    await store.closeCheckpointed();
    assert.deepEqual(out, { cells: 1, composited: 1, clipped: [] });
    const db = await DuckDbDatabase.open(path, { readOnly: true });
    try {
      const rows = await db.allJS<CompositeRow>(compositeRowSelect({ meanConfidence: true, grid: true }));
      const c = compositeFromRow(rows[0]!);
      // The union: columns 0..11 and rows 0..9 of the older scene's origin, which is on the same lattice.
      assert.deepEqual([c.width, c.height], [12, 10]);
      assert.deepEqual(c.geoTransform, [500000, 30, 0, 4000000, 0, -30]);
      assert.equal(c.epsg, 32615);
      // Rectangles: the newer 8×8 = 64 px; the older 64 px less the 4×6 overlap; the rest no source.
      assert.deepEqual(c.sources, [
        { tileId: "newer", pixels: 64 },
        { tileId: "older", pixels: 40 },
      ]);
      assert.deepEqual(c.counts, [120 - 104, 0, 40, 64]);
      assert.deepEqual(c.areasM2, [0, 0, 40 * 900, 64 * 900]);
      const [blobs] = await db.all<{ source: { bytes: Uint8Array } }>("SELECT source FROM composites");
      const source = decodeSourceIndex(blobs!.source.bytes, 120);
      for (let r = 0; r < 10; r++)
        for (let col = 0; col < 12; col++) {
          const inNewer = col >= 4 && r >= 2;
          const inOlder = col < 8 && r < 8;
          assert.equal(source[r * 12 + col], inNewer ? 0 : inOlder ? 1 : NO_SOURCE, `pixel ${col},${r}`);
        }
    } finally {
      db.closeSync();
    }
  });

  test("reads a composite of a view written before the grid columns with no grid of its own", async () => {
    const db = await DuckDbDatabase.open(":memory:");
    try {
      // The composites table as views wrote it before the union grid (no geo_transform, epsg, proj4).
      await db.run(`CREATE TABLE composites (cell VARCHAR PRIMARY KEY, k UTINYINT NOT NULL, width INTEGER NOT NULL,
        height INTEGER NOT NULL, valid_pixels BIGINT NOT NULL, counts BIGINT[] NOT NULL, areas_m2 DOUBLE[] NOT NULL,
        raster BLOB NOT NULL, source BLOB NOT NULL, mean_confidence DOUBLE)`);
      await db.run(`CREATE TABLE composite_sources (cell VARCHAR NOT NULL, idx UTINYINT NOT NULL,
        tile_id VARCHAR NOT NULL, pixels BIGINT NOT NULL, PRIMARY KEY (cell, idx))`);
      await db.run(
        `INSERT INTO composites VALUES ('c', 5, 2, 2, 4, [0, 4], [0.0, 3600.0], ''::BLOB, ''::BLOB, 0.8)`,
      );
      await db.run(`INSERT INTO composite_sources VALUES ('c', 0, 'new', 3), ('c', 1, 'old', 1)`);
      const rows = await db.allJS<CompositeRow>(compositeRowSelect({ meanConfidence: true, grid: false }));
      const c = compositeFromRow(rows[0]!);
      assert.equal(c.geoTransform, null);
      assert.equal(c.epsg, null);
      assert.equal(c.sources.length, 2);
    } finally {
      db.closeSync();
    }
  });
});
