import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import {
  LiveView,
  NatsModelRegistry,
  classifiedSubject,
  ensureSpeedConsumer,
  ensureStreams,
  speedLaneStatus,
} from "../../shared/adapters/nats/index.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { publishTile, startSpeedWorker, type ClassifiedEvent, type SpeedEvent } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  activateModel,
  directCounts,
  js,
  tempDir,
  testConfig,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

describe("the speed worker", { skip: natsMissing() }, () => {
  test("a published tile is classified into the live view with the counts of a direct classification", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const model = await testModel();
    await activateModel(nats.nc, model);
    const config = testConfig(dir.path, { LANEMAP_SPEED_CONCURRENCY: "2" });
    await using worker = await startSpeedWorker(config, { nc: nats.nc, logger: testLogger() });
    const announced: ClassifiedEvent[] = [];
    const sub = nats.nc.subscribe(classifiedSubject(">"), {
      callback: (_err, m) => void announced.push(m.json<ClassifiedEvent>()),
    });

    const tile = testTile(1, 2, "2024-06-01T10:40:00Z");
    const sent = await publishTile(js(nats.nc), tile.bytes, tile);
    const live = await LiveView.open(nats.nc);
    const entry = await waitFor("the live result", () => live.get(tile.cell, tile.tileId));

    assert.deepEqual([...entry.result.counts], await directCounts(model, tile.bytes));
    assert.equal(entry.result.lane, "live");
    assert.equal(entry.result.ingestSeq, sent.seq);
    assert.equal(entry.result.modelVersion, model.version);
    assert.equal(entry.result.acquired, tile.acquired);
    const catalogued = await new ArchiveStore(config.dataDir).get(tile.tileId);
    assert.equal(catalogued?.ingestSeq, sent.seq, "the catalogue entry carries the stream sequence");
    assert.equal(catalogued?.source, "stream");

    const event = await waitFor("the classified event", () =>
      announced.find((e) => e.tileId === tile.tileId),
    );
    assert.equal(event.cell, tile.cell);
    assert.deepEqual(event.counts, entry.result.counts);
    assert.equal(event.modelVersion, model.version);
    sub.unsubscribe();
    await waitFor("the message acknowledged", async () => {
      const s = await speedLaneStatus(await jetstreamManager(nats.nc));
      return s.consumer?.ackFloorSeq === sent.seq && s.consumer.ackPending === 0;
    });
    const tiles = await worker.registry.getSingleMetricAsString("lanemap_speed_tiles_total");
    assert.match(tiles, /outcome="classified"} 1/);
  });

  test("a message id sent twice and a tile re-sent under a new message id give one result", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    const worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const seen: SpeedEvent[] = [];
    worker.on((e) => seen.push(e));

    const tile = testTile(3, 1, "2024-06-02T10:40:00Z");
    const first = await publishTile(js(nats.nc), tile.bytes, { ...tile, msgId: "retry-me" });
    const retry = await publishTile(js(nats.nc), tile.bytes, { ...tile, msgId: "retry-me" });
    assert.equal(retry.duplicate, true, "the server drops a retry within the duplicate window");
    const live = await LiveView.open(nats.nc);
    await waitFor("the first result", () => live.get(tile.cell, tile.tileId));

    const again = await publishTile(js(nats.nc), tile.bytes, { ...tile, msgId: "sent-again-later" });
    assert.equal(again.duplicate, false);
    await waitFor("the re-sent tile acknowledged as a duplicate", () =>
      seen.find((e) => e.type === "tile-duplicate" && e.streamSeq === again.seq),
    );
    const follower = await live.follow();
    const snapshot = follower.snapshot();
    follower.stop();
    assert.equal(snapshot.size, 1);
    assert.equal(
      snapshot.byTile.get(tile.tileId)?.result.ingestSeq,
      first.seq,
      "the first ingest sequence stays",
    );
    assert.equal(seen.filter((e) => e.type === "tile-classified").length, 1);
    await worker.stop();
  });

  test("a newly activated model takes effect for the next tile and results carry its version", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const [m1, m2] = [await testModel(5), await testModel(3)];
    assert.notEqual(m1.version, m2.version);
    await activateModel(nats.nc, m1);
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const live = await LiveView.open(nats.nc);

    const a = testTile(0, 0, "2024-06-03T10:40:00Z");
    await publishTile(js(nats.nc), a.bytes, a);
    assert.equal((await waitFor("tile a", () => live.get(a.cell, a.tileId))).result.modelVersion, m1.version);

    const swapped = new Promise<void>((resolve) =>
      worker.on((e) => e.type === "model-activated" && e.version === m2.version && resolve()),
    );
    await activateModel(nats.nc, m2);
    await swapped;
    assert.equal(worker.modelVersion(), m2.version);
    const b = testTile(0, 1, "2024-06-03T10:41:00Z");
    await publishTile(js(nats.nc), b.bytes, b);
    const rb = await waitFor("tile b", () => live.get(b.cell, b.tileId));
    assert.equal(rb.result.modelVersion, m2.version);
    assert.deepEqual([...rb.result.counts], await directCounts(m2, b.bytes));
    const gauge = await worker.registry.getSingleMetricAsString("lanemap_speed_model_info");
    assert.match(gauge, new RegExp(`version="${m2.version}"} 1`));
    assert.doesNotMatch(gauge, new RegExp(`version="${m1.version}"`));
    const registry = await NatsModelRegistry.open(nats.nc);
    assert.deepEqual((await registry.list()).map((r) => r.version).sort(), [m1.version, m2.version].sort());
  });

  test("a worker without a model waits, its metrics show the lag, and it catches up once a model is active", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await using worker = await startSpeedWorker(testConfig(dir.path), {
      nc: nats.nc,
      logger: testLogger(),
      pollIntervalMs: 100,
    });
    assert.equal(worker.modelVersion(), null);
    const tiles = [0, 1, 2].map((i) => testTile(i, 7, "2024-06-05T10:00:00Z"));
    for (const t of tiles) await publishTile(js(nats.nc), t.bytes, t);
    await waitFor("the lag gauge at 3", async () =>
      /lanemap_speed_consumer_pending 3$/m.test(
        await worker.registry.getSingleMetricAsString("lanemap_speed_consumer_pending"),
      ),
    );
    const model = await testModel();
    await activateModel(nats.nc, model);
    const live = await LiveView.open(nats.nc);
    for (const t of tiles) await waitFor(t.tileId, () => live.get(t.cell, t.tileId));
    await waitFor("the lag gauge at 0", async () =>
      /lanemap_speed_consumer_pending 0$/m.test(
        await worker.registry.getSingleMetricAsString("lanemap_speed_consumer_pending"),
      ),
    );
    assert.match(
      await worker.registry.getSingleMetricAsString("lanemap_speed_tiles_total"),
      /outcome="classified"} 3/,
    );
    assert.match(
      await worker.registry.getSingleMetricAsString("lanemap_speed_latency_seconds"),
      /_count 3$/m,
    );
  });

  test("stream and consumer setup is idempotent and brings changed limits up to date", async () => {
    await using nats = await natsFixture();
    const jsm = await jetstreamManager(nats.nc);
    const config = testConfig("/nonexistent");
    const first = await ensureStreams(jsm, config.stream);
    const again = await ensureStreams(jsm, config.stream);
    assert.equal(again.ingest.created, first.ingest.created, "the same stream, not a new one");
    assert.equal(first.ingest.config.storage, "file");
    assert.deepEqual(first.ingest.config.subjects, ["tiles.in.>"]);
    assert.deepEqual(first.dlq.config.subjects, ["tiles.dlq.>"]);
    const changed = await ensureStreams(jsm, { maxBytes: 1 << 30, maxAgeS: 3600, duplicateWindowS: 7200 });
    assert.equal(changed.ingest.config.max_bytes, 1 << 30);
    assert.equal(changed.ingest.config.max_age, 3600 * 1e9);
    assert.equal(
      changed.ingest.config.duplicate_window,
      3600 * 1e9,
      "the window is clamped to the age limit",
    );
    const c1 = await ensureSpeedConsumer(jsm, { ackWaitMs: 30_000, maxDeliver: 5 });
    const c2 = await ensureSpeedConsumer(jsm, { ackWaitMs: 10_000, maxDeliver: 2 });
    assert.equal(c1.name, c2.name);
    assert.equal(c2.config.ack_wait, 10_000 * 1e6);
    assert.equal(c2.config.max_deliver, 2);
    assert.equal(c2.config.ack_policy, "explicit");
  });

  test("a tile over the server's max_payload travels through the object store", async () => {
    await using nats = await natsFixture({ maxPayload: 16 * 1024 });
    await using dir = await tempDir();
    const model = await testModel();
    await activateModel(nats.nc, model);
    await using _worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const tile = testTile(2, 2, "2024-06-04T10:40:00Z");
    assert.ok(
      tile.bytes.length > 16 * 1024,
      `the test tile (${tile.bytes.length} bytes) must exceed max_payload`,
    );
    const sent = await publishTile(js(nats.nc), tile.bytes, tile);
    assert.ok(sent.object, "the tile went through the object store");
    const live = await LiveView.open(nats.nc);
    const entry = await waitFor("the live result", () => live.get(tile.cell, tile.tileId));
    assert.deepEqual([...entry.result.counts], await directCounts(model, tile.bytes));
  });
});
