/**
 * A stream or durable consumer deleted under running workers (issue 14: `nats consumer rm`, `nats
 * stream rm`, a node's store lost): the workers used to retry their pulls against it for ever. Now
 * a failed or unanswered pull asks what became of the consumer (shared/adapters/nats/vanished-
 * consumer.ts): only the consumer gone, it is re-created with the start-up's config and the worker
 * goes on; the stream gone, or the ingest stream recreated behind lanemap's record, the worker
 * finishes its tiles in flight and exits 1 with the line its start-up would print. Real
 * nats-server, `lanemap worker` and `lanemap speed` processes, files storage.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import {
  BATCH_TASK_CONSUMER,
  BATCH_TASK_STREAM,
  INGEST_STREAM,
  LiveView,
  SPEED_CONSUMER,
  ensureStreams,
  speedLaneStatus,
} from "../../shared/adapters/nats/index.js";
import { publishTile } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  lanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
  type CliProcess,
} from "./speed-fixtures.js";

/** The worker's "tile classified" log lines of `tileId`. */
const classifiedLines = (p: CliProcess, tileId: string) =>
  p.lines.filter((l) => l["msg"] === "tile classified" && l["tileId"] === tileId);

/** The one `lanemap: ...` line a stopped role printed (asserted to be the only one). */
function stopLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.startsWith("lanemap: "));
  assert.equal(lines.length, 1, `one line saying why:\n${stderr}`);
  return lines[0]!;
}

test(
  "lanemap worker re-creates its speed and batch consumers deleted under it, a tile published afterwards is classified exactly once, and a deleted task stream stops it with exit 1 and one line",
  { skip: natsMissing(), timeout: 90_000 },
  async (t) => {
    await using nats = await natsFixture();
    await using dir = await tempDir("consumer-vanished-");
    const env = testEnv(dir.path, {
      NATS_URL: nats.server.url,
      LANEMAP_BATCH_WORKERS: "1",
      LANEMAP_LOG_LEVEL: "info",
    });
    await activateModel(nats.nc, await testModel());
    const js = jetstream(nats.nc);
    const jsm = await jetstreamManager(nats.nc);
    await using worker = lanemap(["worker"], env);
    await worker.waitForLine("worker ready", (l) => l["msg"] === "worker ready: speed + batch", 60_000);
    const before = testTile(2, 1, "2024-03-01T10:00:00Z");
    await publishTile(js, before.bytes, {
      tileId: before.tileId,
      cell: before.cell,
      acquired: before.acquired,
    });
    await waitFor("the first tile classified", () => classifiedLines(worker, before.tileId).length === 1);

    // `nats consumer rm` of both durable consumers, their streams intact.
    const removedAt = Date.now();
    await jsm.consumers.delete(INGEST_STREAM, SPEED_CONSUMER);
    await jsm.consumers.delete(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER);
    await worker.waitForLine("the speed consumer re-created", (l) =>
      /^the speed consumer had vanished .*re-created it$/.test(String(l["msg"])),
    );
    await worker.waitForLine("the batch task consumer re-created", (l) =>
      /^the batch task consumer had vanished .*re-created it$/.test(String(l["msg"])),
    );
    t.diagnostic(`both consumers re-created ${Date.now() - removedAt} ms after their removal`);
    const speed = await jsm.consumers.info(INGEST_STREAM, SPEED_CONSUMER);
    assert.match(speed.config.description ?? "", /^re-created by speed worker .*: the previous one vanished/);
    // `ops status` reads the same note from the consumer.
    assert.match((await speedLaneStatus(jsm)).consumer?.description ?? "", /^re-created by speed worker /);
    assert.ok(await jsm.consumers.info(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER), "the task consumer is back");

    // The re-created consumer delivers every message from the stream's start again: the first tile
    // comes back as a duplicate (acknowledged, not classified again), the new one is classified once.
    const after = testTile(3, 1, "2024-03-02T10:00:00Z");
    await publishTile(js, after.bytes, { tileId: after.tileId, cell: after.cell, acquired: after.acquired });
    const live = await LiveView.open(nats.nc);
    await waitFor("the tile published after the re-creation in the live view", () =>
      live.get(after.cell, after.tileId),
    );
    await waitFor("the speed consumer with nothing pending", async () => {
      const c = (await speedLaneStatus(jsm)).consumer;
      return c !== null && c.pending === 0 && c.ackPending === 0;
    });
    // The worker logs a tile after its result is stored: under load its line can trail the live view.
    await waitFor(
      "the worker's line for the tile published after the re-creation",
      () => classifiedLines(worker, after.tileId).length > 0,
    );
    assert.equal(classifiedLines(worker, after.tileId).length, 1, "classified exactly once");
    assert.equal(classifiedLines(worker, before.tileId).length, 1, "the earlier tile not classified again");
    assert.ok(await live.get(before.cell, before.tileId), "the earlier result kept");

    // `nats stream rm` of the task stream: the worker stops (the queued tasks are gone), exit 1.
    const deletedAt = Date.now();
    await jsm.streams.delete(BATCH_TASK_STREAM);
    let guard: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      worker.exited,
      new Promise<string>((r) => (guard = setTimeout(() => r("still running after 30 s"), 30_000))),
    ]);
    clearTimeout(guard);
    t.diagnostic(`the worker exited ${Date.now() - deletedAt} ms after the task stream's removal`);
    assert.equal(code, 1, worker.stderr());
    assert.match(
      stopLine(worker.stderr()),
      /^lanemap: NATS_SETUP: stream LANEMAP_BATCH_TASKS was deleted under the running worker \(JetStream: stream not found\): stopping; /,
    );
  },
);

