/**
 * `lanemap views diff`: two published batch views compared tile by tile (class rasters, decoded)
 * and cell by cell (per-pixel composites), as an operator compares a cluster run with a
 * single-process run; exit 0 when they hold the same pixels, 3 when not.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { diffBatchViews } from "../../batch/index.js";
import { projectRoot } from "../helpers/env.js";
import {
  DEFAULT_GRID,
  lonLatTile,
  makeRaster,
  tempDataDir,
  writeBatchView,
  type TileFixture,
} from "../helpers/serving-views.js";

/** A tile of cell (col, 0); `day` sets its acquisition, so two tiles of a cell make a composite. */
const tile = (col: number, tileId: string, classAt: (c: number, r: number) => number, day = 1): TileFixture =>
  lonLatTile(DEFAULT_GRID, {
    col,
    row: 0,
    tileId,
    lane: "batch",
    acquired: `2026-06-0${day}T10:00:00Z`,
    ingestSeq: col * 10 + day,
    // The newer acquisition leaves its left half unclassified: the composite takes it from the older.
    raster: makeRaster(4, day === 1 ? classAt : (c, r) => (c < 2 ? 0 : classAt(c, r))),
  });

/** Two acquisitions of cell `col`: a per-pixel composite in the view. */
const pair = (col: number, id: string, classAt: (c: number, r: number) => number): TileFixture[] => [
  tile(col, `${id}-1`, classAt, 1),
  tile(col, `${id}-2`, () => 4, 2),
];

test("views diff names the tiles and cells whose pixels differ or that one view lacks, and exits 3; a view against itself is identical, exit 0", async () => {
  await using data = await tempDataDir();
  await writeBatchView(data.dir, {
    version: 1,
    watermark: 8,
    composite: true,
    tiles: [...pair(0, "a", () => 1), ...pair(1, "b", (c) => 1 + (c % 2)), ...pair(2, "c", () => 2)],
  });
  await writeBatchView(data.dir, {
    version: 2,
    watermark: 9,
    composite: true,
    // Cell 0 as it was; cell 1's older acquisition with one pixel changed where the composite
    // shows it (the left half); cell 2 gone; cell 3 new.
    tiles: [
      ...pair(0, "a", () => 1),
      ...pair(1, "b", (c, r) => (c === 0 && r === 3 ? 3 : 1 + (c % 2))),
      ...pair(3, "d", () => 1),
    ],
  });

  const d = await diffBatchViews(data.dir, "1", "v000002");
  assert.equal(d.identical, false);
  assert.deepEqual(d.tiles, {
    equal: 3,
    differing: ["b-1"],
    onlyInA: ["c-1", "c-2"],
    onlyInB: ["d-1", "d-2"],
  });
  assert.deepEqual(d.composites, {
    equal: 1,
    differing: ["c0001r0000"],
    onlyInA: ["c0002r0000"],
    onlyInB: ["c0003r0000"],
  });

  const cli = (...args: string[]) =>
    spawnSync(
      process.execPath,
      [join(projectRoot, "infra", "bin", "lanemap.js"), "views", "diff", ...args, "--data-dir", data.dir],
      { encoding: "utf8", env: { ...process.env, NATS_URL: "" } },
    );
  const differ = cli("1", "2", "--json");
  assert.equal(differ.status, 3, differ.stderr);
  assert.deepEqual(JSON.parse(differ.stdout), JSON.parse(JSON.stringify(d)));
  const same = cli("2", "2");
  assert.equal(same.status, 0, same.stderr);
  assert.match(same.stdout, /tiles: 6 equal, 0 differing/);
  assert.match(same.stdout, /composites: 3 equal, 0 differing/);
  assert.match(same.stdout, /v000002 and v000002 hold the same pixels/);
  const missing = cli("1", "9");
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /batch view v000009 does not exist/);
});
