/**
 * Big valid tiles are classified, not failed as DEADLINE (issue 14, N2): each tile's deadline is the
 * base plus an allowance per million samples its header announces, in the speed lane and in both
 * batch executors. Scaled down to stay fast: a 1 s base, which a 768² × 6 tile (3.5 Msample, 2-9 s
 * of decode + classify on a 2-core machine) overruns, so under the old flat deadline every one of
 * these tiles was dead-lettered or failed; with 20 s per Msample each gets ~72 s. A stream run's
 * stall bound does not fail a run whose worker holds such a tile either. Real nats-server,
 * the real speed worker, `lanemap worker` composition and batch runners.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createBatchRunner } from "../../batch/index.js";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { startLanemapWorker } from "../../infra/platform/worker.js";
import { DeadLetterQueue, LiveView } from "../../shared/adapters/nats/index.js";
import { publishTile, startSpeedWorker, type SpeedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { activateModel, js, tempDir, testConfig, waitFor } from "./speed-fixtures.js";

/** A base no 768² tile fits in, and an allowance that gives each one ~72 s. */
const SCALED = { LANEMAP_DECODE_TIMEOUT_MS: "1000", LANEMAP_DECODE_MS_PER_MSAMPLE: "20000" };
const TILE_SIZE = 768;

describe("tiles larger than the base deadline allows", { skip: natsMissing(), timeout: 240_000 }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 2, height: 1, tileSize: TILE_SIZE, seed: 7 });
  });
  after(() => set?.dispose());

  /**
   * A stream-executor batch run of the set on `nats` (under SCALED and `env`), its tiles classified
   * by a `lanemap worker` that holds each tile `holdMs` beyond its classification: no tile fails.
   */
  async function assertStreamRunClassifiesAll(
    nats: Awaited<ReturnType<typeof natsFixture>>,
    name: string,
    env: Record<string, string>,
    holdMs?: number,
    lines?: { msg: string; [k: string]: unknown }[],
  ): Promise<void> {
    const fx = await makeDataDir(set, name);
    const config = fx.config({
      ...SCALED,
      ...env,
      NATS_URL: nats.server.url,
      LANEMAP_BATCH_EXECUTOR: "stream",
      LANEMAP_BATCH_WORKERS: "1",
    });
    const logger = testLogger(lines);
    const models = await openModelRegistry(config, nats.nc, logger);
    const worker = await startLanemapWorker(config, {
      nc: nats.nc,
      logger,
      models,
      ...(holdMs === undefined ? {} : { batchTileDelayMs: holdMs }),
    });
    try {
      const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc, models });
      const report = await runner.run({ model: set.modelPath, executor: "stream" });
      assert.deepEqual(report.failures, [], "no tile failed");
      assert.equal(report.tiles.total, 2);
    } finally {
      await worker.stop();
    }
  }

  test("a 768² × 6 tile is classified by the speed worker, not dead-lettered", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, set.model);
    await using worker = await startSpeedWorker(testConfig(dir.path, SCALED), {
      nc: nats.nc,
      logger: testLogger(),
    });
    const outcomes: SpeedEvent[] = [];
    worker.on((e) => (e.type === "tile-classified" || e.type === "tile-failed") && outcomes.push(e));
    const name = readdirSync(set.tilesDir).filter((n) => n.endsWith(".tif"))[0]!;
    const bytes = new Uint8Array(readFileSync(join(set.tilesDir, name)));
    const tile = { tileId: "big-valid", cell: name.replace(/\.tif$/, ""), acquired: "2024-07-06T10:00:00Z" };
    await publishTile(js(nats.nc), bytes, tile);
    const outcome = await waitFor("the tile's outcome", () => outcomes[0], 120_000);
    assert.equal(
      outcome.type,
      "tile-classified",
      `classified, not ${outcome.type === "tile-failed" ? `${outcome.code}: ${outcome.reason}` : "?"}`,
    );
    assert.ok(await (await LiveView.open(nats.nc)).get(tile.cell, tile.tileId), "in the live view");
    assert.deepEqual(await (await DeadLetterQueue.open(nats.nc)).list(), [], "no dead letter");
  });

  test("a batch run in its own threads classifies every 768² × 6 tile", async () => {
    const fx = await makeDataDir(set, "threads");
    const report = await createBatchRunner(fx.config({ ...SCALED, LANEMAP_BATCH_WORKERS: "1" }), {
      logger: fx.logger,
    }).run({ model: set.modelPath });
    assert.deepEqual(report.failures, [], "no tile failed");
    assert.equal(report.tiles.total, 2);
  });

  test("a batch run on the work queue, classified by a `lanemap worker`, classifies every 768² × 6 tile", async () => {
    await using nats = await natsFixture();
    await assertStreamRunClassifiesAll(nats, "stream", {});
  });

  test("a stream run is not failed as stalled while a `lanemap worker` holds a tile longer than LANEMAP_BATCH_STALL_S", async () => {
    await using nats = await natsFixture();
    // Each tile holds the worker 2 s beyond its classification: two stall bounds with no delivery
    // (one is enough to fail a run that counted only deliveries; each extra second is waited twice).
    const lines: { msg: string; [k: string]: unknown }[] = [];
    await assertStreamRunClassifiesAll(nats, "stall", { LANEMAP_BATCH_STALL_S: "1" }, 2_000, lines);
    // Meanwhile the coordinator said what it waited on (every half stall bound without a result).
    const waiting = lines.filter((l) => l.msg.startsWith("batch run waiting:"));
    assert.ok(waiting.length >= 2, `the coordinator said it waited (${waiting.length} lines)`);
    assert.ok(
      waiting.every((l) => Array.isArray(l["tiles"]) && l["tiles"].length >= 1) &&
        waiting.some((l) => l["heldByWorkers"] === 1),
      `each names the tiles owed, one the task a worker holds: ${JSON.stringify(waiting.map((l) => [l["heldByWorkers"], l["queued"], l["tiles"]]))}`,
    );
  });
});