test(
  "lanemap speed re-creates its consumer deleted while it classifies a tile, classifying that tile once; its ingest stream deleted and recreated behind the views, it exits 1 with the start-up's INGEST_STREAM_BEHIND line, every classified tile still in the live view",
  { skip: natsMissing(), timeout: 90_000 },
  async (t) => {
    await using nats = await natsFixture();
    await using dir = await tempDir("stream-vanished-");
    const extra = { NATS_URL: nats.server.url, LANEMAP_BATCH_WORKERS: "1" };
    const config = testConfig(dir.path, extra);
    // Each tile waits 400 ms before its decode: the consumer can be deleted while one is in flight.
    const env = { ...testEnv(dir.path, extra), LANEMAP_LOG_LEVEL: "info", LANEMAP_TEST_TILE_DELAY_MS: "400" };
    await activateModel(nats.nc, await testModel());
    const js = jetstream(nats.nc);
    const jsm = await jetstreamManager(nats.nc);
    await using speed = lanemap(["speed"], env);
    await speed.waitForLine("the speed worker started", (l) => l["msg"] === "speed worker started", 60_000);
    const tiles = [
      testTile(0, 0, "2024-01-10T16:40:00Z"),
      testTile(1, 0, "2024-01-10T16:40:00Z"),
      testTile(0, 1, "2024-01-11T16:40:00Z"),
    ];
    for (const tile of tiles)
      await publishTile(js, tile.bytes, { tileId: tile.tileId, cell: tile.cell, acquired: tile.acquired });
    await waitFor("three tiles classified", () =>
      tiles.every((tile) => classifiedLines(speed, tile.tileId).length === 1),
    );
    // A published view records W = 2: what the recreated stream (at 0) is behind.
    const { runner } = await buildBatchRunner(config, { logger: testLogger(), nc: nats.nc });
    try {
      assert.equal((await runner.run({})).watermark > 0, true);
    } finally {
      await runner.close();
    }

    // The consumer deleted while a tile is in flight: its ack goes nowhere, the next pull is answered
    // by nobody ("heartbeats missed" after its 5 s expiry), then the consumer is re-created and
    // delivers the stream again from its start; the tile in flight is in the live view: a duplicate.
    const inFlight = testTile(1, 1, "2024-01-12T16:40:00Z");
    tiles.push(inFlight);
    await publishTile(js, inFlight.bytes, {
      tileId: inFlight.tileId,
      cell: inFlight.cell,
      acquired: inFlight.acquired,
    });
    await speed.waitForLine(
      "the tile in flight",
      (l) => l["msg"] === "tile started (test delay)" && l["tileId"] === inFlight.tileId,
    );
    const removedAt = Date.now();
    await jsm.consumers.delete(INGEST_STREAM, SPEED_CONSUMER);
    await speed.waitForLine("the speed consumer re-created", (l) =>
      /^the speed consumer had vanished .*re-created it$/.test(String(l["msg"])),
    );
    t.diagnostic(`consumer re-created ${Date.now() - removedAt} ms after its removal mid-tile`);
    await waitFor("the stream delivered again, every message acknowledged", async () => {
      const c = (await speedLaneStatus(jsm)).consumer;
      return c !== null && c.pending === 0 && c.ackPending === 0 && c.ackFloorSeq === 4;
    });
    for (const tile of tiles)
      assert.equal(classifiedLines(speed, tile.tileId).length, 1, `${tile.tileId} classified exactly once`);

    // `nats stream rm` and the stream made again (as any lanemap command or `nats stream add` would).
    const deletedAt = Date.now();
    await jsm.streams.delete(INGEST_STREAM);
    await ensureStreams(jsm, config.stream);
    let guard: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      speed.exited,
      new Promise<string>((r) => (guard = setTimeout(() => r("still running after 30 s"), 30_000))),
    ]);
    clearTimeout(guard);
    t.diagnostic(`lanemap speed exited ${Date.now() - deletedAt} ms after the stream's removal`);
    assert.equal(code, 1, speed.stderr());
    assert.match(
      stopLine(speed.stderr()),
      /^lanemap: INGEST_STREAM_BEHIND: ingest stream LANEMAP_TILES is at last sequence 0 but lanemap recorded sequence \d+ \(the watermark of batch view v000001\): .*run `lanemap ops advance-ingest-stream`/,
    );
    assert.ok(
      speed.lines.some((l) => l["msg"] === "speed worker stopped"),
      "it stopped cleanly, its tiles in flight finished",
    );
    const live = await LiveView.open(nats.nc);
    for (const tile of tiles) assert.ok(await live.get(tile.cell, tile.tileId), `${tile.tileId} kept live`);
    assert.equal((await jsm.streams.info(INGEST_STREAM)).state.messages, 0, "nothing consumed or published");
  },
);
