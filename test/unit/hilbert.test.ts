import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  LanemapError,
  MAX_HILBERT_ORDER,
  aoiCompletion,
  blockAround,
  cellKey,
  hilbertIndex,
  hilbertIndexOfPoint,
  hilbertOrderFor,
  hilbertPoint,
  orderTiles,
  splitRanges,
  type Ordering,
} from "../../shared/internal.js";

function grid(w: number, h: number) {
  const tiles: { id: string; col: number; row: number }[] = [];
  for (let row = 0; row < h; row++)
    for (let col = 0; col < w; col++) tiles.push({ id: cellKey(col, row), col, row });
  return tiles;
}

describe("hilbertIndex and hilbertPoint", () => {
  test("are inverse bijections on every cell of small grids (orders 0 to 7)", () => {
    for (let order = 0; order <= 7; order++) {
      const n = 2 ** order;
      const seen = new Uint8Array(n * n);
      for (let y = 0; y < n; y++)
        for (let x = 0; x < n; x++) {
          const d = hilbertIndex(order, x, y);
          assert.ok(d >= 0 && d < n * n);
          assert.equal(seen[d], 0, `index ${d} reached twice at order ${order}`);
          seen[d] = 1;
          assert.deepEqual(hilbertPoint(order, d), { x, y });
        }
    }
  });

  test("round-trip exactly for any cell and any index up to order 16", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 0, max: MAX_HILBERT_ORDER })
          .chain((order) =>
            fc.tuple(
              fc.constant(order),
              fc.integer({ min: 0, max: 2 ** order - 1 }),
              fc.integer({ min: 0, max: 2 ** order - 1 }),
              fc.integer({ min: 0, max: 4 ** order - 1 }),
            ),
          ),
        ([order, x, y, d]) => {
          assert.deepEqual(hilbertPoint(order, hilbertIndex(order, x, y)), { x, y });
          const p = hilbertPoint(order, d);
          assert.equal(hilbertIndex(order, p.x, p.y), d);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("the last index of order 16 is 2^32 - 1 and maps to the corner (65535, 0)", () => {
    assert.equal(hilbertIndex(16, 65535, 0), 2 ** 32 - 1);
    assert.deepEqual(hilbertPoint(16, 2 ** 32 - 1), { x: 65535, y: 0 });
    assert.equal(hilbertIndex(16, 0, 0), 0);
  });

  test("consecutive indices are edge neighbours on every small grid", () => {
    for (let order = 1; order <= 7; order++) {
      let prev = hilbertPoint(order, 0);
      for (let d = 1; d < 4 ** order; d++) {
        const p = hilbertPoint(order, d);
        assert.equal(Math.abs(p.x - prev.x) + Math.abs(p.y - prev.y), 1, `order ${order}, index ${d}`);
        prev = p;
      }
    }
  });

  test("consecutive indices are edge neighbours anywhere on the order-16 curve", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 2 }), (d) => {
        const a = hilbertPoint(16, d);
        const b = hilbertPoint(16, d + 1);
        assert.equal(Math.abs(a.x - b.x) + Math.abs(a.y - b.y), 1);
      }),
      { numRuns: 2000 },
    );
  });

  test("cells and indices outside the grid, and orders above 16, are refused", () => {
    assert.throws(() => hilbertIndex(3, 8, 0), RangeError);
    assert.throws(() => hilbertIndex(3, -1, 0), RangeError);
    assert.throws(() => hilbertIndex(3, 0.5, 0), RangeError);
    assert.throws(() => hilbertPoint(3, 64), RangeError);
    assert.throws(() => hilbertIndex(17, 0, 0), RangeError);
  });

  test("hilbertOrderFor gives the smallest grid that holds a side", () => {
    assert.deepEqual([1, 2, 3, 4, 5, 32, 33, 65536].map(hilbertOrderFor), [0, 1, 2, 2, 3, 5, 6, 16]);
  });
});

