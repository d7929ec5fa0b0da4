import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { acquireBatchLock, createBatchRunner, scheduleBatchRuns } from "../../batch/index.js";
import { readCurrentPointer } from "../../shared/adapters/archive/index.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 2 });
});
after(() => set?.dispose());

describe("the batch schedule", () => {
  test("fires on its cron expression and publishes a version", async () => {
    const fx = await makeDataDir(set, "cron");
    const lines: { msg: string }[] = [];
    const logger = testLogger(lines);
    const config = fx.config({ LANEMAP_BATCH_CRON: "* * * * * *", LANEMAP_BATCH_TZ: "Europe/Paris" });
    const schedule = scheduleBatchRuns(createBatchRunner(config, { logger }), config, { logger });
    try {
      assert.ok(schedule.nextRun() instanceof Date);
      while (!lines.some((l) => l.msg === "scheduled batch run finished"))
        await new Promise((r) => setTimeout(r, 50));
    } finally {
      await schedule.stop();
    }
    assert.equal(await readCurrentPointer(fx.dataDir), "v000001");
    assert.ok(lines.some((l) => l.msg === "scheduled batch run firing"));
  });

  test("a tick while another process holds the run lock is skipped with a log line, not queued", async () => {
    const fx = await makeDataDir(set, "cron-busy");
    const lines: { msg: string }[] = [];
    const logger = testLogger(lines);
    const config = fx.config({ LANEMAP_BATCH_CRON: "0 2 * * *" });
    const schedule = scheduleBatchRuns(createBatchRunner(config, { logger }), config, { logger });
    const lock = acquireBatchLock(fx.dataDir, { runId: "manual-run", logger });
    try {
      assert.equal(await schedule.tick(), undefined);
      assert.ok(lines.some((l) => l.msg === "scheduled batch run skipped: another run is active"));
      assert.equal(await readCurrentPointer(fx.dataDir), null);
    } finally {
      lock.releaseSync();
      await schedule.stop();
    }
    const report = await schedule.tick();
    assert.equal(report?.version, "v000001");
  });

  test("a scheduled run that fails transiently runs again after its retry delay and publishes", async () => {
    const fx = await makeDataDir(set, "cron-retry");
    const lines: { msg: string }[] = [];
    const logger = testLogger(lines);
    const config = fx.config({ LANEMAP_BATCH_CRON: "0 2 * * *" });
    // The first attempt cannot write its view: where the batch views go is a file (a full or
    // unmounted disk, say); it is gone by the retry.
    const views = join(fx.dataDir, "views", "batch");
    await mkdir(join(fx.dataDir, "views"), { recursive: true });
    await writeFile(views, "not a folder");
    const schedule = scheduleBatchRuns(createBatchRunner(config, { logger }), config, {
      logger,
      retryDelaysMs: [1_000],
    });
    try {
      const report = schedule.tick();
      while (
        !lines.some((l) => l.msg === "scheduled batch run failed; retrying, it resumes from its checkpoint")
      )
        await new Promise((r) => setTimeout(r, 20));
      await rm(views);
      assert.equal((await report)?.version, "v000001");
    } finally {
      await schedule.stop();
    }
    assert.equal(await readCurrentPointer(fx.dataDir), "v000001");
  });

  test("an invalid cron expression is refused at start", async () => {
    const fx = await makeDataDir(set, "cron-bad");
    const config = fx.config({ LANEMAP_BATCH_CRON: "every night" });
    assert.throws(
      () =>
        scheduleBatchRuns(createBatchRunner(config, { logger: fx.logger }), config, { logger: fx.logger }),
      {
        code: "CONFIG",
      },
    );
  });
});
