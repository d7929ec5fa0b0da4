import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DEFAULT_MAX_SAMPLES_PER_FEATURE,
  assessSamples,
  balanceSamples,
  createFeatureSpec,
  type TrainingSamples,
} from "../../shared/index.js";

/** `perClass[i]` samples of class i + 1, in 1-band + NDVI feature space, classes well apart. */
function samples(perClass: readonly number[]): TrainingSamples {
  const x: number[] = [];
  const y: number[] = [];
  perClass.forEach((n, c) => {
    for (let i = 0; i < n; i++) {
      x.push(c * 10 + i * 0.01, c * 10 - i * 0.01, c * 10, c * 10, 0);
      y.push(c + 1);
    }
  });
  return {
    x: Float64Array.from(x),
    dim: 5,
    y: Int32Array.from(y),
    classNames: perClass.map((_, c) => `class${c + 1}`),
    tile: new Int32Array(y.length),
    pixel: Int32Array.from(y, (_, i) => i),
  };
}
const features = createFeatureSpec(4, { red: 3, nir: 4 });

describe("assessSamples: which accuracy assessment a label set gets", () => {
  test("5 or more samples in every class: a stratified 5-fold cross-validation", () => {
    const a = assessSamples(samples([8, 6, 5]), { features, k: 3 });
    assert.ok(a.made);
    assert.equal(a.evaluation.method, "folds");
    assert.equal(a.evaluation.folds?.length, 5);
    assert.equal(a.evaluation.oa, 1);
  });

  test("a class with 2 to 4 samples: a stratified hold-out", () => {
    const a = assessSamples(samples([8, 3]), { features, k: 3 });
    assert.ok(a.made);
    assert.equal(a.evaluation.method, "holdout");
  });

  test("a class with a single sample, or one class only: no assessment, and the reason", () => {
    const single = assessSamples(samples([8, 1]), { features, k: 3 });
    assert.equal(single.made, false);
    assert.match(single.made ? "" : single.reason, /smallest class has 1/);
    const one = assessSamples(samples([9]), { features, k: 3 });
    assert.equal(one.made, false);
    assert.match(one.made ? "" : one.reason, /one class only/);
  });

  test("the same samples and seed give the same assessment", () => {
    const s = samples([7, 9, 6]);
    assert.deepEqual(
      assessSamples(s, { features, k: 3, seed: 4 }),
      assessSamples(s, { features, k: 3, seed: 4 }),
    );
  });
});

describe("assessSamples: label features are not split across folds", () => {
  /**
   * `features` polygons per class; the pixels of one polygon are near-identical (jitter 0.001), and
   * polygons of a class differ widely, so a pixel split finds each test pixel's twin in training.
   */
  function polygons(features: readonly number[], pixelsPer = 12): TrainingSamples {
    const x: number[] = [];
    const y: number[] = [];
    const group: number[] = [];
    let g = 0;
    features.forEach((n, c) => {
      for (let f = 0; f < n; f++, g++) {
        // Polygon centres of the two classes interleave in feature space.
        const centre = ((g * 37) % 23) * 1.0;
        for (let i = 0; i < pixelsPer; i++) {
          x.push(centre + i * 0.001, centre, centre, centre, 0);
          y.push(c + 1);
          group.push(g);
        }
      }
    });
    return {
      x: Float64Array.from(x),
      dim: 5,
      y: Int32Array.from(y),
      classNames: features.map((_, c) => `class${c + 1}`),
      tile: new Int32Array(y.length),
      pixel: Int32Array.from(y, (_, i) => i),
      group: Int32Array.from(group),
    };
  }

  test("grouped 5-fold is lower than the pixel 5-fold on polygons of near-identical pixels", () => {
    const s = polygons([10, 10]);
    const grouped = assessSamples(s, { features, k: 3 });
    assert.ok(grouped.made);
    assert.equal(grouped.evaluation.method, "group-folds");
    assert.equal(grouped.note, undefined);
    assert.deepEqual(grouped.evaluation.groupsPerClass, { class1: 10, class2: 10 });
    const { group: _dropped, ...pixels } = s;
    const byPixel = assessSamples(pixels, { features, k: 3 });
    assert.ok(byPixel.made);
    assert.equal(byPixel.evaluation.method, "folds");
    assert.match(byPixel.note ?? "", /optimistic/);
    assert.equal(byPixel.evaluation.oa, 1);
    assert.ok(
      (grouped.evaluation.oa as number) < 0.8,
      `grouped OA ${grouped.evaluation.oa} should be far below the pixel OA 1`,
    );
  });

  test("a class with 2 to 4 features: fewer group folds, and the note says why", () => {
    const a = assessSamples(polygons([8, 3]), { features, k: 3 });
    assert.ok(a.made);
    assert.equal(a.evaluation.method, "group-folds");
    assert.equal(a.evaluation.folds?.length, 3);
    assert.match(a.note ?? "", /group 3-fold.*"class2" has only 3 label features/);
  });

  test("a class with a single feature: by pixel, and the note says the figures are optimistic", () => {
    const a = assessSamples(polygons([8, 1]), { features, k: 3 });
    assert.ok(a.made);
    assert.equal(a.evaluation.method, "folds");
    assert.match(a.note ?? "", /"class2" has 1 label feature,.*optimistic/);
  });
});