describe("hilbertIndexOfPoint", () => {
  const bounds = { minX: 500000, minY: 1700000, maxX: 530720, maxY: 1730720 };

  test("normalises a point within the bounds onto the grid of the given order", () => {
    // 30720 m over 32 cells at order 5: 960 m per cell.
    assert.equal(
      hilbertIndexOfPoint(bounds, 500000 + 960 * 3.5, 1700000 + 960 * 7.5, 5),
      hilbertIndex(5, 3, 7),
    );
    assert.equal(hilbertIndexOfPoint(bounds, bounds.minX, bounds.minY), 0);
  });

  test("clamps points on or beyond the bounds to the edge cells", () => {
    assert.equal(hilbertIndexOfPoint(bounds, bounds.maxX, bounds.minY, 5), hilbertIndex(5, 31, 0));
    assert.equal(hilbertIndexOfPoint(bounds, 0, 1e9, 5), hilbertIndex(5, 0, 31));
  });

  test("refuses empty bounds and non-finite points", () => {
    assert.throws(() => hilbertIndexOfPoint({ minX: 0, minY: 0, maxX: 0, maxY: 1 }, 0, 0), RangeError);
    assert.throws(() => hilbertIndexOfPoint(bounds, NaN, 0), RangeError);
  });
});

describe("blockAround", () => {
  test("an even-sized block puts the tile north-west of its centre (10x10 spans col-4..col+5)", () => {
    const b = blockAround(16, 16, 10, 32, 32);
    assert.deepEqual([b.colStart, b.colEnd, b.rowStart, b.rowEnd], [12, 22, 12, 22]);
    assert.equal(b.cells.length, 100);
    assert.deepEqual(b.centre, { x: 17, y: 17 });
  });

  test("an odd-sized block is centred on the tile", () => {
    const b = blockAround(5, 6, 3, 32, 32);
    assert.deepEqual([b.colStart, b.colEnd, b.rowStart, b.rowEnd], [4, 7, 5, 8]);
    assert.deepEqual(b.centre, { x: 5.5, y: 6.5 });
  });

  test("a block at a corner is clipped to the grid, not shifted", () => {
    const b = blockAround(0, 31, 10, 32, 32);
    assert.deepEqual([b.colStart, b.colEnd, b.rowStart, b.rowEnd], [0, 6, 27, 32]);
    assert.equal(b.cells.length, 30);
    assert.deepEqual(b.cells[0], { col: 0, row: 27 });
  });

  test("a tile outside the grid is refused", () => {
    assert.throws(() => blockAround(32, 0, 10, 32, 32), RangeError);
  });
});

