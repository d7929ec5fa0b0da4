import assert from "node:assert/strict";
import { test } from "node:test";
import { startServing } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
} from "../helpers/serving-views.js";

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

test("a view whose records hold offsets (+01:00, +00:00) is answered in RFC 3339 UTC with Z everywhere", async () => {
  await using data = await tempDataDir();
  const tile = lonLatTile(DEFAULT_GRID, {
    col: 0,
    row: 0,
    tileId: "t00",
    lane: "batch",
    acquired: "2026-01-02T11:00:00+01:00",
    processedAt: "2026-01-03T08:00:00+00:00",
    ingestSeq: 1,
    raster: makeRaster(4, () => 1),
  });
  await writeBatchView(data.dir, { version: 1, watermark: 10, tiles: [tile] });
  await using srv = await startServing({ dataDir: data.dir });
  const list = await srv.json<{
    items: { acquired: string; processedAt: string; provenance: { acquired: string; processedAt: string } }[];
    snapshot: { takenAt: string; batch: { finishedAt: string } };
  }>("/v1/tiles");
  const item = list.body.items[0];
  assert.ok(item);
  assert.equal(item.acquired, "2026-01-02T10:00:00.000Z");
  assert.equal(item.processedAt, "2026-01-03T08:00:00.000Z");
  assert.equal(item.provenance.acquired, item.acquired);
  assert.equal(item.provenance.processedAt, item.processedAt);
  assert.match(list.body.snapshot.takenAt, RFC3339_UTC);
  assert.match(list.body.snapshot.batch.finishedAt, RFC3339_UTC);
  // The datetime filter compares instants, not strings: the rewritten instant is the one found.
  const hit = await srv.json<{ items: unknown[] }>("/v1/tiles?datetime=2026-01-02T10:00:00Z");
  assert.equal(hit.body.items.length, 1);
  const stac = await srv.json<{ properties: Record<string, unknown> }>(
    "/stac/collections/lanemap-tiles/items/t00",
  );
  assert.equal(stac.body.properties["datetime"], "2026-01-02T10:00:00.000Z");
  assert.equal(stac.body.properties["lanemap:processed_at"], "2026-01-03T08:00:00.000Z");
  const views = await srv.json<{ batch: { versions: { startedAt: string; finishedAt: string }[] } }>(
    "/v1/views",
  );
  for (const v of views.body.batch.versions) {
    assert.match(v.startedAt, RFC3339_UTC);
    assert.match(v.finishedAt, RFC3339_UTC);
  }
  const point = await srv.json<Record<string, unknown>>(`/v1/tiles/t00`);
  assert.equal((point.body["winner"] as { acquired: string }).acquired, "2026-01-02T10:00:00.000Z");
});
