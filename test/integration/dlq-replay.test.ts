/**
 * One dead letter per bad input, however often it fails. `lanemap ops replay` publishes every
 * message of its range again under a new sequence, and the dead letter's only identity was that
 * sequence (`dlq-<original seq>`): an operator who replayed a range twice over 6 bad tiles found 22
 * letters. Real nats-server, the real speed worker, the replay and `lanemap dlq list` as an operator
 * runs them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { replayIngest } from "../../infra/ops/index.js";
import {
  DeadLetterQueue,
  HEADERS,
  LiveView,
  ensureStreams,
  speedLaneStatus,
} from "../../shared/adapters/nats/index.js";
import { publishTile, startSpeedWorker, type TileFailedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  js,
  runLanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

test(
  "6 bad tiles replayed twice leave exactly 6 dead letters, `lanemap dlq list` lists 6, and a good tile's replay still classifies",
  { skip: natsMissing(), timeout: 120_000 },
  async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("pub14-dlq-replay-");
    await activateModel(nats.nc, await testModel());
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const failed: TileFailedEvent[] = [];
    worker.on((e) => e.type === "tile-failed" && failed.push(e));
    const jsm = await jetstreamManager(nats.nc);
    const live = await LiveView.open(nats.nc);
    const logger = testLogger();

    // Three 4-band tiles the 6-band model cannot use (TILE_INVALID), three that are no GeoTIFF (TILE_DECODE).
    const bad = [
      ...[0, 1, 2].map((col) => testTile(col, 0, `2024-09-0${col + 1}T10:00:00Z`, 4)),
      ...[0, 1, 2].map((col) => ({
        ...testTile(col, 1, `2024-09-0${col + 1}T10:00:00Z`),
        bytes: new TextEncoder().encode(`not a GeoTIFF ${col}`),
      })),
    ];
    const good = testTile(2, 2, "2024-09-05T10:00:00Z");
    for (const t of bad) await publishTile(js(nats.nc), t.bytes, t);
    const goodSeq = (await publishTile(js(nats.nc), good.bytes, good)).seq;
    await waitFor("6 dead letters", () => failed.length === bad.length);
    await waitFor("the good tile's live result", () => live.get(good.cell, good.tileId));
    // The incident a replay repairs: the good tile's result lost.
    await live.remove(good.cell, good.tileId);

    let last = goodSeq;
    for (const round of [1, 2]) {
      const replay = await replayIngest({ nc: nats.nc, fromSeq: 1, dryRun: false, logger });
      assert.equal(replay.republished, bad.length + 1, `replay ${round} republishes the 7 originals`);
      last = Math.max(last, ...replay.messages.map((m) => m.newSeq ?? 0));
      await waitFor(`the copies of replay ${round} handled`, async () => {
        const c = (await speedLaneStatus(jsm)).consumer;
        return c !== null && c.ackFloorSeq >= last && c.ackPending === 0 && c.pending === 0;
      });
    }
    assert.equal(failed.length, 3 * bad.length, "every copy of a bad tile failed again");

    const letters = await (await DeadLetterQueue.open(nats.nc)).list();
    assert.deepEqual(
      letters.map((l) => l.tileId).sort(),
      bad.map((t) => t.tileId).sort(),
      "one letter per bad tile",
    );
    assert.deepEqual(
      new Set(failed.map((f) => f.deadLetterSeq)),
      new Set(letters.map((l) => l.seq)),
      "every failure names its tile's one letter",
    );
    const listed = await runLanemap(
      ["dlq", "list", "--json"],
      testEnv(dir.path, { NATS_URL: nats.server.url }),
    );
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal((JSON.parse(listed.stdout) as unknown[]).length, bad.length, "lanemap dlq list lists 6");
    assert.ok(await live.get(good.cell, good.tileId), "the good tile classified again from its replay");
  },
);

test(
  "copies of one bad tile dead-lettered at once by several workers leave one letter, and every writer names it",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("pub14-dlq-race-");
    await ensureStreams(await jetstreamManager(nats.nc), testConfig(dir.path).stream);
    const dlq = await DeadLetterQueue.open(nats.nc);
    const h = headers();
    h.set(HEADERS.tileId, "c0001r0001-broken");
    const copy = (originalSeq: number) =>
      dlq.add({
        originalSeq,
        subject: "tiles.in.c0001r0001",
        headers: h,
        data: new TextEncoder().encode("not a GeoTIFF"),
        code: "TILE_DECODE",
        reason: `copy ${originalSeq} is not a GeoTIFF`,
        deliveries: 1,
      });
    const added = await Promise.all([11, 12, 13, 14, 15, 16].map(copy));
    const letters = await dlq.list();
    assert.equal(letters.length, 1, "one letter");
    assert.deepEqual(new Set(added.map((a) => a.seq)), new Set([letters[0]!.seq]), "each writer names it");
    assert.equal(added.filter((a) => !a.duplicate).length, 1, "one writer wrote it");
    // Another reason for the same bytes is another letter.
    const other = await dlq.add({
      originalSeq: 17,
      subject: "tiles.in.c0001r0001",
      headers: h,
      data: new TextEncoder().encode("not a GeoTIFF"),
      code: "TILE_INVALID",
      reason: "no CRS",
      deliveries: 1,
    });
    assert.equal(other.duplicate, false);
    assert.equal((await dlq.list()).length, 2);
  },
);
