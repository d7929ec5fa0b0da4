/**
 * A tile that takes longer than the pull's heartbeat window (nats.js sets a fetch's idle heartbeat
 * to half its expiry, 2.5 s here, and gives up after two missed) is classified without the worker
 * reporting a failed pull: the pull ended when its one message came, so no heartbeat is owed while
 * the tile is worked on (issue 14: "heartbeats missed … retrying" on every 1536² × 6 tile).
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { publishTile, startSpeedWorker, type SpeedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  js,
  tempDir,
  testConfig,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

/**
 * Longer than nats.js takes to give a fetch up on missed heartbeats: its monitor ticks every idle
 * heartbeat (2.5 s for the worker's 5 s pull) and gives up at the second tick that finds none
 * for a whole interval, so 5-7.5 s after the last message.
 */
const SLOW_TILE_MS = 9_000;

describe("a slow tile in the speed lane", { skip: natsMissing() }, () => {
  test("a tile that takes longer than two pull heartbeats is classified with no pull reported failed", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    const events: SpeedEvent[] = [];
    const slow = testTile(4, 2, "2024-08-02T10:00:00Z");
    const quick = testTile(5, 2, "2024-08-02T10:00:00Z");
    await using worker = await startSpeedWorker(testConfig(dir.path, { LANEMAP_SPEED_CONCURRENCY: "1" }), {
      nc: nats.nc,
      logger: testLogger(),
      hooks: {
        beforeClassify: async ({ tileId }) => {
          if (tileId === slow.tileId) await sleep(SLOW_TILE_MS);
        },
      },
    });
    worker.on((e) => events.push(e));
    // The one slot takes the slow tile, then the quick one: a failed pull would come between them.
    await publishTile(js(nats.nc), slow.bytes, slow);
    await publishTile(js(nats.nc), quick.bytes, quick);
    const classified = (t: { tileId: string }) =>
      events.some((e) => e.type === "tile-classified" && e.tileId === t.tileId);
    await waitFor(
      "both tiles classified",
      () => classified(slow) && classified(quick),
      SLOW_TILE_MS + 30_000,
    );
    assert.deepEqual(
      events.filter((e) => e.type === "consumer-error"),
      [],
      "no pull failed while the tile was worked on",
    );
  });
});
