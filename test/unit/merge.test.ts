import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { mergeCell, mergeViews, newestOf, type MergeCandidate } from "../../shared/index.js";

const at = (day: number) => new Date(Date.UTC(2026, 0, 1 + day)).toISOString();
const cand = (
  lane: "batch" | "live",
  tileId: string,
  day: number,
  ingestSeq: number,
  cell = "c0000r0000",
) => ({
  lane,
  tileId,
  cell,
  acquired: at(day),
  ingestSeq,
});

describe("the merge rule", () => {
  test("a live result newer than the batch's wins when its sequence is above the watermark", () => {
    const m = mergeCell("c", cand("batch", "b", 1, 3), [cand("live", "l", 2, 9)], 5);
    assert.equal(m.winner?.tileId, "l");
    assert.equal(m.candidates.length, 2);
  });

  test("a live result at or below the watermark is absorbed and never competes", () => {
    const m = mergeCell("c", cand("batch", "b", 1, 3), [cand("live", "l", 9, 5)], 5);
    assert.equal(m.winner?.tileId, "b");
    assert.deepEqual(
      m.absorbed.map((r) => r.tileId),
      ["l"],
    );
  });

  test("a late-arriving older acquisition does not hide a newer batch result", () => {
    const m = mergeCell("c", cand("batch", "b", 5, 3), [cand("live", "old", 1, 9)], 5);
    assert.equal(m.winner?.tileId, "b");
  });

  test("equal acquisition times go to the higher ingest sequence", () => {
    const m = mergeCell("c", undefined, [cand("live", "x", 1, 7), cand("live", "y", 1, 8)], 0);
    assert.equal(m.winner?.tileId, "y");
  });

  test("a cell with only absorbed live results shows nothing from the live lane", () => {
    const m = mergeCell("c", undefined, [cand("live", "x", 1, 2)], 5);
    assert.equal(m.winner, undefined);
  });

  test("merged views equal a naive reference and list every cell exactly once", () => {
    const cells = ["a", "b", "c", "d"];
    const arb = fc.record({
      watermark: fc.integer({ min: 0, max: 30 }),
      batch: fc.array(
        fc.tuple(fc.constantFrom(...cells), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 30 })),
      ),
      live: fc.array(
        fc.tuple(fc.constantFrom(...cells), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 40 })),
      ),
    });
    fc.assert(
      fc.property(arb, ({ watermark, batch, live }) => {
        const batchRows: MergeCandidate[] = batch
          .filter(([, , s]) => s <= watermark)
          .map(([cell, day, seq], i) => cand("batch", `b${i}`, day, seq, cell));
        const liveRows: MergeCandidate[] = live.map(([cell, day, seq], i) =>
          cand("live", `l${i}`, day, seq, cell),
        );
        // The batch view holds the newest batch result per cell.
        const batchByCell = new Map<string, MergeCandidate>();
        for (const cell of cells) {
          const n = newestOf(batchRows.filter((r) => r.cell === cell));
          if (n) batchByCell.set(cell, n);
        }
        const liveByCell = new Map<string, MergeCandidate[]>();
        for (const r of liveRows) liveByCell.set(r.cell, [...(liveByCell.get(r.cell) ?? []), r]);
        const merged = mergeViews(batchByCell, liveByCell, watermark);
        const seen = merged.map((m) => m.cell);
        assert.equal(new Set(seen).size, seen.length, "each cell once");
        for (const m of merged) {
          // Reference: brute force over all eligible candidates.
          const eligible = [
            ...(batchByCell.has(m.cell) ? [batchByCell.get(m.cell)!] : []),
            ...liveRows.filter((r) => r.cell === m.cell && r.ingestSeq > watermark),
          ];
          const best = eligible.reduce<MergeCandidate | undefined>((acc, r) => {
            if (!acc) return r;
            const d = Date.parse(r.acquired) - Date.parse(acc.acquired);
            if (d > 0 || (d === 0 && r.ingestSeq > acc.ingestSeq)) return r;
            if (d === 0 && r.ingestSeq === acc.ingestSeq && acc.lane === "live" && r.lane === "batch")
              return r;
            return acc;
          }, undefined);
          assert.equal(m.winner?.tileId, best?.tileId);
          for (const a of m.absorbed) assert.ok(a.ingestSeq <= watermark && a.lane === "live");
        }
      }),
      { numRuns: 300 },
    );
  });
});
