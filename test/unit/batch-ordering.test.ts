import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chooseOrdering, orderEntries, placeEntries, resolveAround } from "../../batch/index.js";
import { cellKey, type CatalogueEntry } from "../../shared/index.js";

/** A catalogue entry for a tile covering one degree square with its north-west corner at (lon, lat). */
function entry(tileId: string, cell: string, lon: number, lat: number): CatalogueEntry {
  return {
    tileId,
    cell,
    acquired: "2024-05-01T10:00:00Z",
    ingestSeq: 0,
    contentHash: "0".repeat(64),
    bytes: 1,
    width: 8,
    height: 8,
    bandCount: 1,
    dtype: "uint8",
    epsg: 4326,
    proj4: "+proj=longlat +datum=WGS84 +no_defs",
    geoTransform: [lon, 0.125, 0, lat, 0, -0.125],
    bounds: { minX: lon, minY: lat - 1, maxX: lon + 1, maxY: lat },
    boundsWgs84: { minX: lon, minY: lat - 1, maxX: lon + 1, maxY: lat },
    hilbert: null,
    acquiredFrom: "filename",
    source: "bulk",
    registeredAt: "2024-05-01T10:00:00Z",
  };
}

function gridEntries(w: number, h: number): CatalogueEntry[] {
  const out: CatalogueEntry[] = [];
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) out.push(entry(`t-${c}-${r}`, cellKey(c, r), 10 + c, 50 - r));
  return out;
}

describe("placing catalogue entries on a grid", () => {
  test("grid-form cells keep their column and row", () => {
    const p = placeEntries(gridEntries(3, 2));
    assert.equal(p.basis, "cells");
    assert.deepEqual(
      p.placed.map((t) => [t.id, t.col, t.row]),
      [
        ["t-0-0", 0, 0],
        ["t-1-0", 1, 0],
        ["t-2-0", 2, 0],
        ["t-0-1", 0, 1],
        ["t-1-1", 1, 1],
        ["t-2-1", 2, 1],
      ],
    );
  });

  test("free-form cells are placed by centroid, north in row 0, and tiles with no location go last", () => {
    const entries = [
      entry("sw", "scene_sw", 10, 49),
      entry("ne", "scene_ne", 11, 50),
      { ...entry("nowhere", "scene_x", 0, 0), boundsWgs84: null, hilbert: null },
      entry("nw", "scene_nw", 10, 50),
      entry("se", "scene_se", 11, 49),
    ];
    const p = placeEntries(entries);
    assert.equal(p.basis, "centroids");
    const pos = Object.fromEntries(p.placed.map((t) => [t.id, [t.col, t.row]]));
    assert.deepEqual(pos, { nw: [0, 0], ne: [1, 0], sw: [0, 1], se: [1, 1] });
    const ordered = orderEntries(p, { kind: "natural" }).map((e) => e.tileId);
    assert.deepEqual(ordered, ["nw", "ne", "sw", "se", "nowhere"]);
  });
});

describe("the point of interest of a run", () => {
  const placement = placeEntries(gridEntries(5, 5));

  test("a tile id, a cell key and a WGS84 point inside a tile all name that tile's centre", () => {
    assert.deepEqual(resolveAround("t-3-1", placement), { x: 3.5, y: 1.5 });
    assert.deepEqual(resolveAround(cellKey(3, 1), placement), { x: 3.5, y: 1.5 });
    assert.deepEqual(resolveAround("13.5,48.5", placement), { x: 3.5, y: 1.5 });
  });

  test("a point outside every tile goes to the nearest tile", () => {
    assert.deepEqual(resolveAround("40,0", placement), { x: 4.5, y: 4.5 });
  });

  test("something that names nothing is refused with a clear error", () => {
    assert.throws(() => resolveAround("no-such-tile", placement), /neither a tile id nor a cell/);
    assert.throws(() => resolveAround("200,10", placement), /not a WGS84/);
  });

  test("--around alone means hilbert-around, and distance orders without a point are refused", () => {
    assert.equal(chooseOrdering(undefined, { x: 1, y: 1 }, "hilbert", "s").kind, "hilbert-around");
    assert.equal(chooseOrdering(undefined, undefined, "hilbert", "s").kind, "hilbert");
    assert.throws(() => chooseOrdering("distance", undefined, "hilbert", "s"), /needs a point of interest/);
  });

  test("hilbert-around processes the block around the point first", () => {
    const ordering = chooseOrdering(undefined, resolveAround("t-2-2", placement), "hilbert", "s");
    const first9 = orderEntries(placement, ordering)
      .slice(0, 9)
      .map((e) => e.tileId)
      .sort();
    const block = [];
    for (let r = 1; r <= 3; r++) for (let c = 1; c <= 3; c++) block.push(`t-${c}-${r}`);
    assert.deepEqual(first9, block.sort());
  });
});
