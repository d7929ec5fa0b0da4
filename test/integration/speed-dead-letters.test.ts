import assert from "node:assert/strict";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  DeadLetterQueue,
  HEADERS,
  LiveView,
  ensureStreams,
  ingestSubject,
} from "../../shared/adapters/nats/index.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { createFeatureSpec, decodeGeoTiff, encodeGeoTiff, trainModel } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { publishTile, startSpeedWorker, type SpeedEvent, type TileFailedEvent } from "../../speed/index.js";
import { missing, sharedData } from "../helpers/env.js";
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

/** Publishes raw bytes as a tile, headers and all, as a producer that does not check would. */
async function publishRaw(
  nc: Parameters<typeof js>[0],
  cell: string,
  tileId: string,
  bytes: Uint8Array,
): Promise<number> {
  const h = natsHeaders();
  h.set(HEADERS.tileId, tileId);
  h.set(HEADERS.cell, cell);
  h.set(HEADERS.acquired, "2024-07-01T00:00:00Z");
  return (await js(nc).publish(ingestSubject(cell), bytes, { headers: h, msgID: tileId })).seq;
}

/** A 3-band 8×8 tile, band 3 its QA_PIXEL band (clear, 64), of the given sample type. */
function qaTile(type: "uint16" | "float32"): Uint8Array {
  const make = (v: number) => (type === "uint16" ? new Uint16Array(64) : new Float32Array(64)).fill(v);
  return encodeGeoTiff({
    width: 8,
    height: 8,
    bands: [make(500), make(3000), make(64)],
    geoTransform: [500_000, 30, 0, 1_700_000, 0, -30],
    epsg: 32615,
    acquired: "2024-07-01T00:00:00Z",
  });
}

