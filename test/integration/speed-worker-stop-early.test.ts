/**
 * A speed worker stops at once however early the stop comes: one stopped while its first pull was
 * still being set up (right after start, as `lanemap start` stopped by Ctrl-C during start-up)
 * waited out the pull's 5 s expiry. Real nats-server.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startSpeedWorker } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { activateModel, tempDir, testConfig, testLogger, testModel } from "./speed-fixtures.js";

/** The pull's expiry (speed/worker.ts): what a stop that missed the pull in flight waited for. */
const PULL_EXPIRES_MS = 5_000;

test(
  "a speed worker stopped right after it started stops without waiting out its first pull",
  { skip: natsMissing(), timeout: 60_000 },
  async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    const config = testConfig(dir.path, { LANEMAP_SPEED_CONCURRENCY: "2" });
    for (let round = 0; round < 3; round++) {
      const worker = await startSpeedWorker(config, { nc: nats.nc, logger: testLogger() });
      const t0 = performance.now();
      await worker.stop();
      const ms = performance.now() - t0;
      assert.ok(ms < PULL_EXPIRES_MS / 2, `round ${round}: stopped in ${Math.round(ms)} ms`);
    }
  },
);
