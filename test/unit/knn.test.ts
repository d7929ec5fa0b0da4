import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  KdTree,
  KnnEngine,
  createRandom,
  mortonOrder,
  referenceKernel,
  simdAvailable,
  startWorker,
  type KernelName,
  type Random,
} from "../../shared/internal.js";
import { missing, projectRoot } from "../helpers/env.js";

/** ml-knn, the reference implementation (CommonJS, untyped). */
interface MlKnn {
  predict(dataset: number[][]): number[];
  kdTree: { nearest(point: number[], k: number): [number[], number][] };
}
const MlKnnClass = createRequire(import.meta.url)("ml-knn") as new (
  dataset: number[][],
  labels: number[],
  options: { k: number },
) => MlKnn;

function randomSet(
  rng: Random,
  n: number,
  dim: number,
  classes: number,
  grid = 0,
): { x: Float64Array; y: Int32Array } {
  const x = new Float64Array(n * dim);
  for (let i = 0; i < x.length; i++) x[i] = grid > 0 ? rng.int(grid) : rng.normal();
  const y = Int32Array.from({ length: n }, () => 1 + rng.int(classes));
  return { x, y };
}

/** Squared distances of the k nearest points by brute force, sorted. */
function bruteKDistances(x: Float64Array, dim: number, q: Float64Array, qo: number, k: number): number[] {
  const d: number[] = [];
  for (let i = 0; i < x.length / dim; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const t = (q[qo + j] as number) - (x[i * dim + j] as number);
      s += t * t;
    }
    d.push(s);
  }
  return d.sort((a, b) => a - b).slice(0, k);
}

/** Why the kernel's build cannot be checked here (assemblyscript is a devDependency), or false. */
function assemblyScriptMissing(): string | false {
  try {
    createRequire(import.meta.url).resolve("assemblyscript/package.json");
    return false;
  } catch {
    return "assemblyscript is not installed (npm install without --omit=dev)";
  }
}

/** Both searches, each checked against the oracles: the SIMD one answers, the JS one is its fallback. */
const KERNELS = ["simd", "js"] as const satisfies readonly KernelName[];

describe("k-NN engine against ml-knn (the oracle)", () => {
  for (const kernel of KERNELS)
    test(`finds the same neighbours and the same class as ml-knn on small random sets (${kernel} kernel)`, () => {
      const rng = createRandom("knn-oracle");
      for (const [n, dim, k, classes] of [
        [150, 2, 1, 3],
        [300, 4, 5, 4],
        [500, 7, 5, 5],
        [400, 9, 7, 6],
      ] as const) {
        const { x, y } = randomSet(rng, n, dim, classes);
        const rows = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * dim, (i + 1) * dim)));
        const ml = new MlKnnClass(rows, Array.from(y), { k });
        const engine = new KnnEngine(x, y, dim, k, { kernel });
        assert.equal(engine.kernelName, kernel);
        const index = new Map(rows.map((r, i) => [r.join(","), i]));
        const queries = randomSet(rng, 200, dim, classes).x;
        let compared = 0;
        for (let q = 0; q < 200; q++) {
          const point = Array.from(queries.subarray(q * dim, (q + 1) * dim));
          const theirs = ml.kdTree
            .nearest(point, k)
            .map(([p]) => index.get(p.slice(0, dim).join(",")))
            .sort((a, b) => (a as number) - (b as number));
          const ours = engine.neighbours(queries, q * dim).sort((a, b) => a - b);
          assert.deepEqual(ours, theirs, `neighbours of query ${q} (n=${n}, d=${dim}, k=${k})`);
          const predicted = engine.predictOne(queries, q * dim);
          const votes = engine.lastVotes();
          const top = Math.max(...votes);
          // ml-knn breaks vote ties by neighbour order, lanemap by smallest id: compare untied votes.
          if (votes.filter((v) => v === top).length === 1) {
            assert.equal(predicted, ml.predict([point])[0], `class of query ${q}`);
            compared++;
          }
        }
        assert.ok(compared > 100, `too few untied votes to compare (${compared})`);
      }
    });

  for (const kernel of KERNELS)
    test(`returns exactly the k smallest distances, also with many duplicate points (${kernel} kernel)`, () => {
      const rng = createRandom("knn-duplicates");
      for (const [n, dim, k] of [
        [40, 2, 3],
        [700, 3, 5],
        [2000, 5, 9],
      ] as const) {
        const { x } = randomSet(rng, n, dim, 1, 4);
        const tree = new KdTree(x, dim, 30, kernel);
        const pos = new Int32Array(k);
        const dist = new Float64Array(k);
        const q = randomSet(rng, 100, dim, 1, 5).x;
        for (let i = 0; i < 100; i++) {
          tree.knn(q, i * dim, pos, dist);
          assert.deepEqual(
            Array.from(dist).sort((a, b) => a - b),
            bruteKDistances(x, dim, q, i * dim, k),
          );
        }
      }
    });
});

