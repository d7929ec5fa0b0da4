import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fc from "fast-check";
import {
  addConfusion,
  assessAccuracy,
  confusionMatrix,
  createRandom,
  kFoldSplits,
  stratifiedGroupKFoldSplits,
  stratifiedSplit,
} from "../../shared/internal.js";
import { missing } from "../helpers/env.js";

const close = (a: number | null, b: number, tolerance = 1e-12): boolean =>
  a !== null && Math.abs(a - b) <= tolerance;

describe("confusion matrix and accuracy figures", () => {
  // Hand-computed: rows = reference 1..3, columns = predicted 1..3.
  //   ref 1: 3 1 0    ref 2: 1 1 0    ref 3: 0 1 3
  const reference = [1, 1, 1, 1, 2, 2, 3, 3, 3, 3];
  const predicted = [1, 1, 1, 2, 2, 1, 3, 3, 2, 3];

  test("counts reference labels in rows and predictions in columns", () => {
    const cm = confusionMatrix(reference, predicted, [1, 2, 3]);
    assert.deepEqual(cm.matrix, [
      [3, 1, 0],
      [1, 1, 0],
      [0, 1, 3],
    ]);
  });

  test("gives overall accuracy, kappa, producer's and user's accuracy and F1 as computed by hand", () => {
    const r = assessAccuracy(confusionMatrix(reference, predicted, [1, 2, 3]), ["forest", "water", "urban"]);
    assert.equal(r.n, 10);
    assert.ok(close(r.oa, 0.7));
    // pe = (4·4 + 2·3 + 4·3) / 100 = 0.34; kappa = (0.7 - 0.34) / 0.66.
    assert.ok(close(r.kappa, 0.36 / 0.66));
    const [forest, water, urban] = r.perClass;
    assert.deepEqual(
      [forest?.name, forest?.reference, forest?.predicted, forest?.correct],
      ["forest", 4, 4, 3],
    );
    assert.ok(
      close(forest?.producers ?? null, 0.75) &&
        close(forest?.users ?? null, 0.75) &&
        close(forest?.f1 ?? null, 0.75),
    );
    assert.ok(
      close(water?.producers ?? null, 0.5) &&
        close(water?.users ?? null, 1 / 3) &&
        close(water?.f1 ?? null, 0.4),
    );
    assert.ok(
      close(urban?.producers ?? null, 0.75) &&
        close(urban?.users ?? null, 1) &&
        close(urban?.f1 ?? null, 1.5 / 1.75),
    );
  });

  test("leaves out pairs whose reference or prediction is not among the labels", () => {
    const cm = confusionMatrix([1, 2, 0, 2, 9], [1, 0, 2, 2, 1], [1, 2]);
    assert.deepEqual(cm.matrix, [
      [1, 0],
      [0, 1],
    ]);
  });

  test("reports undefined ratios as null: a class never predicted, an empty matrix, a single-class agreement", () => {
    const r = assessAccuracy(confusionMatrix([1, 1, 2], [1, 1, 1], [1, 2]));
    assert.equal(r.perClass[1]?.users, null);
    assert.equal(r.perClass[1]?.producers, 0);
    assert.equal(r.perClass[1]?.f1, null);
    const empty = assessAccuracy(confusionMatrix([], [], [1, 2]));
    assert.equal(empty.oa, null);
    assert.equal(empty.kappa, null);
    const single = assessAccuracy(confusionMatrix([1, 1], [1, 1], [1, 2]));
    assert.equal(single.oa, 1);
    assert.equal(single.kappa, null);
  });

  test("adds the matrices of several folds cell by cell", () => {
    const a = confusionMatrix([1, 2], [1, 1], [1, 2]);
    const b = confusionMatrix([2, 2], [2, 1], [1, 2]);
    assert.deepEqual(addConfusion(a, b).matrix, [
      [1, 0],
      [2, 1],
    ]);
    assert.throws(() => addConfusion(a, confusionMatrix([], [], [1, 3])), /different labels/);
  });

  test("has kappa 1 for perfect agreement and overall accuracy equal to the diagonal share", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })), {
          minLength: 1,
          maxLength: 200,
        }),
        (pairs) => {
          const ref = pairs.map(([a]) => a);
          const pred = pairs.map(([, b]) => b);
          const r = assessAccuracy(confusionMatrix(ref, pred, [1, 2, 3, 4]));
          assert.ok(close(r.oa, pairs.filter(([a, b]) => a === b).length / pairs.length));
          const perfect = assessAccuracy(confusionMatrix(ref, ref, [1, 2, 3, 4]));
          if (new Set(ref).size > 1) assert.ok(close(perfect.kappa, 1));
        },
      ),
    );
  });

  const PYTHON = String.raw`
import json, sys
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support
d = json.load(sys.stdin)
labels = [1, 2, 3, 4, 5]
p, r, f, _ = precision_recall_fscore_support(d["ref"], d["pred"], labels=labels, average=None, zero_division=0)
print(json.dumps({
  "cm": confusion_matrix(d["ref"], d["pred"], labels=labels).tolist(),
  "kappa": cohen_kappa_score(d["ref"], d["pred"]),
  "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
}))
`;

  test(
    "agrees with scikit-learn's confusion_matrix, cohen_kappa_score and per-class precision/recall/F1",
    { skip: missing({ peer: true }) },
    () => {
      const rng = createRandom("accuracy-sklearn");
      const ref: number[] = [];
      const pred: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const c = 1 + rng.int(5);
        ref.push(c);
        // Mostly right, with class-dependent confusion.
        pred.push(rng.next() < 0.55 + 0.08 * c ? c : 1 + rng.int(5));
      }
      const out = spawnSync("/usr/bin/python3", ["-c", PYTHON], {
        input: JSON.stringify({ ref, pred }),
        encoding: "utf8",
      });
      assert.equal(out.status, 0, out.stderr);
      const sk = JSON.parse(out.stdout) as {
        cm: number[][];
        kappa: number;
        precision: number[];
        recall: number[];
        f1: number[];
      };
      const r = assessAccuracy(confusionMatrix(ref, pred, [1, 2, 3, 4, 5]));
      assert.deepEqual(r.confusion.matrix, sk.cm);
      assert.ok(close(r.kappa, sk.kappa, 1e-12), `kappa ${r.kappa} vs ${sk.kappa}`);
      r.perClass.forEach((c, i) => {
        assert.ok(close(c.users, sk.precision[i] as number), `precision of ${c.label}`);
        assert.ok(close(c.producers, sk.recall[i] as number), `recall of ${c.label}`);
        assert.ok(close(c.f1, sk.f1[i] as number), `f1 of ${c.label}`);
      });
    },
  );
});

