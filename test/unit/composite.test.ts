import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  NO_SOURCE,
  compareCandidates,
  compositePixels,
  overlayComposite,
  pixelCandidates,
  singleLayerComposite,
  type MergeCandidate,
  type PixelLayer,
} from "../../shared/index.js";

const at = (day: number) => new Date(Date.UTC(2026, 0, 1 + day)).toISOString();

/** A layer from a class list (0 = not valid); votes = class + 10 so a test sees where votes came from. */
const layer = (classes: number[]): PixelLayer => ({
  classes: Uint8Array.from(classes),
  votes: Uint8Array.from(classes, (c) => (c === 0 ? 0 : c + 10)),
});

/** The rule as a sentence: each pixel, the first layer (newest first) in which it is valid. */
function naive(
  layers: readonly PixelLayer[],
  n: number,
): { classes: number[]; votes: number[]; source: number[] } {
  const out = { classes: [] as number[], votes: [] as number[], source: [] as number[] };
  for (let i = 0; i < n; i++) {
    const j = layers.findIndex((l) => l.classes[i] !== 0);
    out.classes.push(j < 0 ? 0 : (layers[j]!.classes[i] as number));
    out.votes.push(j < 0 ? 0 : (layers[j]!.votes[i] as number));
    out.source.push(j < 0 ? NO_SOURCE : j);
  }
  return out;
}

/** Random layers: classes 1..5, each pixel masked with the layer's own cloud probability. */
const layersArb = (n: number, max: number) =>
  fc.array(
    fc.tuple(
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: n, maxLength: n }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: n, maxLength: n }),
      fc.double({ min: 0, max: 1, noNaN: true }),
    ),
    { minLength: 0, maxLength: max },
  );
const toLayer = ([cls, u, cloud]: [number[], number[], number]): PixelLayer =>
  layer(cls.map((c, i) => ((u[i] as number) < cloud ? 0 : c)));

describe("the per-pixel rule", () => {
  test("a clear older scene shows through the cloud block of a newer one, and only there", () => {
    const fresh = layer([2, 0, 0, 2]);
    const old = layer([1, 1, 1, 1]);
    const c = compositePixels([fresh, old], 4);
    assert.deepEqual([...c.classes], [2, 1, 1, 2]);
    assert.deepEqual([...c.source], [0, 1, 1, 0]);
    assert.deepEqual(c.contributions, [2, 2]);
  });

  test("a pixel no candidate has valid stays not classified, with no source", () => {
    const c = compositePixels([layer([0, 3]), layer([0, 0])], 2);
    assert.deepEqual([...c.classes], [0, 3]);
    assert.deepEqual([...c.source], [NO_SOURCE, 0]);
    assert.deepEqual(c.contributions, [1, 0]);
  });

  test("equals the naive reference for random candidates and random masks, each pixel counted once", () => {
    const n = 24;
    fc.assert(
      fc.property(layersArb(n, 6), (raw) => {
        const layers = raw.map(toLayer);
        const c = compositePixels(layers, n);
        const want = naive(layers, n);
        assert.deepEqual([...c.classes], want.classes);
        assert.deepEqual([...c.votes], want.votes);
        assert.deepEqual([...c.source], want.source);
        const sourced = want.source.filter((s) => s !== NO_SOURCE).length;
        assert.equal(
          c.contributions.reduce((a, b) => a + b, 0),
          sourced,
        );
        c.contributions.forEach((k, j) => assert.equal(k, want.source.filter((s) => s === j).length));
      }),
      { numRuns: 300 },
    );
  });

  test("a single layer's composite keeps its valid pixels and names no source for the rest", () => {
    const c = singleLayerComposite(layer([0, 4, 4]));
    assert.deepEqual([...c.source], [NO_SOURCE, 0, 0]);
    assert.deepEqual(c.contributions, [2]);
  });

  test("refuses layers of the wrong size or out of order", () => {
    assert.throws(() => compositePixels([layer([1, 2])], 3), /pixels/);
    assert.throws(() => overlayComposite(undefined, [], [layer([1]), layer([1])], [1, 0], 1), /newest first/);
  });
});

describe("the per-pixel rule across lanes", () => {
  type Cand = MergeCandidate & { layer: PixelLayer };
  const cellArb = (n: number) =>
    fc.record({
      watermark: fc.integer({ min: 0, max: 20 }),
      batch: fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 20 })), {
        maxLength: 5,
      }),
      live: fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 30 })), {
        maxLength: 5,
      }),
      rasters: layersArb(n, 10).filter((l) => l.length === 10),
    });

  test("a batch composite overlaid with live results equals the rule over every acquisition at once", () => {
    const n = 16;
    fc.assert(
      fc.property(cellArb(n), ({ watermark, batch, live, rasters }) => {
        const layers = rasters.map(toLayer);
        let k = 0;
        const mk = (lane: "batch" | "live", [day, seq]: [number, number]): Cand => ({
          lane,
          tileId: `${lane}${k}`,
          cell: "c",
          acquired: at(day),
          // Batch results are at or below the watermark (the run read them); live ones anywhere.
          ingestSeq: lane === "batch" ? Math.min(seq, watermark) : seq,
          layer: layers[k++ % layers.length]!,
        });
        const batchCands = batch.map((b) => mk("batch", b)).sort(compareCandidates);
        const liveCands = live.map((l) => mk("live", l));

        // What the batch lane stores: the composite of its acquisitions, newest first.
        const stored = compositePixels(
          batchCands.map((c) => c.layer),
          n,
        );
        // What serving does: order every source, lay the live ones over the stored composite.
        const { ordered, absorbed } = pixelCandidates(batchCands, liveCands, watermark);
        const rank = new Map(ordered.map((c, r) => [c, r]));
        const overLive = ordered.filter((c) => c.lane === "live");
        const merged = overlayComposite(
          stored,
          batchCands.map((c) => rank.get(c)!),
          overLive.map((c) => c.layer),
          overLive.map((c) => rank.get(c)!),
          n,
        );

        // The reference: every acquisition of the cell (live above W only), newest first, per pixel.
        const all = [...batchCands, ...liveCands.filter((c) => c.ingestSeq > watermark)].sort(
          compareCandidates,
        );
        const want = naive(
          all.map((c) => c.layer),
          n,
        );
        assert.deepEqual([...merged.classes], want.classes);
        assert.deepEqual(
          [...merged.source].map((s) => (s === NO_SOURCE ? null : ordered[s]!.tileId)),
          want.source.map((s) => (s === NO_SOURCE ? null : all[s]!.tileId)),
        );
        assert.ok(absorbed.every((c) => c.ingestSeq <= watermark));
        assert.equal(
          merged.contributions.reduce((a, b) => a + b, 0),
          want.source.filter((s) => s !== NO_SOURCE).length,
        );
      }),
      { numRuns: 300 },
    );
  });
});
