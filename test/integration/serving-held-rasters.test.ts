import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startServing, type ServingFixture } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  cellBounds,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";

const SIDE = 3;
const PIXELS = DEFAULT_GRID.pixels;

/**
 * Per cell an older tile valid everywhere and a newer one with nodata on its left half, so every
 * cell has a stored composite; classes differ by cell and pixel, so an answer tells which raster
 * (and which pixel of it) it came from.
 */
function tiles(): TileFixture[] {
  const out: TileFixture[] = [];
  for (let col = 0; col < SIDE; col++)
    for (let row = 0; row < SIDE; row++) {
      const n = col * SIDE + row;
      for (const newer of [false, true])
        out.push(
          lonLatTile(DEFAULT_GRID, {
            col,
            row,
            tileId: `t${n}-${newer ? "new" : "old"}`,
            lane: "batch",
            acquired: newer ? "2026-06-02T10:00:00Z" : "2026-06-01T10:00:00Z",
            ingestSeq: 2 * n + (newer ? 1 : 0),
            raster: makeRaster(
              PIXELS,
              (c, r) => (newer && c < PIXELS / 2 ? 0 : 1 + ((n + c + r + (newer ? 2 : 0)) % 4)),
              5,
              (c) => 1 + (c % 5),
            ),
          }),
        );
    }
  return out;
}

/** The lon/lat of the centre of pixel (c, r) of cell (col, row). */
function pixelCentre(col: number, row: number, c: number, r: number): [number, number] {
  const b = cellBounds(DEFAULT_GRID, col, row);
  const d = (b.maxX - b.minX) / PIXELS;
  return [b.minX + (c + 0.5) * d, b.maxY - (r + 0.5) * d];
}

/** What a point answer says about the pixel, without the snapshot's own id and clock. */
async function pointAt(srv: ServingFixture, lon: number, lat: number) {
  const r = await srv.json<{
    tileId: string;
    class: { id: number };
    votes: number;
    confidence: number;
    source: { tileId: string } | null;
  }>(`/v1/point?lon=${lon}&lat=${lat}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const b = r.body;
  return {
    tileId: b.tileId,
    cls: b.class.id,
    votes: b.votes,
    confidence: b.confidence,
    source: b.source?.tileId,
  };
}

async function metric(srv: ServingFixture, name: string): Promise<number> {
  const text = await (await srv.get("/metrics")).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

describe("batch view rasters held in memory", () => {
  test("point and stats queries over a view within the held budget read no raster from DuckDB and answer as reads from DuckDB do", async () => {
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: tiles(), composite: true });
    await using held = await startServing({ dataDir: data.dir });
    await using read = await startServing({ dataDir: data.dir, options: { heldRasterBytes: 0 } });

    let points = 0;
    for (let col = 0; col < SIDE; col++)
      for (let row = 0; row < SIDE; row++)
        for (const [c, r] of [
          [0, 0],
          [PIXELS - 1, 1],
          [1, PIXELS - 1],
        ] as const) {
          const [lon, lat] = pixelCentre(col, row, c, r);
          const fromMemory = await pointAt(held, lon, lat);
          assert.deepEqual(
            fromMemory,
            await pointAt(read, lon, lat),
            `pixel (${c}, ${r}) of cell (${col}, ${row})`,
          );
          // The left half shows the older tile through the composite, the right half the newer one.
          assert.equal(fromMemory.source, `t${col * SIDE + row}-${c < PIXELS / 2 ? "old" : "new"}`);
          points++;
        }
    const all = cellBounds(DEFAULT_GRID, 0, 0);
    const far = cellBounds(DEFAULT_GRID, SIDE - 1, SIDE - 1);
    const d = (all.maxX - all.minX) / PIXELS;
    // A box whose edges cut pixels off the outer cells, so the answer needs their rasters.
    const bbox = [all.minX + d, far.minY + d, far.maxX - d, all.maxY - d].join(",");
    const stats = async (srv: ServingFixture) => {
      const r = await srv.json<{ classes: unknown; cells: { partial: number }; pixels: number }>(
        `/v1/stats?bbox=${bbox}`,
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.cells.partial > 0, "the box cuts cells");
      return { classes: r.body.classes, cells: r.body.cells, pixels: r.body.pixels };
    };
    assert.deepEqual(await stats(held), await stats(read));

    assert.ok(
      (await metric(held, "lanemap_batch_view_held_raster_bytes")) > 0,
      "the view's rasters are held",
    );
    assert.equal(await metric(held, "lanemap_batch_view_raster_reads"), 0, "no raster read from DuckDB");
    assert.equal(await metric(read, "lanemap_batch_view_held_raster_bytes"), 0, "nothing held at budget 0");
    const reads = await metric(read, "lanemap_batch_view_raster_reads");
    assert.ok(reads >= SIDE * SIDE && reads <= points + 1, `${reads} DuckDB reads without holding`);
  });

  test("a view whose rasters exceed the held budget reads each from DuckDB when a query first needs it", async () => {
    await using data = await tempDataDir();
    await writeBatchView(data.dir, { version: 1, watermark: 100, tiles: tiles(), composite: true });
    await using srv = await startServing({ dataDir: data.dir, options: { heldRasterBytes: 64 } });
    for (let col = 0; col < SIDE; col++) {
      const [lon, lat] = pixelCentre(col, 0, 0, 0);
      assert.equal((await pointAt(srv, lon, lat)).source, `t${col * SIDE}-old`);
      assert.equal((await pointAt(srv, lon, lat)).source, `t${col * SIDE}-old`, "asked again: from the LRU");
    }
    assert.equal(await metric(srv, "lanemap_batch_view_held_raster_bytes"), 0);
    assert.equal(await metric(srv, "lanemap_batch_view_raster_reads"), SIDE, "one composite read per cell");
  });
});
