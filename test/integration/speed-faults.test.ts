import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { DeadLetterQueue, LiveView, connectNats, speedLaneStatus } from "../../shared/adapters/nats/index.js";
import { publishTile, startSpeedWorker, type PublishedTile } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  js,
  lanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

const started = (l: Record<string, unknown>) => l["msg"] === "speed worker started";
const classified = (l: Record<string, unknown>) => l["msg"] === "tile classified";

/** Publishes, retrying while the server is away (as a producer would). */
async function publishRetrying(
  nc: Parameters<typeof js>[0],
  t: ReturnType<typeof testTile>,
): Promise<PublishedTile> {
  return waitFor(`publishing ${t.tileId}`, () => publishTile(js(nc), t.bytes, t, { timeoutMs: 1000 }));
}

describe("the speed lane under faults", { skip: natsMissing() }, () => {
  test("a worker killed in the middle of a tile loses nothing: another worker classifies it, once", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    const env = testEnv(dir.path, {
      NATS_URL: nats.server.url,
      LANEMAP_LOG_LEVEL: "info",
      LANEMAP_SPEED_CONCURRENCY: "1",
    });

    await using slow = lanemap(["speed", "--name", "slow"], { ...env, LANEMAP_TEST_TILE_DELAY_MS: "60000" });
    await slow.waitForLine("the slow worker to start", started);
    const tile = testTile(2, 3, "2024-08-01T10:00:00Z");
    const sent = await publishTile(js(nats.nc), tile.bytes, tile);
    await slow.waitForLine(
      "the slow worker to be in the tile",
      (l) => l["msg"] === "tile started (test delay)",
    );
    slow.child.kill("SIGKILL");
    assert.equal(await slow.exited, "SIGKILL");

    await using rescuer = lanemap(["speed", "--name", "rescuer"], env);
    const line = await rescuer.waitForLine("the tile classified by the second worker", classified);
    assert.equal(line["tileId"], tile.tileId);
    assert.equal(line["streamSeq"], sent.seq);

    const live = await LiveView.open(nats.nc);
    const follower = await live.follow();
    const snapshot = follower.snapshot();
    follower.stop();
    assert.equal(snapshot.size, 1, "exactly one result");
    assert.equal(snapshot.byTile.get(tile.tileId)?.result.ingestSeq, sent.seq);
    await waitFor("the tile acknowledged", async () => {
      const s = await speedLaneStatus(await jetstreamManager(nats.nc));
      return s.consumer?.ackPending === 0 && s.consumer.ackFloorSeq === sent.seq;
    });
    assert.equal(await (await DeadLetterQueue.open(nats.nc)).count(), 0);
  });

  test("a tile whose worker dies on its last allowed delivery is dead-lettered from the server's advisory", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    const env = testEnv(dir.path, {
      NATS_URL: nats.server.url,
      LANEMAP_LOG_LEVEL: "info",
      LANEMAP_SPEED_CONCURRENCY: "1",
      LANEMAP_MAX_DELIVER: "1",
    });
    await using doomed = lanemap(["speed", "--name", "doomed"], {
      ...env,
      LANEMAP_TEST_TILE_DELAY_MS: "60000",
    });
    await doomed.waitForLine("the worker to start", started);
    const tile = testTile(5, 3, "2024-08-04T10:00:00Z");
    const sent = await publishTile(js(nats.nc), tile.bytes, tile);
    await doomed.waitForLine("the worker to be in the tile", (l) => l["msg"] === "tile started (test delay)");
    doomed.child.kill("SIGKILL");
    await doomed.exited;

    // A healthy worker hears the advisory once ack_wait passes, as the tile will not be delivered again.
    await using worker = await startSpeedWorker(testConfig(dir.path, { LANEMAP_MAX_DELIVER: "1" }), {
      nc: nats.nc,
      logger: testLogger(),
    });
    const failed = await waitFor(
      "the dead letter",
      async () => (await (await DeadLetterQueue.open(nats.nc)).list())[0],
    );
    assert.equal(failed.originalSeq, sent.seq);
    assert.equal(failed.code, "MAX_DELIVER");
    assert.equal(failed.tileId, tile.tileId);
    assert.equal(failed.bytes, tile.bytes.length, "the dead letter carries the tile");
    assert.equal(worker.modelVersion() !== null, true);
  });

  test("two worker processes share one consumer: both classify some of the tiles", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    // A small delay per tile keeps each worker busy long enough for the other to take the next one.
    const env = testEnv(dir.path, {
      NATS_URL: nats.server.url,
      LANEMAP_LOG_LEVEL: "info",
      LANEMAP_SPEED_CONCURRENCY: "1",
      LANEMAP_TEST_TILE_DELAY_MS: "150",
    });
    await using a = lanemap(["speed", "--name", "a", "--metrics-port", "0"], env);
    await using b = lanemap(["speed", "--name", "b"], env);
    await Promise.all([a.waitForLine("worker a", started), b.waitForLine("worker b", started)]);
    const tiles = Array.from({ length: 10 }, (_, i) => testTile(i, 0, "2024-08-02T10:00:00Z"));
    for (const t of tiles) await publishTile(js(nats.nc), t.bytes, t);
    const ids = (w: typeof a) => w.lines.filter(classified).map((l) => String(l["tileId"]));
    await waitFor("every tile classified", () => new Set([...ids(a), ...ids(b)]).size === tiles.length);
    assert.ok(
      ids(a).length > 0 && ids(b).length > 0,
      `both workers classify tiles (a: ${ids(a).length}, b: ${ids(b).length})`,
    );
    // At least once: on a loaded machine a tile may be redelivered and classified twice, but the
    // live view holds each tile once (the idempotence the lane promises), and the metrics agree with the log.
    const follower = await (await LiveView.open(nats.nc)).follow();
    const snapshot = follower.snapshot();
    follower.stop();
    const inView = [...snapshot.byTile.values()].map((e) => e.result.tileId).sort();
    assert.deepEqual(inView, tiles.map((t) => t.tileId).sort(), "each tile is in the live view exactly once");
    const port = (await a.waitForLine("the metrics port", (l) => l["msg"] === "metrics at /metrics"))["port"];
    const metrics = await waitFor("a's metrics to agree with its log", async () => {
      const text = await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text();
      const counted = new RegExp(
        `lanemap_speed_tiles_total\\{outcome="classified"\\} ${ids(a).length}$`,
        "m",
      );
      return counted.test(text) ? text : undefined;
    });
    assert.match(metrics, /lanemap_speed_latency_seconds_count \d+/);

    // SIGTERM: each worker finishes what it holds and exits 0.
    a.child.kill("SIGTERM");
    b.child.kill("SIGTERM");
    assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);
  });

  test("a worker told to stop as its nats-server stops at the same moment exits, closing the connection it cannot drain", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    // No active model yet: the worker waits for one, as a fresh deployment does.
    const env = testEnv(dir.path, { NATS_URL: nats.server.url, LANEMAP_LOG_LEVEL: "info" });
    await using worker = lanemap(["speed", "--name", "host-shutdown", "--metrics-port", "0"], env);
    // The metrics line is logged in the same tick as the signal handlers are installed: a SIGTERM
    // sent on "speed worker started" alone could come before them and kill the process outright.
    await worker.waitForLine("the worker to start", (l) => l["msg"] === "metrics at /metrics");
    // A host shutting down stops both at once: the worker by SIGTERM, the server as it stops.
    worker.child.kill("SIGTERM");
    await worker.waitForLine("the worker to stop pulling", (l) => /^stopping/.test(String(l["msg"])));
    await nats.server.kill("SIGTERM");
    // Bounded far above the drain timeout (5 s): before, drain() waited for a reconnect forever.
    let deadline: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      worker.exited,
      new Promise<string>((resolve) => {
        deadline = setTimeout(() => resolve("still running after 30 s"), 30_000);
      }),
    ]);
    clearTimeout(deadline);
    if (outcome !== 0) worker.child.kill("SIGKILL");
    assert.equal(outcome, 0, worker.stderr().slice(-2000));
  });

  test("workers reconnect after a nats-server restart, nothing published around it is lost, and the live view rebuilds the same", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    // The worker has its own connection, made as `lanemap speed` makes it (reconnecting forever).
    const workerNc = await connectNats({ servers: nats.server.url, name: "restart-test-worker" });
    const worker = await startSpeedWorker(testConfig(dir.path), { nc: workerNc, logger: testLogger() });
    const live = await LiveView.open(nats.nc);

    const before = [0, 1, 2].map((i) => testTile(i, 4, "2024-08-03T10:00:00Z"));
    for (const t of before) await publishTile(js(nats.nc), t.bytes, t);
    for (const t of before) await waitFor(t.tileId, () => live.get(t.cell, t.tileId));
    const first = await live.follow();
    const snapshotBefore = first.snapshot();
    first.stop();

    await nats.server.kill();
    await nats.server.restart();
    const rebuilt = await waitFor("the live view readable again", () => live.follow());
    const snapshotAfter = rebuilt.snapshot();
    rebuilt.stop();
    const view = (s: typeof snapshotBefore) =>
      [...s.byTile.values()]
        .map((e) => ({ key: `${e.result.cell}.${e.result.tileId}`, revision: e.revision, result: e.result }))
        .sort((x, y) => x.key.localeCompare(y.key));
    assert.deepEqual(
      view(snapshotAfter),
      view(snapshotBefore),
      "the rebuilt live view equals the one before",
    );
    assert.equal(snapshotAfter.position, snapshotBefore.position);

    const after = [3, 4, 5].map((i) => testTile(i, 4, "2024-08-03T10:00:00Z"));
    for (const t of after) await publishRetrying(nats.nc, t);
    for (const t of after) await waitFor(`${t.tileId} after the restart`, () => live.get(t.cell, t.tileId));
    const final = await live.follow();
    assert.equal(final.snapshot().size, before.length + after.length);
    final.stop();
    await worker.stop();
    await workerNc.close();
  });
});
