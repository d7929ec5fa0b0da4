import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  NO_SOURCE,
  WGS84,
  compositePixels,
  compositeTally,
  coveringGridIndex,
  crsFromEpsg,
  pixelArea,
  resampleComposite,
  resampleLayer,
  sameLayerGrid,
  samplingIndex,
  unionGrid,
  UNION_GRID_MAX_PIXELS_FACTOR,
  type LayerGrid,
} from "../../shared/index.js";

/** 4×4 px of 0.01° at 15°E 50°N. */
const lonLat: LayerGrid = { width: 4, height: 4, geoTransform: [15, 0.01, 0, 50, 0, -0.01], crs: WGS84 };
/** 40×40 px of 100 m in UTM 33N, covering the lon/lat grid. */
const utm: LayerGrid = {
  width: 40,
  height: 40,
  geoTransform: [500_000, 100, 0, 5_538_500, 0, -100],
  crs: crsFromEpsg(32633),
};

describe("sampling a candidate on another grid", () => {
  test("each target pixel's centre finds the pixel GDAL's transform puts it in", () => {
    const index = samplingIndex(lonLat, utm);
    // gdaltransform -s_srs EPSG:4326 -t_srs EPSG:32633 of the centres of pixels (0,0), (1,2), (3,3):
    // 500358.37 5538074.79 -> col 3 row 4; 501075.56 5535851.20 -> col 10 row 26;
    // 502510.17 5534739.84 -> col 25 row 37.
    assert.equal(index[0], 4 * 40 + 3);
    assert.equal(index[2 * 4 + 1], 26 * 40 + 10);
    assert.equal(index[3 * 4 + 3], 37 * 40 + 25);
  });

  test("a centre outside the candidate samples nothing, so the pixel is not valid there", () => {
    const small: LayerGrid = { ...lonLat, width: 2, height: 2 };
    const index = samplingIndex(lonLat, small);
    assert.deepEqual([...index.slice(0, 4)], [0, 1, -1, -1]);
    const layer = resampleLayer(
      { classes: Uint8Array.of(1, 2, 3, 4), votes: Uint8Array.of(5, 5, 5, 5) },
      index,
    );
    assert.deepEqual([...layer.classes.slice(0, 8)], [1, 2, 0, 0, 3, 4, 0, 0]);
    assert.deepEqual([...layer.votes.slice(0, 8)], [5, 5, 0, 0, 5, 5, 0, 0]);
  });

  test("a grid is the same grid only with the same size, geotransform and CRS", () => {
    assert.ok(sameLayerGrid(lonLat, { ...lonLat, geoTransform: [...lonLat.geoTransform] }));
    assert.ok(!sameLayerGrid(lonLat, { ...lonLat, crs: crsFromEpsg(4258) }));
    assert.ok(!sameLayerGrid(lonLat, { ...lonLat, geoTransform: [15, 0.02, 0, 50, 0, -0.02] }));
  });

  test("a coarser newer scene with a cloudy half takes the older fine scene's pixels under its cloud", () => {
    const coarse: LayerGrid = { ...lonLat, width: 2, height: 2, geoTransform: [15, 0.02, 0, 50, 0, -0.02] };
    // The older fine scene: class 1 + col + 2·row of the coarse pixel each fine pixel lies in.
    const fine = new Uint8Array(16);
    for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) fine[r * 4 + c] = 1 + (c >> 1) + 2 * (r >> 1);
    const older = resampleLayer({ classes: fine, votes: fine }, samplingIndex(coarse, lonLat));
    // The newer scene on its own grid: left column cloudy (0), right column class 9.
    const newer = { classes: Uint8Array.of(0, 9, 0, 9), votes: Uint8Array.of(0, 7, 0, 7) };
    const c = compositePixels([newer, older], 4);
    assert.deepEqual([...c.classes], [1, 9, 3, 9]);
    assert.deepEqual([...c.source], [1, 0, 1, 0]);
    assert.deepEqual(c.contributions, [2, 2]);
  });

  test("a sampled composite carries its source index and recounts each source's pixels", () => {
    const base = compositePixels(
      [
        { classes: Uint8Array.of(2, 0, 0, 0), votes: Uint8Array.of(1, 0, 0, 0) },
        { classes: Uint8Array.of(1, 1, 1, 0), votes: Uint8Array.of(1, 1, 1, 0) },
      ],
      4,
    );
    const onto: LayerGrid = { ...lonLat, width: 4, height: 4, geoTransform: [15, 0.005, 0, 50, 0, -0.005] };
    const from: LayerGrid = { ...lonLat, width: 2, height: 2 };
    const r = resampleComposite(base, samplingIndex(onto, from));
    // The target has half the pixel size over the same extent: each source pixel becomes a 2×2 block.
    assert.deepEqual(
      [...r.source],
      [0, 0, 1, 1, 0, 0, 1, 1, 1, 1, NO_SOURCE, NO_SOURCE, 1, 1, NO_SOURCE, NO_SOURCE],
    );
    assert.deepEqual(r.contributions, [4, 8]);
    assert.deepEqual([...r.classes.slice(0, 4)], [2, 2, 1, 1]);
  });
});

