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
      geoTransform: [500000, 30, 0, 4000000, 0, -30],
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
    assert.deepEqual(out, { cells: 2, composited: 1 });

    const db = await DuckDbDatabase.open(path, { readOnly: true });
    try {
      const rows = await db.allJS<CompositeRow>(compositeRowSelect({ meanConfidence: true }));
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
});
