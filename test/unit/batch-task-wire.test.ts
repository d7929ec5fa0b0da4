/**
 * The batch work queue's messages (batch/task-wire.ts): a task and a result frame read back as they
 * were written, the raster travelling as raw bytes after the JSON head, and anything else is refused
 * with BAD_REQUEST rather than half-read.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  decodeResult,
  decodeTask,
  encodeResult,
  encodeTask,
  type ResultHead,
} from "../../batch/task-wire.js";
import { generateTile } from "../../sample/index.js";
import { LanemapError, describeTile, type TileResult } from "../../shared/index.js";

const result: TileResult = {
  lane: "batch",
  tileId: "c0001r0002-20240101T000000Z",
  cell: "c0001r0002",
  acquired: "2024-01-01T00:00:00.000Z",
  ingestSeq: 3,
  contentHash: "ab".repeat(32),
  modelVersion: "m1",
  width: 2,
  height: 1,
  geoTransform: [500000, 30, 0, 4000000, 0, -30],
  epsg: 32615,
  proj4: null,
  boundsWgs84: null,
  validPixels: 2,
  counts: [0, 1, 1],
  areasM2: [0, 900, 900],
  dominantClass: 1,
  meanConfidence: 0.8,
  processedAt: "2024-01-01T00:00:01.000Z",
};

const badRequest = (err: unknown) => err instanceof LanemapError && err.code === "BAD_REQUEST";

describe("batch task and result messages", () => {
  test("a result frame reads back with its head and the raster bytes after it", () => {
    const head: ResultHead = {
      runId: "r1",
      tileId: result.tileId,
      modelVersion: "m1",
      worker: "host:1",
      outcome: { ok: true, result, k: 5 },
    };
    const raster = new Uint8Array([120, 156, 1, 2, 3]);
    const back = decodeResult(encodeResult(head, raster));
    assert.deepEqual(back.head, head);
    assert.deepEqual([...back.raster], [...raster]);
  });

  test("a failure result keeps its code and reason; an unknown code becomes INTERNAL", () => {
    const head: ResultHead = {
      runId: "r1",
      tileId: "t1",
      modelVersion: "m1",
      worker: "w",
      outcome: { ok: false, code: "TILE_DECODE", reason: "not a TIFF" },
    };
    assert.deepEqual(decodeResult(encodeResult(head)).head.outcome, head.outcome);
    const alien = {
      ...head,
      outcome: { ok: false, code: "FROM_THE_FUTURE", reason: "?" },
    } as unknown as ResultHead;
    assert.equal(decodeResult(encodeResult(alien)).head.outcome.ok, false);
    const o = decodeResult(encodeResult(alien)).head.outcome;
    assert.equal(o.ok ? "" : o.code, "INTERNAL");
  });

  test("truncated frames, a head that is not JSON and a head without a tile are refused with BAD_REQUEST", () => {
    assert.throws(() => decodeResult(new Uint8Array([0, 0])), badRequest);
    assert.throws(() => decodeResult(new Uint8Array([0, 0, 0, 9, 123])), badRequest);
    const notJson = new Uint8Array([0, 0, 0, 1, 65]);
    assert.throws(() => decodeResult(notJson), badRequest);
    const noTile = {
      runId: "r",
      modelVersion: "m",
      worker: "w",
      outcome: { ok: false, code: "X", reason: "" },
    };
    assert.throws(() => decodeResult(encodeResult(noTile as unknown as ResultHead)), badRequest);
  });

  test("a task reads back as written, and a task without its catalogue entry is refused", async () => {
    const t = generateTile({
      seed: 1,
      col: 0,
      row: 0,
      tileSize: 16,
      bands: 6,
      acquired: "2024-01-01T00:00:00Z",
    });
    const entry = await describeTile(t.bytes, { ingestSeq: 3, source: "bulk", fileName: "t.tif" });
    const task = { runId: "r1", modelVersion: "m1", maxPixels: 100, entries: [entry] };
    assert.deepEqual(decodeTask(encodeTask(task)), task);
    const noEntry = { runId: "r1", modelVersion: "m1", maxPixels: 1 };
    assert.throws(() => decodeTask(new TextEncoder().encode(JSON.stringify(noEntry))), badRequest);
    assert.throws(() => decodeTask(new TextEncoder().encode("{")), badRequest);
    assert.throws(() => encodeTask({ ...task, entries: [] }), badRequest);
  });

  test("a task of one tile is written as every worker version reads it, one of several names them all", async () => {
    const entries = await Promise.all(
      [0, 1, 2].map(async (col) =>
        describeTile(
          generateTile({ seed: 1, col, row: 0, tileSize: 16, bands: 6, acquired: "2024-01-01T00:00:00Z" })
            .bytes,
          { ingestSeq: col, source: "bulk", fileName: `t${col}.tif` },
        ),
      ),
    );
    const one = JSON.parse(
      new TextDecoder().decode(
        encodeTask({ runId: "r1", modelVersion: "m1", maxPixels: 100, entries: [entries[0]!] }),
      ),
    ) as Record<string, unknown>;
    assert.deepEqual(one["entry"], entries[0]);
    assert.equal(one["entries"], undefined);
    const several = { runId: "r1", modelVersion: "m1", maxPixels: 100, entries };
    assert.deepEqual(decodeTask(encodeTask(several)), several);
    // Both forms at once, or a list of one, are not what an encoder writes.
    const both = { runId: "r1", modelVersion: "m1", maxPixels: 1, entry: entries[0], entries };
    assert.throws(() => decodeTask(new TextEncoder().encode(JSON.stringify(both))), badRequest);
    const listOfOne = { runId: "r1", modelVersion: "m1", maxPixels: 1, entries: [entries[0]] };
    assert.throws(() => decodeTask(new TextEncoder().encode(JSON.stringify(listOfOne))), badRequest);
  });
});
