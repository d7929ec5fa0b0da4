/**
 * No request can stall the server: the work of an area query is bounded before it is done. A
 * valid 20,000-tooth comb polygon (about 755 kB, under the 1 MB body limit, a tiny area) used to
 * take seconds of scanline work on the event loop while /health waited behind it; now it is
 * refused with a 422 naming the limit, and /health answers at once while several are POSTed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MAX_STATS_VERTEX_ROWS } from "../../serving/usecases/stats.js";
import { startServing, type ServingFixture } from "../helpers/serving-server.js";
import {
  cellBounds,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
  type LonLatGrid,
} from "../helpers/serving-views.js";

const GRID: LonLatGrid = { lon0: 10, lat0: 50, size: 0.04, pixels: 256 };

/** A comb of `teeth` narrow teeth inside cell (0, 0): two vertices per tooth, a tiny area. */
function comb(teeth: number): string {
  const b = cellBounds(GRID, 0, 0);
  const w = (b.maxX - b.minX) * 0.9;
  const x0 = b.minX + (b.maxX - b.minX) * 0.05;
  const y0 = (b.minY + b.maxY) / 2;
  const h = (b.maxY - b.minY) * 0.4;
  const r = (v: number) => Math.round(v * 1e6) / 1e6;
  const ring: [number, number][] = [];
  for (let i = 0; i < teeth; i++) {
    ring.push([r(x0 + (i * w) / teeth), r(y0)]);
    ring.push([r(x0 + ((i + 0.5) * w) / teeth), r(y0 + h)]);
  }
  ring.push([r(x0 + w), r(y0)], [r(x0 + w), r(y0 - 1e-5)], [r(x0), r(y0 - 1e-5)], ring[0]!);
  return JSON.stringify({ type: "Polygon", coordinates: [ring] });
}

describe("the work of a request is bounded before it is done", () => {
  let data: Awaited<ReturnType<typeof tempDataDir>>;
  let srv: ServingFixture;
  const body = comb(20_000);

  before(async () => {
    data = await tempDataDir();
    const tiles = [0, 1].flatMap((row) =>
      [0, 1].map((col) =>
        lonLatTile(GRID, {
          col,
          row,
          tileId: `t${col}${row}`,
          lane: "batch",
          acquired: "2026-01-01T00:00:00Z",
          ingestSeq: 0,
          raster: makeRaster(GRID.pixels, (c, r) => 1 + ((c + r) % 4)),
        }),
      ),
    );
    await writeBatchView(data.dir, { version: 1, watermark: 0, tiles });
    srv = await startServing({ dataDir: data.dir });
  });
  after(async () => {
    await srv[Symbol.asyncDispose]();
    await data[Symbol.asyncDispose]();
  });

  const post = (text: string) =>
    fetch(`${srv.url}/v1/stats`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: text,
    });

  test("a 755 kB comb of 20,000 teeth is a 422 naming the vertex-row limit", async () => {
    assert.ok(body.length > 700_000 && body.length < 1_000_000, `${body.length} bytes`);
    const res = await post(body);
    assert.equal(res.status, 422);
    const problem = (await res.json()) as { type: string; detail: string; limit: number; vertices: number };
    assert.match(problem.type, /geometry-too-complex/);
    assert.equal(problem.limit, MAX_STATS_VERTEX_ROWS);
    assert.equal(problem.vertices, 40_004);
    assert.match(problem.detail, /MAX_STATS_VERTEX_ROWS/);
  });

  test("a comb under the limit is answered, counting only pixels under its teeth", async () => {
    const res = await post(comb(100));
    assert.equal(res.status, 200);
    const stats = (await res.json()) as { pixels: number; cells: { partial: number } };
    assert.equal(stats.cells.partial, 1);
    // Teeth cover half of a band 0.4 of the cell high: about a fifth of its 65,536 pixels.
    assert.ok(stats.pixels > 0.15 * 65_536 && stats.pixels < 0.25 * 65_536, `${stats.pixels} pixels`);
  });

  test("a FeatureCollection (a GIS export) counts the union of its features, and a bad feature is named", async () => {
    const feature = (text: string) => ({
      type: "Feature",
      properties: {},
      geometry: JSON.parse(text) as unknown,
    });
    const one = (await (await post(comb(100))).json()) as { pixels: number };
    const res = await post(
      JSON.stringify({ type: "FeatureCollection", features: [feature(comb(100)), feature(comb(100))] }),
    );
    assert.equal(res.status, 200);
    assert.equal(
      ((await res.json()) as { pixels: number }).pixels,
      one.pixels,
      "the same area twice counts once",
    );
    const bad = await post(
      JSON.stringify({
        type: "FeatureCollection",
        features: [
          feature(comb(100)),
          { type: "Feature", geometry: { type: "Point", coordinates: [10, 50] } },
        ],
      }),
    );
    assert.equal(bad.status, 400);
    const problem = (await bad.json()) as { invalid_params: { name: string }[] };
    assert.match(problem.invalid_params[0]?.name ?? "", /^body\.features\.1\.geometry/);
  });

  test("/health answers at once while several such polygons are POSTed", async () => {
    const inFlight = Array.from({ length: 4 }, () => post(body).then((r) => r.status));
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const res = await fetch(`${srv.url}/health`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      latencies.push(performance.now() - t0);
    }
    assert.deepEqual(await Promise.all(inFlight), [422, 422, 422, 422]);
    // Bounded work is tens of ms per request on an idle machine; 1.5 s leaves room for a busy CI box
    // (refusing nothing, the four took over 8 s each on a busy machine, with /health behind them).
    assert.ok(Math.max(...latencies) < 1_500, `/health took ${latencies.map(Math.round).join(", ")} ms`);
  });
});