describe("generated and SIMD search kernels", () => {
  for (const kernel of KERNELS)
    test(`${kernel}: returns exactly the plain reference kernel's heap for every dimension from 1 to 12`, () => {
      const rng = createRandom("kernels");
      for (let dim = 1; dim <= 12; dim++) {
        // Few distinct values per axis: many equal distances, where order of discovery matters.
        const { x } = randomSet(rng, 400, dim, 1, 3);
        const generated = new KdTree(x, dim, 30, kernel);
        assert.equal(generated.kernelName, kernel);
        const reference = new KdTree(x, dim, 30, referenceKernel(dim));
        const q = randomSet(rng, 100, dim, 1, 4).x;
        const k = 1 + (dim % 7);
        const pa = new Int32Array(k);
        const da = new Float64Array(k);
        const pb = new Int32Array(k);
        const db = new Float64Array(k);
        for (let i = 0; i < 100; i++) {
          generated.knn(q, i * dim, pa, da);
          reference.knn(q, i * dim, pb, db);
          assert.deepEqual([pa, da], [pb, db], `dim ${dim}, query ${i}`);
        }
      }
    });
});

describe("batched search", () => {
  test("answers every query of a batch exactly as one-query searches do, among many equal distances", () => {
    const rng = createRandom("knn-batch-ties");
    for (const [n, dim, k] of [
      [300, 2, 5],
      [2000, 4, 5],
      [1500, 7, 9],
    ] as const) {
      // Three values per axis and duplicated points: most k-th distances are tied several ways.
      const { x } = randomSet(rng, n, dim, 1, 3);
      x.copyWithin(0, x.length / 2);
      const tree = new KdTree(x, dim);
      const count = 400;
      const q = randomSet(rng, count, dim, 1, 4).x;
      const order = Int32Array.from({ length: count }, (_, i) => (i * 7919) % count);
      const found = new Int32Array(count * k);
      tree.knnBatch(q, order, count, found, new Int32Array(k), new Float64Array(k));
      const pos = new Int32Array(k);
      const dist = new Float64Array(k);
      for (let i = 0; i < count; i++) {
        tree.knn(q, i * dim, pos, dist);
        assert.deepEqual(Array.from(found.subarray(i * k, i * k + k)), Array.from(pos), `query ${i}`);
      }
    }
  });

  test("predicts for a batch with ties what one-query prediction predicts, in any batch order", () => {
    const rng = createRandom("knn-predict-ties");
    const { x, y } = randomSet(rng, 900, 3, 4, 3);
    const engine = new KnnEngine(x, y, 3, 5);
    const q = randomSet(rng, 500, 3, 1, 4).x;
    const cls = new Uint8Array(500);
    const conf = new Float32Array(500);
    engine.predict(q, 500, cls, conf);
    for (let i = 0; i < 500; i++) {
      assert.equal(engine.predictOne(q, 3 * i), cls[i], `query ${i}`);
      assert.equal(Math.fround((engine.lastVotes()[cls[i] as number] as number) / 5), conf[i]);
    }
  });
});

