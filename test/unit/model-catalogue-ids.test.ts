import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  classSummary,
  createClassifier,
  evaluateModel,
  featureDim,
  parseModel,
  serializeModel,
  type Model,
  type TrainingSamples,
} from "../../shared/internal.js";
import { tinyModel } from "../helpers/models.js";

const NAMES = ["forest", "water", "wetland"];

/** The model's own samples as reference samples, classes numbered by position. */
function referenceOf(model: Model): TrainingSamples {
  const dim = featureDim(model.features);
  const position = new Map(model.classes.map((c, i) => [c.id, i + 1]));
  const n = model.samples.y.length;
  return {
    x: Float64Array.from(model.samples.x),
    dim,
    y: Int32Array.from(model.samples.y, (id) => position.get(id) as number),
    classNames: model.classes.map((c) => c.name),
    tile: new Int32Array(n),
    pixel: Int32Array.from({ length: n }, (_, i) => i),
  };
}

describe("models with catalogue ids (not 1..n)", () => {
  const dense = tinyModel(NAMES);
  const gapped = tinyModel(NAMES, { ids: [2, 5, 9] });

  test("are valid artifacts that round-trip", () => {
    assert.deepEqual(parseModel(serializeModel(gapped)), gapped);
    assert.throws(
      () => parseModel({ ...gapped, classes: [...gapped.classes].reverse() }),
      /sorted by distinct id/,
    );
  });

  test("classify to their catalogue ids, exactly where the 1..n model classifies to 1..n", () => {
    const x = Float64Array.from(dense.samples.x);
    const a = createClassifier(dense).classifyFeatures(x);
    const b = createClassifier(gapped).classifyFeatures(x);
    const toGapped = [0, 2, 5, 9];
    assert.deepEqual(
      Array.from(b.classes),
      Array.from(a.classes, (c) => toGapped[c]),
    );
    assert.deepEqual(Array.from(b.confidence), Array.from(a.confidence));
  });

  test("summaries and accuracy count by id, so both numberings give the same figures per name", () => {
    const raster = {
      width: 3,
      height: 2,
      geoTransform: [0, 30, 0, 0, 0, -30] as [number, number, number, number, number, number],
      crs: null,
    };
    const classes = Uint8Array.from([9, 9, 2, 5, 0, 9]);
    const summary = classSummary(
      { width: 3, height: 2, classes, confidence: new Float32Array(6).fill(1), counts: [], validPixels: 5 },
      gapped,
      raster as never,
    );
    assert.deepEqual(
      summary.classes.map((c) => [c.name, c.pixels]),
      [
        ["forest", 1],
        ["water", 1],
        ["wetland", 3],
      ],
    );
    assert.equal(summary.dominant?.name, "wetland");
    const ea = evaluateModel(dense, referenceOf(dense));
    const eb = evaluateModel(gapped, referenceOf(gapped));
    assert.equal(eb.oa, ea.oa);
    assert.deepEqual(
      eb.perClass.map((c) => [c.name, c.f1]),
      ea.perClass.map((c) => [c.name, c.f1]),
    );
  });
});