describe("dead letters of the speed lane", { skip: natsMissing() }, () => {
  test("a tile whose declared quality band holds floats is dead-lettered with the reason naming the band", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const truth = encodeGeoTiff({
      width: 8,
      height: 8,
      bands: [new Uint8Array(64).fill(1)],
      geoTransform: [500_000, 30, 0, 1_700_000, 0, -30],
      epsg: 32615,
    });
    const model = trainModel(
      [await decodeGeoTiff(qaTile("uint16"))],
      { kind: "raster", raster: await decodeGeoTiff(truth), names: { "1": "forest" } },
      {
        features: createFeatureSpec(3, {
          red: 1,
          nir: 2,
          quality: { band: 3, kind: "landsat-c2-qa-pixel", mask: ["cloud"] },
        }),
        k: 1,
        source: "one uint16 tile",
        createdAt: "2024-01-01T00:00:00Z",
      },
    );
    await activateModel(nats.nc, model);
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const failed: TileFailedEvent[] = [];
    worker.on((e) => e.type === "tile-failed" && failed.push(e));
    const meta = { cell: "c0001r0001", acquired: "2024-07-01T00:00:00Z" };
    await publishTile(js(nats.nc), qaTile("uint16"), { ...meta, tileId: "integer-qa" });
    await publishTile(js(nats.nc), qaTile("float32"), { ...meta, tileId: "float-qa" });
    const live = await LiveView.open(nats.nc);
    await waitFor("the integer-QA tile classified", () => live.get(meta.cell, "integer-qa"));
    await waitFor("the float-QA tile dead-lettered", () => failed.length >= 1);
    const letters = await (await DeadLetterQueue.open(nats.nc)).list();
    assert.deepEqual(
      letters.map((l) => [l.tileId, l.code]),
      [["float-qa", "TILE_INVALID"]],
    );
    assert.match(letters[0]?.reason ?? "", /quality band 3 \(landsat-c2-qa-pixel\) holds float32 samples/);
    assert.equal(await live.get(meta.cell, "float-qa"), undefined);
    await worker.stop();
  });

  test("truncated and garbage tiles are dead-lettered with their reason while good tiles keep flowing", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    // Read failures from the status iterator, as an operator's tool would.
    const failed: TileFailedEvent[] = [];
    const reading = (async () => {
      for await (const e of worker.status()) if (e.type === "tile-failed") failed.push(e);
    })();

    const good = [0, 1, 2, 3].map((i) => testTile(i, 5, "2024-07-01T10:00:00Z"));
    const whole = testTile(7, 7, "2024-07-01T10:00:00Z").bytes;
    const bad = new Map<number, { tileId: string; bytes: number }>();
    for (const [i, g] of good.entries()) {
      await publishTile(js(nats.nc), g.bytes, g);
      const cut = whole.slice(0, Math.floor(whole.length / (i + 2)));
      const truncated = `truncated-${i}`;
      bad.set(await publishRaw(nats.nc, "c0007r0007", truncated, cut), {
        tileId: truncated,
        bytes: cut.length,
      });
    }
    const garbage = new TextEncoder().encode("this is not a GeoTIFF, it is a sentence");
    bad.set(await publishRaw(nats.nc, "c0008r0008", "garbage", garbage), {
      tileId: "garbage",
      bytes: garbage.length,
    });

    const live = await LiveView.open(nats.nc);
    for (const g of good) await waitFor(`good tile ${g.tileId}`, () => live.get(g.cell, g.tileId));
    await waitFor("every bad tile dead-lettered", () => failed.length >= bad.size);

    const letters = await (await DeadLetterQueue.open(nats.nc)).list();
    assert.equal(letters.length, bad.size);
    for (const letter of letters) {
      const original = bad.get(letter.originalSeq);
      assert.ok(original, `dead letter of seq ${letter.originalSeq} is one of the bad tiles`);
      assert.equal(letter.tileId, original.tileId);
      assert.equal(letter.bytes, original.bytes, "the dead letter keeps the payload");
      assert.match(letter.code, /^TILE_(DECODE|INVALID)$/);
      assert.ok(letter.reason.length > 0);
      assert.equal(letter.deliveries, 1, "a bad tile is dead-lettered on its first delivery, not retried");
    }
    assert.deepEqual(new Set(failed.map((e) => e.streamSeq)), new Set(bad.keys()));
    await worker.stop();
    await reading; // The iterator ends when the worker stops.
  });

  test(
    "the broken files of ../shared/data are dead-lettered in bounded time",
    { skip: missing({ shared: true }) },
    async () => {
      await using nats = await natsFixture();
      await using dir = await tempDir();
      await activateModel(nats.nc, await testModel());
      await using worker = await startSpeedWorker(testConfig(dir.path), {
        nc: nats.nc,
        logger: testLogger(),
      });
      const failed: TileFailedEvent[] = [];
      worker.on((e) => e.type === "tile-failed" && failed.push(e));
      const folder = sharedData("broken") as string;
      const names = (await readdir(folder)).filter((n) => n.endsWith(".tif")).sort();
      const sent = new Map<number, string>();
      for (const [i, name] of names.entries()) {
        const bytes = new Uint8Array(await readFile(join(folder, name)));
        sent.set(await publishRaw(nats.nc, "broken", `broken-${i}`, bytes), name);
      }
      const good = testTile(4, 4, "2024-07-02T10:00:00Z");
      await publishTile(js(nats.nc), good.bytes, good);
      const live = await LiveView.open(nats.nc);
      await waitFor("the good tile after the broken ones", () => live.get(good.cell, good.tileId));
      await waitFor("every broken file dead-lettered", () => failed.length >= sent.size, 60_000);
      for (const e of failed) {
        assert.ok(sent.has(e.streamSeq));
        assert.match(
          e.code,
          /^(TILE_DECODE|TILE_INVALID|PIXEL_BUDGET)$/,
          `${sent.get(e.streamSeq)}: ${e.code} ${e.reason}`,
        );
      }
      assert.equal(await (await DeadLetterQueue.open(nats.nc)).count(), sent.size);
    },
  );

  test("a tile the model cannot use is dead-lettered, then classified when retried under a fitting model", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel(5, 6));
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const events: SpeedEvent[] = [];
    worker.on((e) => events.push(e));
    const fourBands = testTile(5, 5, "2024-07-03T10:00:00Z", 4);
    const sent = await publishTile(js(nats.nc), fourBands.bytes, fourBands);
    const failed = await waitFor("the dead letter", () =>
      events.find((e): e is TileFailedEvent => e.type === "tile-failed" && e.streamSeq === sent.seq),
    );
    assert.equal(failed.code, "TILE_INVALID");
    assert.match(failed.reason, /band/);

    const fourBandModel = await testModel(5, 4);
    await activateModel(nats.nc, fourBandModel);
    await waitFor("the worker on the 4-band model", () => worker.modelVersion() === fourBandModel.version);
    const dlq = await DeadLetterQueue.open(nats.nc);
    const { ingestSeq } = await dlq.retry(failed.deadLetterSeq);
    assert.ok(ingestSeq > sent.seq);
    const live = await LiveView.open(nats.nc);
    const entry = await waitFor("the retried tile", () => live.get(fourBands.cell, fourBands.tileId));
    assert.equal(entry.result.modelVersion, fourBandModel.version);
    // The catalogue entry was written on the first delivery: the result keeps that ingest sequence.
    assert.equal(entry.result.ingestSeq, sent.seq);
    assert.equal(await dlq.count(), 0, "a retried dead letter leaves the queue");
  });

  test("a tile whose acquired header lies beyond the clock-skew tolerance in the future is dead-lettered with the reason", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const failed: TileFailedEvent[] = [];
    worker.on((e) => e.type === "tile-failed" && failed.push(e));
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const future = testTile(9, 1, "2024-07-04T10:00:00Z");
    const sent = await publishTile(js(nats.nc), future.bytes, { ...future, acquired: tomorrow });
    // Within the tolerance (clock skew): accepted.
    const skewed = testTile(9, 2, new Date(Date.now() + 60_000).toISOString());
    await publishTile(js(nats.nc), skewed.bytes, skewed);
    const e = await waitFor("the future tile dead-lettered", () =>
      failed.find((f) => f.streamSeq === sent.seq),
    );
    assert.equal(e.code, "TILE_INVALID");
    const [letter] = await (await DeadLetterQueue.open(nats.nc)).list();
    assert.equal(letter?.originalSeq, sent.seq);
    assert.match(letter?.reason ?? "", /is 1\.00 days in the future .*at most 5 min of clock skew/);
    const live = await LiveView.open(nats.nc);
    await waitFor("the skewed tile", () => live.get(skewed.cell, skewed.tileId));
  });

  test("a tile id reused for other bytes is dead-lettered as a conflict", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    await using worker = await startSpeedWorker(testConfig(dir.path), { nc: nats.nc, logger: testLogger() });
    const failed: TileFailedEvent[] = [];
    worker.on((e) => e.type === "tile-failed" && failed.push(e));
    const a = testTile(6, 1, "2024-07-04T10:00:00Z");
    const other = testTile(6, 2, "2024-07-04T10:00:00Z");
    await publishTile(js(nats.nc), a.bytes, a);
    const live = await LiveView.open(nats.nc);
    await waitFor("the first tile", () => live.get(a.cell, a.tileId));
    const clash = await publishTile(js(nats.nc), other.bytes, { ...a });
    const e = await waitFor("the conflict", () => failed.find((f) => f.streamSeq === clash.seq));
    assert.equal(e.code, "TILE_CONFLICT");
    const kept = await live.get(a.cell, a.tileId);
    assert.equal(kept?.result.ingestSeq, 1, "the first tile's result is untouched");
  });

  test("a tile whose classification passes the deadline is dead-lettered and the next tile is classified", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    await activateModel(nats.nc, await testModel());
    // 1 s is ~50x what a 64² test tile takes and a fraction of what a 1024² tile takes; 10 ms per
    // Msample adds 63 ms to the 1024² × 6 tile's deadline, far less than the ~0.5 s per Msample it needs.
    const env = { LANEMAP_DECODE_TIMEOUT_MS: "1000", LANEMAP_DECODE_MS_PER_MSAMPLE: "10" };
    await using worker = await startSpeedWorker(testConfig(dir.path, env), {
      nc: nats.nc,
      logger: testLogger(),
    });
    const failed: TileFailedEvent[] = [];
    worker.on((e) => e.type === "tile-failed" && failed.push(e));
    const big = generateTile({
      seed: 5,
      col: 0,
      row: 0,
      tileSize: 1024,
      bands: 6,
      acquired: "2024-07-06T10:00:00Z",
    });
    const sent = await publishTile(js(nats.nc), big.bytes, {
      tileId: "big-tile",
      cell: big.cell,
      acquired: big.acquired,
    });
    const e = await waitFor("the deadline dead letter", () => failed.find((f) => f.streamSeq === sent.seq));
    assert.equal(e.code, "DEADLINE");
    // The reason names the deadline it applied and how it was derived from the tile's size.
    assert.match(e.reason, /within 1063 ms \(1000 ms base \+ 6\.29 Msample × 10 ms\)/);
    const small = testTile(3, 3, "2024-07-06T10:00:00Z");
    await publishTile(js(nats.nc), small.bytes, small);
    const live = await LiveView.open(nats.nc);
    await waitFor("the next tile", () => live.get(small.cell, small.tileId));
  });

  test("a tile that fails on every delivery is dead-lettered after max_deliver", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    // A file where the archive folder should be: every registration fails, as a full disk would.
    await writeFile(join(dir.path, "archive"), "not a folder");
    await ensureStreams(await jetstreamManager(nats.nc), testConfig(dir.path).stream);
    await activateModel(nats.nc, await testModel());
    await using worker = await startSpeedWorker(testConfig(dir.path, { LANEMAP_MAX_DELIVER: "3" }), {
      nc: nats.nc,
      logger: testLogger(),
    });
    const events: SpeedEvent[] = [];
    worker.on((e) => events.push(e));
    const tile = testTile(1, 1, "2024-07-05T10:00:00Z");
    const sent = await publishTile(js(nats.nc), tile.bytes, tile);
    const failed = await waitFor("the dead letter after 3 deliveries", () =>
      events.find((e): e is TileFailedEvent => e.type === "tile-failed" && e.streamSeq === sent.seq),
    );
    assert.equal(failed.code, "MAX_DELIVER");
    assert.equal(failed.deliveries, 3);
    assert.equal(events.filter((e) => e.type === "tile-retry").length, 2, "two retries before giving up");
    const [letter] = await (await DeadLetterQueue.open(nats.nc)).list();
    assert.equal(letter?.originalSeq, sent.seq);
    assert.match(letter?.reason ?? "", /3 deliveries/);
  });
});