describe("splits", () => {
  const labels = [...new Array(50).fill(1), ...new Array(20).fill(2), ...new Array(7).fill(3), 4];

  test("hold out round(n · fraction) of every class, at least one of a class of two or more, none of a singleton", () => {
    const s = stratifiedSplit(labels, 0.3, 1);
    const count = (idx: Int32Array, c: number): number =>
      Array.from(idx).filter((i) => labels[i] === c).length;
    assert.deepEqual(
      [1, 2, 3, 4].map((c) => count(s.test, c)),
      [15, 6, 2, 0],
    );
    assert.deepEqual(
      [1, 2, 3, 4].map((c) => count(s.train, c)),
      [35, 14, 5, 1],
    );
    assert.deepEqual(
      [...s.train, ...s.test].sort((a, b) => a - b),
      labels.map((_, i) => i),
    );
    assert.deepEqual(
      Array.from(s.test),
      Array.from(s.test).sort((a, b) => a - b),
    );
  });

  test("are the same for the same seed and differ for another", () => {
    assert.deepEqual(stratifiedSplit(labels, 0.3, 7), stratifiedSplit(labels, 0.3, 7));
    assert.notDeepEqual(stratifiedSplit(labels, 0.3, 7).test, stratifiedSplit(labels, 0.3, 8).test);
    assert.deepEqual(kFoldSplits(labels, 5, "x"), kFoldSplits(labels, 5, "x"));
  });

  test("deal every sample to exactly one of k folds, each fold holding its share of every class", () => {
    const folds = kFoldSplits(labels, 5, 3);
    const tested = folds.flatMap((f) => Array.from(f.test)).sort((a, b) => a - b);
    assert.deepEqual(
      tested,
      labels.map((_, i) => i),
    );
    for (const f of folds) {
      assert.equal(f.train.length + f.test.length, labels.length);
      const ones = Array.from(f.test).filter((i) => labels[i] === 1).length;
      assert.equal(ones, 10);
    }
  });

  test("refuse fractions outside (0, 1) and fold counts outside 2..n", () => {
    assert.throws(() => stratifiedSplit(labels, 0, 1), /between 0 and 1/);
    assert.throws(() => stratifiedSplit(labels, 1, 1), /between 0 and 1/);
    assert.throws(() => kFoldSplits(labels, 1, 1), /folds must be an integer in 2\.\.78/);
    assert.throws(() => kFoldSplits([1, 2], 3, 1), /folds must be/);
  });
});