describe("the tally of a composite", () => {
  test("gives each pixel its grid's own area, per row on the ellipsoid, whichever source its class came from", () => {
    // Newer: top two rows cloudy (0); older: class 2 everywhere. The composite: rows 0-1 class 2, rows 2-3 class 1.
    const newer = {
      classes: new Uint8Array(16).fill(1).fill(0, 0, 8),
      votes: new Uint8Array(16).fill(4).fill(0, 0, 8),
    };
    const older = { classes: new Uint8Array(16).fill(2), votes: new Uint8Array(16).fill(2) };
    const c = compositePixels([newer, older], 16);
    const pa = pixelArea({ geoTransform: [15, 0.01, 0, 50, 0, -0.01], crs: WGS84, height: 4 });
    assert.equal(pa?.kind, "per-row");
    const row = (r: number) => (pa?.kind === "per-row" ? (pa.m2[r] as number) : NaN);
    // Rows differ by about 0.02 % at 50°N: a mean over the grid would be off for each half.
    assert.notEqual(row(0), row(3));
    const t = compositeTally(c, lonLat, 3, 5);
    assert.deepEqual(t.counts, [0, 8, 8]);
    assert.equal(t.validPixels, 16);
    assert.ok(Math.abs((t.areasM2[2] as number) - 4 * (row(0) + row(1))) < 1e-6);
    assert.ok(Math.abs((t.areasM2[1] as number) - 4 * (row(2) + row(3))) < 1e-6);
    assert.equal(t.areasM2[0], 0);
    // Mean vote share of what the composite shows: 8 pixels at 2/5, 8 at 4/5.
    assert.ok(Math.abs(t.meanConfidence - 0.6) < 1e-12);
  });

  test("on a projected grid is the pixel count times the pixel's m², and refuses a composite of another size", () => {
    const c = compositePixels(
      [{ classes: new Uint8Array(1600).fill(3), votes: new Uint8Array(1600).fill(5) }],
      1600,
    );
    const t = compositeTally(c, utm, 4, 5);
    assert.deepEqual([t.counts[3], t.areasM2[3], t.meanConfidence], [1600, 1600 * 100 * 100, 1]);
    assert.throws(() => compositeTally(c, lonLat, 4, 5), /the composite has 1600 pixels, its grid 16/);
  });
});

describe("the grid a cell's composite is on", () => {
  const patch: LayerGrid = {
    ...lonLat,
    width: 2,
    height: 2,
    geoTransform: [15.01, 0.01, 0, 49.99, 0, -0.01],
  };
  const coarse: LayerGrid = { ...lonLat, width: 2, height: 2, geoTransform: [15, 0.02, 0, 50, 0, -0.02] };

  test("is the newest candidate's when it covers as much as any (one extent at two resolutions is a tie)", () => {
    assert.equal(coveringGridIndex([lonLat, { ...lonLat }]), 0);
    assert.equal(coveringGridIndex([coarse, lonLat]), 0);
    assert.equal(coveringGridIndex([lonLat, coarse]), 0);
  });

  test("is an older candidate's when the newest covers only part of the cell, ties to the newer of the larger", () => {
    assert.equal(coveringGridIndex([patch, lonLat]), 1);
    assert.equal(coveringGridIndex([patch, coarse, lonLat]), 1);
    // A UTM grid of 4 km × 4 km covers more than the lon/lat one (about 2.9 km × 4.4 km).
    assert.equal(coveringGridIndex([patch, lonLat, utm]), 2);
  });

  test("counts a grid without a CRS (its footprint unknown) as covering nothing", () => {
    assert.equal(coveringGridIndex([patch, { ...lonLat, crs: null }]), 0);
    assert.equal(coveringGridIndex([{ ...lonLat, crs: null }, patch]), 1);
    assert.equal(coveringGridIndex([]), -1);
  });
});

