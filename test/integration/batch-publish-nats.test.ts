/**
 * The batch publisher on the NATS published views (LANEMAP_STORAGE=nats): a run uploads its
 * version and moves CURRENT in KV; a run on another machine (another data directory) reuses the
 * shared current version and numbers its own above it; a CURRENT moved while a run was working
 * fails that run with VIEW_POINTER_CONFLICT and leaves the pointer where the operator put it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createBatchRunner } from "../../batch/index.js";
import { NatsPublishedViews } from "../../shared/adapters/nats/index.js";
import { LanemapError } from "../../shared/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { eventually } from "../helpers/serving-server.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet();
});
after(() => set?.dispose());

const skip = natsMissing();

describe("publishing batch views to NATS", { ...(skip ? { skip } : {}) }, () => {
  test("runs on two machines publish to one store, reuse its current version, and refuse a pointer that moved", async () => {
    await using nats = await natsFixture();
    const a = await makeDataDir(set, "nats-a");
    const b = await makeDataDir(set, "nats-b");
    const viewsOf = (dataDir: string) =>
      NatsPublishedViews.open(nats.nc, { cacheDir: join(dataDir, "cache", "views") });
    const viewsA = await viewsOf(a.dataDir);
    const viewsB = await viewsOf(b.dataDir);

    const first = await createBatchRunner(a.config(), { logger: a.logger, views: viewsA }).run();
    assert.equal(first.version, "v000001");
    assert.equal(first.tiles.classified, 9);
    assert.deepEqual(
      (await viewsB.list()).map((v) => [v.name, v.manifest.tiles.total]),
      [["v000001", 9]],
    );
    const afterFirst = await viewsB.current();
    assert.equal(afterFirst?.name, "v000001");

    // Machine b has never seen v000001 locally: it downloads it to reuse every unchanged tile.
    const second = await createBatchRunner(b.config(), { logger: b.logger, views: viewsB }).run();
    assert.equal(second.version, "v000002", "numbered above every version in the shared store");
    assert.equal(second.tiles.reused, 9);
    assert.equal(second.tiles.classified, 0);
    const afterSecond = await viewsA.current();
    assert.equal(afterSecond?.name, "v000002");
    assert.ok(afterSecond.revision > afterFirst.revision);

    // An operator rolls back while a run on a is about to publish: the run must not publish over it.
    const lines: { msg: string }[] = [];
    const runner = createBatchRunner(a.config(), {
      logger: testLogger(lines),
      views: viewsA,
      hooks: { tileDelayMs: 0, publishDelayMs: 1500 },
    });
    const run = runner.run({ full: true });
    await eventually(
      () => (lines.some((l) => l.msg === "test hook: pausing before the publish rename") ? true : undefined),
      2400,
    );
    const rolledBack = await viewsB.setCurrent("v000001");
    await assert.rejects(run, (err: unknown) => {
      assert.ok(err instanceof LanemapError);
      assert.equal(err.code, "VIEW_POINTER_CONFLICT", err.message);
      return true;
    });
    assert.deepEqual(await viewsA.current(), rolledBack, "CURRENT stays where the operator put it");
  });
});
