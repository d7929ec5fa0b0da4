/**
 * The reads before a batch run starts ride out a leader election (issue 14: `batch run` ended with a
 * bare "lanemap: timeout" 5 s in): a timeout of the model registry is retried, and a read that
 * fails otherwise is named in the error.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createBatchRunner } from "../../batch/index.js";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import type { ModelRegistry } from "../../shared/index.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";

/** The registry on files whose `model` read fails the first `failures` times with `make()`. */
function failingReads(registry: FileModelRegistry, failures: number, make: () => Error): ModelRegistry {
  let reads = 0;
  return new Proxy(registry, {
    get(target, key) {
      if (key === "model")
        return async (version: string) => {
          if (reads++ < failures) throw make();
          return target.model(version);
        };
      const v: unknown = Reflect.get(target, key);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

const timeout = () => Object.assign(new Error("timeout"), { name: "TimeoutError" });

describe("the start of a batch run", () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 2, height: 1, tileSize: 64, seed: 3 });
  });
  after(() => set?.dispose());

  test("a model registry that times out once (a leader election) is read again and the run succeeds", async () => {
    const d = await makeDataDir(set, "transient");
    const models = failingReads(await FileModelRegistry.open(d.dataDir), 1, timeout);
    const runner = createBatchRunner(d.config(), { logger: testLogger(), models });
    try {
      const report = await runner.run({ model: set.model.version });
      assert.equal(report.tiles.failed, 0);
    } finally {
      await runner.close();
    }
  });

  test("a read that keeps failing is named in the error, not a bare broker message", async () => {
    const d = await makeDataDir(set, "broken");
    const broken = () => new Error("the registry's disk is on fire");
    const models = failingReads(await FileModelRegistry.open(d.dataDir), 99, broken);
    const runner = createBatchRunner(d.config(), { logger: testLogger(), models });
    try {
      await assert.rejects(runner.run({ model: set.model.version }), {
        code: "BATCH_FAILED",
        message: "resolving the run's model: the registry's disk is on fire",
      });
    } finally {
      await runner.close();
    }
  });
});