describe("SIMD kernel", () => {
  test("answers by default wherever the runtime has WebAssembly SIMD (every supported Node)", () => {
    assert.ok(simdAvailable());
    const { x, y } = randomSet(createRandom("knn-default"), 50, 3, 2);
    assert.equal(new KnnEngine(x, y, 3, 5).kernelName, "simd");
  });

  test("answers batches of several chunks exactly as the JS kernel, for leaves of odd and even size", () => {
    const rng = createRandom("knn-simd-chunks");
    for (const [n, dim, k, leafSize] of [
      [1, 3, 1, 30],
      [7, 2, 3, 2],
      [5000, 7, 5, 30],
      [2001, 5, 8, 7],
    ] as const) {
      // Integer grid: most k-th distances are tied, so any difference in visiting order shows.
      const { x } = randomSet(rng, n, dim, 1, 5);
      const count = 3000;
      const q = randomSet(rng, count, dim, 1, 6).x;
      const order = Int32Array.from({ length: count }, (_, i) => (i * 7919) % count);
      const answers = KERNELS.map((kernel) => {
        const tree = new KdTree(x, dim, leafSize, kernel);
        const found = new Int32Array(count * k);
        const heapDist = new Float64Array(k);
        tree.knnBatch(q, order, count, found, new Int32Array(k), heapDist);
        return { found, heapDist };
      });
      assert.deepEqual(answers[0], answers[1], `n=${n}, d=${dim}, k=${k}, leaf size ${leafSize}`);
    }
  });

  test("predicts the JS kernel's classes and confidences, in batches of several chunks, with tied votes", () => {
    const rng = createRandom("knn-simd-predict");
    for (const [n, dim, k, classes] of [
      [900, 3, 5, 4],
      [3000, 7, 6, 9],
      [40, 2, 40, 3],
    ] as const) {
      const { x, y } = randomSet(rng, n, dim, classes, 4);
      const count = 2500;
      const q = randomSet(rng, count, dim, 1, 5).x;
      const answers = KERNELS.map((kernel) => {
        const engine = new KnnEngine(x, y, dim, k, { kernel });
        const cls = new Uint8Array(count + 3);
        const conf = new Float32Array(count + 3);
        engine.predict(q, count, cls, conf, 3);
        return { cls, conf };
      });
      assert.deepEqual(answers[0], answers[1], `n=${n}, d=${dim}, k=${k}`);
    }
  });

  test("orders queries as mortonOrder does", () => {
    const rng = createRandom("knn-simd-morton");
    for (const dim of [1, 3, 7, 12]) {
      const { x } = randomSet(rng, 200, dim, 1);
      const tree = new KdTree(x, dim);
      const q = randomSet(rng, 5000, dim, 1, 9).x;
      // Outside the training box too, and a NaN: clamped to the edge cells alike.
      q[0] = 1e9;
      q[1] = NaN;
      const simd = tree.simdFor(5);
      assert.ok(simd);
      assert.deepEqual(
        simd.mortonOrder(q, 5000, tree.extent),
        mortonOrder(q, 5000, dim, tree.extent),
        `d=${dim}`,
      );
    }
  });

  test("loads and answers in a worker thread as in the main thread", async () => {
    const { x, y } = randomSet(createRandom("knn-worker"), 800, 7, 4);
    const q = randomSet(createRandom("knn-worker-q"), 300, 7, 1).x;
    const main = new Uint8Array(300);
    const engine = new KnnEngine(x, y, 7, 5);
    engine.predict(q, 300, main, new Float32Array(300));
    const worker = startWorker(new URL("../helpers/knn-worker.ts", import.meta.url), {
      workerData: { x, y, q, dim: 7, k: 5 },
    });
    const answer = await new Promise<{ kernel: string; classes: Uint8Array }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    await worker.terminate();
    assert.equal(answer.kernel, "simd");
    assert.deepEqual(answer.classes, main);
  });

  test(
    "is committed as what its AssemblyScript source compiles to",
    { skip: assemblyScriptMissing() },
    () => {
      const r = spawnSync(
        process.execPath,
        [join(projectRoot, "infra", "bin", "build-knn-wasm.js"), "--check"],
        {
          encoding: "utf8",
        },
      );
      assert.equal(r.status, 0, r.stderr);
    },
  );
});

