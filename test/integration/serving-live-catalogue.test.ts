/**
 * The defect the class catalogue fixes: a live result from a newer model carries a class id the
 * batch view's model never had. Serving used to name every id with the batch view's classes ("class
 * 5") and to sum per-id counts across models; with the catalogue the id is "cloud" in the tile, the
 * point, the stats and the legend, and stats count it under its own name.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import { LiveView } from "../../shared/adapters/nats/index.js";
import { tinyModel } from "../helpers/models.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { eventually, startServing } from "../helpers/serving-server.js";
import {
  DEFAULT_GRID,
  TEST_CLASSES,
  lonLatTile,
  makeRaster,
  putLive,
  tempDataDir,
  writeBatchView,
} from "../helpers/serving-views.js";

describe("serving names class ids with the class catalogue", { skip: natsMissing() }, () => {
  test("a live result of a newer model with a new class is named and counted by the catalogue, not by the batch view's model", async () => {
    await using nats = await natsFixture();
    await using data = await tempDataDir();
    // The catalogue: the batch model's four classes, then "cloud" (id 5) from a newer model.
    const registry = await FileModelRegistry.open(data.dir);
    await registry.put(
      tinyModel(
        TEST_CLASSES.map((c) => c.name),
        { ids: TEST_CLASSES.map((c) => c.id) },
      ),
    );
    await registry.put(tinyModel([...TEST_CLASSES.map((c) => c.name), "cloud"], { ids: [1, 2, 3, 4, 5] }));
    const cloud = (await registry.classes()).classes.find((c) => c.name === "cloud");
    assert.equal(cloud?.id, 5);

    const tile = (lane: "batch" | "live", id: string, seq: number, day: number, cls: number, model: string) =>
      lonLatTile(DEFAULT_GRID, {
        col: 0,
        row: 0,
        tileId: id,
        lane,
        acquired: `2026-01-${String(day).padStart(2, "0")}T10:00:00Z`,
        ingestSeq: seq,
        modelVersion: model,
        raster: makeRaster(4, (c) => (c < 2 ? cls : 1)),
      });
    await writeBatchView(data.dir, {
      version: 1,
      watermark: 10,
      tiles: [tile("batch", "b00", 5, 1, 2, "m1")],
      classes: TEST_CLASSES,
    });
    const view = await LiveView.open(nats.nc);
    await putLive(view, [tile("live", "l00", 20, 9, 5, "m2")]);
    await using srv = await startServing({ dataDir: data.dir, nc: nats.nc });

    const t = await eventually(async () => {
      const r = await srv.json<{
        items: { tileId: string; dominantClass: number; dominantClassName: string }[];
        snapshot: { legend: { id: number; name: string }[] };
      }>("/v1/tiles");
      return r.body.items[0]?.tileId === "l00" ? r.body : undefined;
    });
    assert.equal(t.items[0]?.dominantClass, 1);
    assert.ok(
      t.snapshot.legend.some((c) => c.id === 5 && c.name === "cloud"),
      "the legend names id 5",
    );

    const b = DEFAULT_GRID;
    const point = await srv.json<{ class: { id: number; name: string } }>(
      `/v1/point?lon=${b.lon0 + b.size * 0.1}&lat=${b.lat0 - b.size * 0.5}`,
    );
    assert.equal(point.status, 200);
    assert.deepEqual(point.body.class, { id: 5, name: "cloud" });

    const stats = await srv.json<{ classes: { id: number; name: string; pixels: number }[] }>(
      `/v1/stats?bbox=${b.lon0 - 0.01},${b.lat0 - b.size - 0.01},${b.lon0 + b.size + 0.01},${b.lat0 + 0.01}`,
    );
    assert.equal(stats.status, 200);
    const byName = Object.fromEntries(stats.body.classes.map((c) => [c.name, c.pixels]));
    assert.equal(byName["cloud"], 8, "the live tile's cloud pixels, under their own name");
    assert.equal(byName["water"], 8);
    assert.equal(byName["class 5"], undefined);
    assert.equal(byName["forest"] ?? 0, 0, "the batch result the live one replaced is not summed in");
  });
});