describe("balanceSamples: one large feature does not outvote the others", () => {
  /** Class 1: one feature of `big` samples; class 2: three features of 10. */
  function oneBigPolygon(big: number): TrainingSamples {
    const y: number[] = [];
    const group: number[] = [];
    const add = (c: number, g: number): void => {
      y.push(c);
      group.push(g);
    };
    for (let i = 0; i < big; i++) add(1, 0);
    for (let g = 1; g <= 3; g++) for (let i = 0; i < 10; i++) add(2, g);
    return {
      x: Float64Array.from(y.flatMap((c, i) => [c, i, 0, 0, 0])),
      dim: 5,
      y: Int32Array.from(y),
      classNames: ["forest", "water"],
      tile: new Int32Array(y.length),
      pixel: Int32Array.from(y, (_, i) => i),
      group: Int32Array.from(group),
    };
  }

  test("caps each feature at maxPerFeature by a seeded subsample, keeping sample order", () => {
    const s = oneBigPolygon(500);
    const a = balanceSamples(s, { maxPerFeature: 40, seed: 7 });
    assert.equal(a.samples.y.length, 40 + 30);
    assert.deepEqual([a.dropped, a.featuresCapped], [460, 1]);
    const pixels = Array.from(a.samples.pixel);
    assert.deepEqual(
      pixels,
      [...pixels].sort((p, q) => p - q),
      "kept samples stay in their order",
    );
    assert.ok(
      pixels.slice(0, 40).some((p) => p >= 40),
      "a random subsample, not the first 40",
    );
    assert.deepEqual(balanceSamples(s, { maxPerFeature: 40, seed: 7 }), a);
    assert.notDeepEqual(balanceSamples(s, { maxPerFeature: 40, seed: 8 }).samples.pixel, a.samples.pixel);
    assert.match(a.warnings[0] ?? "", /feature 1 \(class "forest"\) gave 500 samples; a random 40/);
  });

  test("warns when a class or one feature holds more than half the samples", () => {
    const a = balanceSamples(oneBigPolygon(500), { maxPerFeature: 2000 });
    assert.equal(a.dropped, 0);
    assert.ok(a.warnings.some((w) => /class "forest" holds 500 of 530 samples \(94 %\)/.test(w)));
    assert.ok(a.warnings.some((w) => /feature 1 holds 500 of 530 samples/.test(w)));
    assert.deepEqual(balanceSamples(oneBigPolygon(30), { maxPerFeature: 2000 }).warnings, []);
  });

  test("the default cap is 2000 per feature", () => {
    assert.equal(DEFAULT_MAX_SAMPLES_PER_FEATURE, 2000);
    assert.equal(balanceSamples(oneBigPolygon(2500)).samples.y.length, 2030);
  });
});