describe("k-NN voting", () => {
  test("predicts a training point's own label with k = 1 (distinct points)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.integer({ min: -50, max: 50 }), fc.integer({ min: -50, max: 50 })), {
          minLength: 1,
          maxLength: 80,
          selector: ([a, b]) => `${a},${b}`,
        }),
        fc.integer({ min: 1, max: 9 }),
        (points, classes) => {
          const x = Float64Array.from(points.flat());
          const y = Int32Array.from(
            points,
            ([a, b]) => 1 + ((((a * 7 + b * 13) % classes) + classes) % classes),
          );
          const engine = new KnnEngine(x, y, 2, 1);
          points.forEach((_, i) => assert.equal(engine.predictOne(x, 2 * i), y[i]));
        },
      ),
      { numRuns: 100 },
    );
  });

  test("reports a confidence in [1/k, 1] equal to the winner's share of the k votes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 2, max: 6 }),
        (seed, k, classes) => {
          const rng = createRandom(seed);
          const { x, y } = randomSet(rng, 60, 3, classes, 3);
          const engine = new KnnEngine(x, y, 3, k);
          const q = randomSet(rng, 50, 3, 1, 3).x;
          const cls = new Uint8Array(50);
          const conf = new Float32Array(50);
          engine.predict(q, 50, cls, conf);
          for (let i = 0; i < 50; i++) {
            assert.ok(
              (conf[i] as number) >= 1 / k - 1e-7 && (conf[i] as number) <= 1,
              `confidence ${conf[i]}`,
            );
            engine.predictOne(q, 3 * i);
            const votes = engine.lastVotes();
            assert.equal(
              votes.reduce((s, v) => s + v, 0),
              k,
            );
            assert.equal(Math.fround((votes[cls[i] as number] as number) / k), conf[i]);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  test("gives a tie in votes to the smallest class id", () => {
    // Two classes at equal distance on either side of the query, in both orders.
    for (const [left, right] of [
      [2, 1],
      [1, 2],
    ] as const) {
      const engine = new KnnEngine(Float64Array.from([-1, 1]), Int32Array.from([left, right]), 1, 2);
      assert.equal(engine.predictOne(Float64Array.from([0]), 0), 1);
    }
    // 2 + 2 votes of classes 3 and 5 and one far vote of class 4 not among k = 4.
    const x = Float64Array.from([0.1, 0.2, -0.1, -0.2, 9]);
    const y = Int32Array.from([5, 5, 3, 3, 4]);
    const engine = new KnnEngine(x, y, 1, 4);
    assert.equal(engine.predictOne(Float64Array.from([0]), 0), 3);
    assert.deepEqual(Array.from(engine.lastVotes()), [0, 0, 0, 2, 0, 2]);
  });

  test("refuses k larger than the training set and class ids outside 1..255", () => {
    assert.throws(
      () => new KnnEngine(Float64Array.from([0, 1]), [1, 2], 1, 3),
      /k must be an integer in 1\.\.2/,
    );
    assert.throws(() => new KnnEngine(Float64Array.from([0, 1]), [0, 2], 1, 1), /class id of sample 0/);
    assert.throws(() => new KnnEngine(Float64Array.from([0, 1]), [1, 256], 1, 1), /class id of sample 1/);
  });

  test("answers a batch in the same way whatever the order of its queries", () => {
    const rng = createRandom("knn-batch-order");
    const { x, y } = randomSet(rng, 500, 4, 4);
    const engine = new KnnEngine(x, y, 4, 5);
    const q = randomSet(rng, 300, 4, 1).x;
    const cls = new Uint8Array(300);
    const conf = new Float32Array(300);
    engine.predict(q, 300, cls, conf);
    for (let i = 0; i < 300; i++) assert.equal(engine.predictOne(q, 4 * i), cls[i]);
  });
});

describe("Morton order", () => {
  test("is a stable permutation that keeps equal points together", () => {
    const rng = createRandom("morton");
    const dim = 3;
    const q = Float64Array.from({ length: 600 * dim }, () => rng.int(4));
    const extent = Float64Array.from([0, 0, 0, 3, 3, 3]);
    const order = mortonOrder(q, 600, dim, extent);
    assert.deepEqual(
      Array.from(order).sort((a, b) => a - b),
      Array.from({ length: 600 }, (_, i) => i),
    );
    // 3 dimensions get 8 bits (256 cells) per axis, so each of the 4 values per axis has a cell of
    // its own: equal points are contiguous, and within a run of them the input order is kept.
    const seen = new Set<string>();
    let previous = "";
    let previousIndex = -1;
    for (const i of order) {
      const key = Array.from(q.subarray(i * dim, (i + 1) * dim)).join(",");
      if (key !== previous) {
        assert.ok(!seen.has(key), `point ${key} appears in two runs`);
        seen.add(key);
      } else assert.ok(i > previousIndex);
      previous = key;
      previousIndex = i;
    }
  });
});

const PYTHON_TREE = String.raw`
import sys, numpy as np
from sklearn.neighbors import KDTree
d = sys.argv[1]
for name in ("dup", "cont"):
    dim = 4 if name == "dup" else 7
    x = np.fromfile(f"{d}/{name}.x", dtype="<f8").reshape(-1, dim)
    q = np.fromfile(f"{d}/{name}.q", dtype="<f8").reshape(-1, dim)
    t = KDTree(x, leaf_size=30)
    np.asarray(t.get_arrays()[1], dtype="<i4").tofile(f"{d}/{name}.order")
    np.asarray(t.query(q, k=5, return_distance=False), dtype="<i4").tofile(f"{d}/{name}.nn")
`;

describe("kd-tree against scikit-learn", () => {
  test(
    "builds scikit-learn's tree and picks its neighbours among equal distances",
    { skip: missing({ peer: true }) },
    () => {
      const dir = mkdtempSync(join(tmpdir(), "lanemap-kdtree-"));
      try {
        const rng = createRandom("kdtree-sklearn");
        // Integer coordinates make equal distances common: only the same tree and the same visiting
        // order keep the same of several equidistant neighbours.
        const sets = {
          dup: { dim: 4, x: randomSet(rng, 3000, 4, 1, 6).x, q: randomSet(rng, 500, 4, 1, 6).x },
          cont: { dim: 7, x: randomSet(rng, 5000, 7, 1).x, q: randomSet(rng, 500, 7, 1).x },
        };
        for (const [name, s] of Object.entries(sets)) {
          writeFileSync(join(dir, `${name}.x`), new Uint8Array(s.x.buffer));
          writeFileSync(join(dir, `${name}.q`), new Uint8Array(s.q.buffer));
        }
        const r = spawnSync("/usr/bin/python3", ["-c", PYTHON_TREE, dir], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        const ints = (file: string): Int32Array =>
          new Int32Array(new Uint8Array(readFileSync(join(dir, file))).buffer);
        for (const [name, s] of Object.entries(sets))
          for (const kernel of KERNELS) {
            const tree = new KdTree(s.x, s.dim, 30, kernel);
            assert.deepEqual(
              Array.from(tree.order),
              Array.from(ints(`${name}.order`)),
              `${name}: tree order`,
            );
            const nn = ints(`${name}.nn`);
            const pos = new Int32Array(5);
            const dist = new Float64Array(5);
            for (let i = 0; i < 500; i++) {
              tree.knn(s.q, i * s.dim, pos, dist);
              const ours = Array.from(pos, (p) => tree.order[p] as number).sort((a, b) => a - b);
              const theirs = Array.from(nn.subarray(i * 5, i * 5 + 5)).sort((a, b) => a - b);
              assert.deepEqual(ours, theirs, `${name}, ${kernel} kernel: neighbours of query ${i}`);
            }
          }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