describe("orderTiles", () => {
  const tiles32 = grid(32, 32);
  const orderings: Ordering[] = [
    { kind: "natural" },
    { kind: "random", seed: 7 },
    { kind: "hilbert" },
    { kind: "distance", around: { x: 9.3, y: 20.5 } },
    { kind: "hilbert-around", around: { x: 9.3, y: 20.5 } },
  ];

  test("every ordering is a permutation of its input that does not depend on the input order", () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(grid(12, 9)), fc.constantFrom(...orderings), (subset, ordering) => {
        const a = orderTiles(subset, ordering);
        const b = orderTiles([...subset].reverse(), ordering);
        assert.deepEqual([...a].map((t) => t.id).sort(), subset.map((t) => t.id).sort());
        assert.deepEqual(a, b);
      }),
      { numRuns: 300 },
    );
  });

  test("natural order is row-major from the north-west corner", () => {
    const ids = orderTiles([...grid(3, 2)].reverse(), { kind: "natural" }).map((t) => t.id);
    assert.deepEqual(ids, [
      "c0000r0000",
      "c0001r0000",
      "c0002r0000",
      "c0000r0001",
      "c0001r0001",
      "c0002r0001",
    ]);
  });

  test("random order depends on the seed and repeats for the same seed", () => {
    const a = orderTiles(tiles32, { kind: "random", seed: 1 }).map((t) => t.id);
    assert.deepEqual(
      orderTiles(tiles32, { kind: "random", seed: 1 }).map((t) => t.id),
      a,
    );
    assert.notDeepEqual(
      orderTiles(tiles32, { kind: "random", seed: 2 }).map((t) => t.id),
      a,
    );
  });

  test("hilbert order visits a full power-of-two grid as a chain of neighbouring tiles", () => {
    const ordered = orderTiles(tiles32, { kind: "hilbert" });
    for (let i = 1; i < ordered.length; i++) {
      const a = ordered[i - 1];
      const b = ordered[i];
      assert.ok(a && b);
      assert.equal(Math.abs(a.col - b.col) + Math.abs(a.row - b.row), 1);
    }
  });

  test("distance order never moves away from the point", () => {
    const p = { x: 9.3, y: 20.5 };
    const d = orderTiles(tiles32, { kind: "distance", around: p }).map((t) =>
      Math.hypot(t.col + 0.5 - p.x, t.row + 0.5 - p.y),
    );
    // Equal distances computed along different paths may differ in the last bit.
    for (let i = 1; i < d.length; i++) assert.ok((d[i] ?? 0) >= (d[i - 1] ?? 0) - 1e-9);
  });

  test("hilbert-around order finishes each Chebyshev ring before starting the next", () => {
    const p = { x: 3, y: 30 };
    const rings = orderTiles(tiles32, { kind: "hilbert-around", around: p }).map((t) =>
      Math.max(Math.abs(t.col + 0.5 - p.x), Math.abs(t.row + 0.5 - p.y)),
    );
    for (let i = 1; i < rings.length; i++) assert.ok((rings[i] ?? 0) >= (rings[i - 1] ?? 0));
  });

  const aois: [number, number][] = [
    [16, 16],
    [15, 14],
    [0, 0],
    [31, 31],
    [31, 0],
    [0, 17],
    [31, 9],
    [20, 0],
    [11, 31],
    [3, 4],
    [27, 28],
  ];
  for (const [col, row] of aois) {
    test(`hilbert-around completes the 10x10 block around tile (${col}, ${row}) of a 32x32 archive within 120 tiles`, () => {
      const block = blockAround(col, row, 10, 32, 32);
      const ids = block.cells.map((c) => cellKey(c.col, c.row));
      const order = orderTiles(tiles32, { kind: "hilbert-around", around: block.centre }).map((t) => t.id);
      const done = aoiCompletion(order, ids);
      assert.ok(done <= 120, `done after ${done} tiles`);
      // The rings around the block centre are the block itself: nothing outside it comes first.
      assert.equal(done, ids.length);
      // Even centred on the tile itself rather than on the block, the block is done within 11 x 11.
      const onTile = orderTiles(tiles32, { kind: "hilbert-around", around: { x: col + 0.5, y: row + 0.5 } });
      assert.ok(
        aoiCompletion(
          onTile.map((t) => t.id),
          ids,
        ) <= 121,
      );
    });
  }

  test("natural, hilbert and random orders need far more tiles than hilbert-around for a central AOI", () => {
    const block = blockAround(16, 16, 10, 32, 32);
    const ids = block.cells.map((c) => cellKey(c.col, c.row));
    const done = (o: Ordering) =>
      aoiCompletion(
        orderTiles(tiles32, o).map((t) => t.id),
        ids,
      );
    // Natural order reaches the block's last row only after about two thirds of the archive.
    assert.ok(done({ kind: "natural" }) > 512);
    assert.ok(done({ kind: "random", seed: 3 }) > 512);
    assert.ok(done({ kind: "hilbert" }) > 120);
    // A disc reaches the square's corners late: more than the square itself, far less than a scan.
    const disc = done({ kind: "distance", around: block.centre });
    assert.ok(disc > 100 && disc < 200, `distance finished after ${disc}`);
  });

  test("tiles without a valid grid position are refused", () => {
    assert.throws(() => orderTiles([{ id: "a", col: -1, row: 0 }], { kind: "hilbert" }), LanemapError);
    assert.throws(
      () => orderTiles([{ id: "a", col: 0, row: 0 }], { kind: "distance", around: { x: NaN, y: 0 } }),
      LanemapError,
    );
  });
});

describe("splitRanges", () => {
  test("covers 0..n with contiguous ranges whose lengths differ by at most one", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 64 }), (n, parts) => {
        const ranges = splitRanges(n, parts);
        assert.equal(ranges.length, parts);
        let at = 0;
        const lengths: number[] = [];
        for (const [start, end] of ranges) {
          assert.equal(start, at);
          assert.ok(end >= start);
          lengths.push(end - start);
          at = end;
        }
        assert.equal(at, n);
        assert.ok(Math.max(...lengths) - Math.min(...lengths) <= 1);
      }),
    );
  });

  test("gives the longer ranges first", () => {
    assert.deepEqual(splitRanges(10, 3), [
      [0, 4],
      [4, 7],
      [7, 10],
    ]);
  });

  test("refuses a non-positive number of parts", () => {
    assert.throws(() => splitRanges(10, 0), RangeError);
  });
});

describe("aoiCompletion", () => {
  test("counts the tiles processed until the last block tile is done", () => {
    assert.equal(aoiCompletion(["a", "b", "c", "d", "e"], ["b", "d"]), 4);
    assert.equal(aoiCompletion(["a", "b"], []), 0);
  });

  test("refuses a block tile that is not in the order", () => {
    assert.throws(() => aoiCompletion(["a"], ["z"]), LanemapError);
  });
});
