/**
 * The speed lane honours `lanemap archive remove`'s tombstones as the replays do: a message of a
 * removed tile that the stream stored before the removal, delivered after it (a lane behind its
 * stream, a redelivery), is acknowledged and left out — the tile is not catalogued again — while a
 * message stored after the removal (the tile ingested again) is classified. Real nats-server,
 * speed worker and CLI; the files archive (the nats archive's tombstone read is in
 * tile-archive-contract.test.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { openTileArchive } from "../../infra/platform/storage.js";
import { publishTile, startSpeedWorker, type SpeedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
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
  "a removed tile's message stored before its removal is left out by the speed lane; one stored after it is classified",
  { skip: natsMissing(), timeout: 120_000 },
  async () => {
    await using nats = await natsFixture();
    await using dataDir = await tempDir("speed-removed-");
    const extra = { NATS_URL: nats.server.url };
    const config = testConfig(dataDir.path, extra);
    const env = testEnv(dataDir.path, extra);
    const logger = testLogger();
    await activateModel(nats.nc, await testModel());
    const archive = await openTileArchive(config, nats.nc, logger);
    const js = jetstream(nats.nc);
    const tile = testTile(0, 0, "2024-01-10T16:40:00Z");
    const send = (msgId: string) =>
      publishTile(js, tile.bytes, { tileId: tile.tileId, cell: tile.cell, acquired: tile.acquired, msgId });

    const events: SpeedEvent[] = [];
    {
      await using worker = await startSpeedWorker(config, { nc: nats.nc, logger });
      worker.on((e) => events.push(e));
      await send("first");
      await waitFor("the tile classified", () => events.some((e) => e.type === "tile-classified"), 60_000);
    }
    // The same tile sent again while no worker runs (sequence 2), then taken out of the archive.
    assert.equal((await send("second")).seq, 2);
    const removed = await runLanemap(["archive", "remove", tile.tileId], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(await archive.get(tile.tileId), undefined);

    events.length = 0;
    await using worker = await startSpeedWorker(config, { nc: nats.nc, logger });
    worker.on((e) => events.push(e));
    const tileEvents = () => events.filter((e) => e.type.startsWith("tile-"));
    await waitFor("the older message handled", () => tileEvents().length > 0, 60_000);
    assert.deepEqual(
      tileEvents().map((e) => [e.type, "streamSeq" in e ? e.streamSeq : null]),
      [["tile-removed", 2]],
      "the message stored before the removal is left out",
    );
    assert.equal(await archive.get(tile.tileId), undefined, "the removed tile is not catalogued again");

    // Ingested again after the removal: a live tile again.
    assert.equal((await send("third")).seq, 3);
    await waitFor("the tile ingested again", () => events.some((e) => e.type === "tile-classified"), 60_000);
    assert.equal((await archive.get(tile.tileId))?.ingestSeq, 3);
  },
);