describe("stratified group k-fold splits", () => {
  /** `groupsPerClass[c]` groups of class c + 1, group g holding 1 + (g * 7) % 11 samples. */
  function grouped(groupsPerClass: readonly number[]): { labels: number[]; groups: number[] } {
    const labels: number[] = [];
    const groups: number[] = [];
    let g = 0;
    groupsPerClass.forEach((n, c) => {
      for (let i = 0; i < n; i++, g++)
        for (let j = 0; j < 1 + ((g * 7) % 11); j++) {
          labels.push(c + 1);
          groups.push(g);
        }
    });
    return { labels, groups };
  }

  test("put every group wholly in one fold and test every sample exactly once", () => {
    const { labels, groups } = grouped([9, 6, 12]);
    const folds = stratifiedGroupKFoldSplits(labels, groups, 5, 2);
    const foldOf = new Map<number, number>();
    folds.forEach((f, k) => {
      for (const i of f.test) {
        const g = groups[i] as number;
        assert.equal(foldOf.get(g) ?? k, k, `group ${g} is in folds ${foldOf.get(g)} and ${k}`);
        foldOf.set(g, k);
      }
      assert.equal(f.train.length + f.test.length, labels.length);
    });
    assert.deepEqual(
      folds.flatMap((f) => Array.from(f.test)).sort((a, b) => a - b),
      labels.map((_, i) => i),
    );
  });

  test("are stratified: with at least k groups per class, every fold tests every class (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 5, max: 12 }), { minLength: 2, maxLength: 4 }),
        fc.integer({ min: 2, max: 5 }),
        fc.integer(),
        (perClass, k, seed) => {
          const { labels, groups } = grouped(perClass);
          const folds = stratifiedGroupKFoldSplits(labels, groups, k, seed);
          for (const f of folds) {
            const classes = new Set(Array.from(f.test, (i) => labels[i]));
            assert.equal(classes.size, perClass.length, "a fold misses a class");
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  test("refuse more folds than groups", () => {
    assert.throws(() => stratifiedGroupKFoldSplits([1, 1, 2, 2], [0, 0, 1, 1], 3, 1), RangeError);
  });

  const PYTHON_SGKF = String.raw`
import json, sys
from sklearn.model_selection import StratifiedGroupKFold
d = json.load(sys.stdin)
print(json.dumps([
  [sorted(int(i) for i in test) for _, test in
   StratifiedGroupKFold(n_splits=k, shuffle=False).split(d["labels"], d["labels"], d["groups"])]
  for k in d["ks"]
]))
`;

  test(
    "without a shuffle (seed null), make scikit-learn's StratifiedGroupKFold(shuffle=False) folds",
    { skip: missing({ peer: true }) },
    () => {
      const { labels, groups } = grouped([7, 5, 9, 6]);
      const ks = [2, 3, 5];
      const out = spawnSync("/usr/bin/python3", ["-c", PYTHON_SGKF], {
        input: JSON.stringify({ labels, groups, ks }),
        encoding: "utf8",
      });
      assert.equal(out.status, 0, out.stderr);
      const byFirst = (a: number[], b: number[]): number => (a[0] ?? 0) - (b[0] ?? 0);
      (JSON.parse(out.stdout) as number[][][]).forEach((sk, i) => {
        const k = ks[i] as number;
        const ours = stratifiedGroupKFoldSplits(labels, groups, k, null).map((f) => Array.from(f.test));
        assert.deepEqual(ours.sort(byFirst), sk.sort(byFirst), `k = ${k}`);
      });
    },
  );
});