describe("the union grid of a cell's candidates", () => {
  const patch: LayerGrid = {
    ...lonLat,
    width: 2,
    height: 2,
    geoTransform: [15.01, 0.01, 0, 49.99, 0, -0.01],
  };

  test("is the covering grid itself when every footprint lies inside it", () => {
    const same = unionGrid([utm, { ...utm, geoTransform: [...utm.geoTransform] }]);
    assert.equal(same?.grid, utm);
    assert.equal(same?.clipped, null);
    const inside = unionGrid([patch, lonLat]);
    assert.equal(inside?.grid, lonLat);
    assert.equal(inside?.covering, 1);
    assert.equal(unionGrid([]), null);
  });

  test("of two scenes shifted by 10.5 px east and 5.2 px south keeps the newest's lattice and holds both", () => {
    // Same size, so the newest covers as much ground as the older and its lattice is kept.
    const newer: LayerGrid = { ...utm, geoTransform: [501_050, 100, 0, 5_537_980, 0, -100] };
    const u = unionGrid([newer, utm]);
    assert.ok(u);
    assert.equal(u.covering, 0);
    // The older scene starts 10.5 px west and 5.2 px north of the newer one: 11 and 6 whole pixels more.
    assert.deepEqual(u.grid.geoTransform, [499_950, 100, 0, 5_538_580, 0, -100]);
    assert.equal(u.grid.width, 51);
    assert.equal(u.grid.height, 46);
    assert.equal(u.grid.crs, utm.crs);
    // The lattice's phase is the newer scene's: its origin is whole pixels off the union's.
    assert.ok(Number.isInteger((501_050 - u.grid.geoTransform[0]!) / 100));
    assert.ok(Number.isInteger((5_537_980 - u.grid.geoTransform[3]!) / 100));
    // Top right lies in neither scene: no candidate samples it, so no source will.
    const topRight = 50;
    assert.equal(samplingIndex(u.grid, newer)[topRight], -1);
    assert.equal(samplingIndex(u.grid, utm)[topRight], -1);
    // The older scene's bottom left pixel is row 40 of the union (it starts 0.8 px below the union's
    // top), where the newer scene is not; the union's bottom right is the newer scene's only.
    const bottomLeft = 40 * 51;
    assert.equal(samplingIndex(u.grid, utm)[bottomLeft], 39 * 40 + 0);
    assert.equal(samplingIndex(u.grid, newer)[bottomLeft], -1);
    assert.equal(samplingIndex(u.grid, newer)[45 * 51 + 50], 39 * 40 + 39);
  });

  test("of a lon/lat scene reaching beyond a covering UTM scene holds its projected outline", () => {
    // 4×4 px of 0.01° at 14.99°E 50.01°N: gdaltransform -s_srs EPSG:4326 -t_srs EPSG:32633 gives its
    // westmost point 499282.88 (14.99°E 49.97°N: col -7.17) and its northmost 5539742.98
    // (15.03°E 50.01°N: row -12.43); its east and south edges lie inside the UTM grid.
    const shifted: LayerGrid = { ...lonLat, geoTransform: [14.99, 0.01, 0, 50.01, 0, -0.01] };
    const u = unionGrid([shifted, utm]);
    assert.ok(u);
    assert.equal(u.covering, 1);
    assert.deepEqual(u.grid.geoTransform, [499_200, 100, 0, 5_539_800, 0, -100]);
    assert.equal(u.grid.width, 48);
    assert.equal(u.grid.height, 53);
    assert.ok(u.grid.crs && utm.crs && u.grid.crs.epsg === utm.crs.epsg);
    // Every pixel of the lon/lat scene is found again on the union grid.
    const index = samplingIndex(u.grid, shifted);
    const seen = new Set([...index].filter((j) => j >= 0));
    assert.equal(seen.size, 16);
  });

  test("extends a rotated covering grid along its own rows and columns", () => {
    const rotated: LayerGrid = {
      width: 10,
      height: 10,
      geoTransform: [1000, 10, 2, 2000, 1, -10],
      crs: utm.crs,
    };
    const along: LayerGrid = { ...rotated, geoTransform: [1030, 10, 2, 2003, 1, -10] };
    const u = unionGrid([rotated, along]);
    assert.deepEqual(u?.grid.geoTransform, [1000, 10, 2, 2000, 1, -10]);
    assert.equal(u?.grid.width, 13);
    assert.equal(u?.grid.height, 10);
  });

  test("falls back to the covering grid, saying why, when the union exceeds its bound", () => {
    // 100 px east, 20 px wide: the union would be 120 × 40 px, 3 times the covering grid.
    const far: LayerGrid = { ...utm, width: 20, geoTransform: [510_000, 100, 0, 5_538_500, 0, -100] };
    assert.equal(UNION_GRID_MAX_PIXELS_FACTOR, 4);
    assert.equal(unionGrid([far, utm])?.grid.width, 120);
    const clipped = unionGrid([far, utm], 2.9);
    assert.equal(clipped?.grid, utm);
    assert.equal(clipped?.clipped, "too-large");
    assert.equal(
      unionGrid([
        { ...far, crs: null },
        { ...utm, crs: null },
      ])?.clipped,
      "not-placeable",
    );
  });
});
