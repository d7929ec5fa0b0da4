/**
 * Kappa mode (issue 14, item 4): `lanemap batch run --from-stream` rebuilds the batch view from the
 * ingest stream instead of the catalogue. Tiles go in through the ingest contract (several cells,
 * two acquisitions of one cell, a re-sent tile, a producer retry the server drops, a tile in the
 * object store, a tile acquired tomorrow, a file that is not a GeoTIFF), a real speed worker handles
 * them, and the catalogue-driven run of that data directory is compared with a stream-driven run
 * into a second, empty one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { DuckDBBlobValue } from "@duckdb/node-api";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { readStreamRunSet, StreamRangeError, type RunReport } from "../../batch/index.js";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { ArchiveStore, readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { DeadLetterQueue, INGEST_STREAM, speedLaneStatus } from "../../shared/adapters/nats/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import { BATCH_VIEW_FILES, registerTile, type BatchManifest } from "../../shared/index.js";
import { publishTile, startSpeedWorker } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  runLanemap,
  tempDir,
  testConfig,
  testEnv,
  testLogger,
  testModel,
  testTile,
  waitFor,
} from "./speed-fixtures.js";

/** Everything a view holds about its tiles but when they were processed, and its class rasters. */
async function viewContent(dataDir: string): Promise<{
  version: string;
  manifest: BatchManifest;
  tiles: Record<string, unknown>[];
  rasters: Map<string, { k: number; raster: Buffer }>;
  cells: Record<string, unknown>[];
  failures: Record<string, unknown>[];
}> {
  const current = await readCurrentBatch(dataDir);
  assert.ok(current, `a view is published in ${dataDir}`);
  const db = await DuckDbDatabase.open(join(current.dir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
  try {
    const tiles = await db.allJS(
      `SELECT tile_id, cell, CAST(acquired AS VARCHAR) AS acquired, ingest_seq, content_hash, model_version,
              width, height, geo_transform, epsg, valid_pixels, counts, areas_m2, dominant_class, mean_confidence
         FROM tiles ORDER BY tile_id`,
    );
    const rasters = new Map<string, { k: number; raster: Buffer }>();
    for (const r of await db.all<{ tile_id: string; k: number; raster: DuckDBBlobValue }>(
      "SELECT tile_id, k, raster FROM rasters ORDER BY tile_id",
    ))
      rasters.set(r.tile_id, { k: r.k, raster: Buffer.from(r.raster.bytes) });
    const cells = await db.allJS("SELECT cell, tile_id FROM cells ORDER BY cell");
    const failures = await db.allJS("SELECT tile_id, code, reason FROM failures ORDER BY tile_id");
    return { version: current.name, manifest: current.manifest, tiles, rasters, cells, failures };
  } finally {
    db.closeSync();
  }
}

describe("lanemap batch run --from-stream (kappa mode)", { skip: natsMissing() }, () => {
  test("replaying the ingest stream into an empty data directory publishes the catalogue run's view tile for tile, lists the broken and the future tile with the reasons the speed lane gave, and refuses a range the stream does not hold", async () => {
    await using nats = await natsFixture();
    await using catalogueDir = await tempDir("lanemap-kappa-catalogue-");
    await using streamDir = await tempDir("lanemap-kappa-stream-");
    const config = testConfig(catalogueDir.path, { LANEMAP_BATCH_WORKERS: "2" });
    const logger = testLogger();
    const models = await openModelRegistry(config, nats.nc);
    const model = await testModel();
    await models.put(model, { trainedBy: "test" });
    await models.activate(model.version);
    await using worker = await startSpeedWorker(config, { nc: nats.nc, logger, models });
    void worker;

    const js = jetstream(nats.nc);
    const send = async (t: ReturnType<typeof testTile>, msgId?: string) =>
      publishTile(js, t.bytes, {
        tileId: t.tileId,
        cell: t.cell,
        acquired: t.acquired,
        ...(msgId ? { msgId } : {}),
      });
    const jan = "2024-01-10T16:40:00Z";
    const tiles = [testTile(0, 0, jan), testTile(1, 0, jan), testTile(2, 0, jan), testTile(0, 1, jan)];
    const seqs: number[] = [];
    for (const t of tiles) seqs.push((await send(t)).seq);
    // A second acquisition of cell c0000r0000: a newer tile of the same cell.
    const february = testTile(0, 0, "2024-02-10T16:40:00Z");
    seqs.push((await send(february)).seq);
    // The same tile re-sent later under another message id: stored again, one tile in the catalogue.
    const resent = await send(tiles[1]!, `${tiles[1]!.tileId}-resent`);
    assert.equal(resent.duplicate, false, "the re-sent tile has a sequence of its own");
    // A producer's retry with the same message id: dropped by the server's duplicate window.
    assert.equal((await send(tiles[2]!)).duplicate, true, "the retry is dropped");
    // Not a GeoTIFF: the speed lane dead-letters it.
    const broken = await publishTile(js, new TextEncoder().encode("this is not a TIFF file"), {
      tileId: "c0003r0000-20240110T164000Z",
      cell: "c0003r0000",
      acquired: jan,
    });
    // Acquired tomorrow: the speed lane refuses a tile from the future, and so does the replay (its
    // "now" is when the stream stored the message).
    const tomorrow = testTile(2, 1, new Date(Date.now() + 86_400_000).toISOString());
    const future = await send(tomorrow);
    // Over the (here lowered) max_payload: the bytes go to the lanemap-tiles object store.
    const large = testTile(2, 2, jan);
    const byObject = await publishTile(
      js,
      large.bytes,
      { tileId: large.tileId, cell: large.cell, acquired: large.acquired },
      { maxPayload: 16 * 1024 },
    );
    assert.ok(byObject.object, "the tile travels as an object store reference");
    const last = (await send(testTile(1, 1, jan))).seq;
    assert.equal(
      last,
      10,
      "eight tiles, the broken file and the future one are stored, the dropped retry is not",
    );

    const jsm = await jetstreamManager(nats.nc);
    await waitFor(
      "the speed lane to acknowledge every message",
      async () => ((await speedLaneStatus(jsm)).consumer?.ackFloorSeq ?? 0) >= last,
      30_000,
    );
    const letters = await (await DeadLetterQueue.open(nats.nc)).list();
    assert.deepEqual(
      letters.map((l) => l.originalSeq),
      [broken.seq, future.seq],
      "the speed lane dead-lettered the broken file and the future tile only",
    );

    // The catalogue-driven run of the speed lane's data directory.
    const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc, models });
    const byCatalogue = await runner.run();
    await runner.close();
    assert.equal(byCatalogue.source, "catalogue");
    assert.equal(byCatalogue.tiles.total, 7);

    // The stream-driven run, as an operator runs it, into an empty data directory.
    const env = testEnv(streamDir.path, { LANEMAP_BATCH_WORKERS: "2" });
    const cli = await runLanemap(
      ["batch", "run", "--from-stream", "--json", "--nats", nats.server.url, "--data-dir", streamDir.path],
      env,
    );
    assert.equal(cli.code, 0, `batch run --from-stream exits 0 (stderr: ${cli.stderr})`);
    const byStream = JSON.parse(cli.stdout) as RunReport;
    assert.equal(byStream.source, "stream");
    assert.equal(byStream.watermark, byCatalogue.watermark, "the same watermark: the ack floor");
    assert.deepEqual(byStream.tiles, byCatalogue.tiles, "the same counts of tiles");
    assert.deepEqual(byStream.failures, byCatalogue.failures);
    assert.equal(byStream.cells, byCatalogue.cells);
    assert.equal(byStream.validPixels, byCatalogue.validPixels);
    assert.deepEqual(
      {
        ...byStream.stream,
        excluded: byStream.stream?.excluded.map(({ reason: _reason, ...x }) => x),
      },
      {
        stream: INGEST_STREAM,
        fromSeq: 1,
        toSeq: last,
        firstSeq: 1,
        lastSeq: last,
        messages: 10,
        duplicates: 1,
        excluded: [
          {
            seq: broken.seq,
            tileId: "c0003r0000-20240110T164000Z",
            code: "TILE_DECODE",
            deadLetterSeq: letters[0]!.seq,
          },
          {
            seq: future.seq,
            tileId: tomorrow.tileId,
            code: "TILE_INVALID",
            deadLetterSeq: letters[1]!.seq,
          },
        ],
        removed: [],
      },
      "the replayed range, the re-sent tile counted once, the broken file listed with its dead letter, no tile removed",
    );
    assert.equal(
      byStream.stream?.excluded[0]?.reason,
      letters[0]!.reason,
      "the broken file's reason is the one the speed lane dead-lettered it with",
    );
    for (const reason of [byStream.stream?.excluded[1]?.reason, letters[1]!.reason])
      assert.match(reason ?? "", new RegExp(`acquisition time ${tomorrow.acquired} is .* in the future`));

    const a = await viewContent(catalogueDir.path);
    const b = await viewContent(streamDir.path);
    assert.equal(b.manifest.source, "stream");
    assert.deepEqual(b.manifest.stream, byStream.stream, "the manifest records the replayed range");
    assert.equal(a.manifest.source, "catalogue");
    assert.deepEqual(b.tiles, a.tiles, "the same tiles, sequences, content, counts, areas and classes");
    assert.deepEqual([...b.rasters.keys()], [...a.rasters.keys()], "a class raster for the same tiles");
    for (const [tileId, r] of a.rasters) {
      const s = b.rasters.get(tileId)!;
      assert.equal(s.k, r.k);
      assert.ok(s.raster.equals(r.raster), `the class raster of ${tileId} is the same byte for byte`);
    }
    assert.deepEqual(b.cells, a.cells, "each cell's newest tile is the same (February's for c0000r0000)");
    assert.ok(
      a.cells.some((c) => c["cell"] === february.cell && c["tile_id"] === february.tileId),
      "the newer acquisition is its cell's tile",
    );
    assert.deepEqual(b.failures, a.failures);
    const ingestSeqOf = (tileId: string) =>
      Number(a.tiles.find((t) => t["tile_id"] === tileId)?.["ingest_seq"]);
    assert.equal(ingestSeqOf(tiles[1]!.tileId), seqs[1], "the re-sent tile keeps its first sequence");

    // A first sequence past the stream's end: one line, naming the stream's last sequence.
    const past = await runLanemap(
      [
        "batch",
        "run",
        "--from-stream",
        "--from-seq",
        String(last + 5),
        "--nats",
        nats.server.url,
        "--data-dir",
        streamDir.path,
      ],
      env,
    );
    assert.equal(past.code, 1);
    assert.equal(
      past.stderr.trim(),
      `lanemap: REPLAY_RANGE: sequence ${last + 5} is past the end of ${INGEST_STREAM} (last sequence ${last})`,
    );
    assert.equal((await readCurrentBatch(streamDir.path))?.name, b.version, "nothing was published");

    // A tile bulk-loaded into the catalogue (`lanemap archive add`) is in no stream: a replay would
    // publish a view without it, so it is refused — one line, nothing published — unless asked for.
    const bulk = testTile(3, 3, jan);
    await registerTile(new ArchiveStore(streamDir.path), bulk.bytes, {
      tileId: bulk.tileId,
      cell: bulk.cell,
      acquired: bulk.acquired,
      ingestSeq: 0,
      source: "bulk",
    });
    const kappa = ["batch", "run", "--from-stream", "--nats", nats.server.url, "--data-dir", streamDir.path];
    const refused = await runLanemap(kappa, env);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr.trim(),
      `lanemap: REPLAY_INCOMPLETE: 1 of 8 catalogue tiles are not in the replayed range of ${INGEST_STREAM} (1 bulk-loaded with \`lanemap archive add\`, e.g. ${bulk.tileId}): ` +
        "a view from the stream would drop them; run without --from-stream, or give --allow-partial to publish it anyway",
    );
    assert.equal((await readCurrentBatch(streamDir.path))?.name, b.version, "nothing was published");
    const partial = await runLanemap([...kappa, "--allow-partial", "--json"], env);
    assert.equal(partial.code, 0, `--allow-partial publishes (stderr: ${partial.stderr})`);
    assert.equal((JSON.parse(partial.stdout) as RunReport).tiles.total, byStream.tiles.total);

    // Without NATS there is no stream to replay: a usage error naming what to give.
    const noNats = await runLanemap(["batch", "run", "--from-stream", "--data-dir", streamDir.path], {
      ...env,
      NATS_URL: "",
    });
    assert.equal(noNats.code, 2);
    assert.match(
      noNats.stderr.trim(),
      /^lanemap: USAGE: --from-stream replays the ingest stream, and NATS is not configured/,
    );

    // The speed lane's ack floor bounds a replay as it bounds a catalogue run.
    await using behindDir = await tempDir("lanemap-kappa-behind-");
    const behind = await readStreamRunSet({
      nc: nats.nc,
      archive: new ArchiveStore(behindDir.path),
      maxPixels: config.maxPixels,
      logger,
      watermark: () => 2,
    });
    assert.deepEqual(
      {
        watermark: behind.watermark,
        seqs: behind.entries.map((e) => e.ingestSeq),
        excluded: behind.excluded,
      },
      { watermark: 2, seqs: [1, 2], excluded: last - 2 },
      "an ack floor of 2 replays sequences 1 and 2 and leaves the rest to the speed lane",
    );
    await assert.rejects(
      readStreamRunSet({
        nc: nats.nc,
        archive: new ArchiveStore(behindDir.path),
        maxPixels: config.maxPixels,
        logger,
        fromSeq: 3,
        watermark: () => 2,
      }),
      (err: unknown) => err instanceof StreamRangeError && /acknowledged up to 2 only/.test(err.message),
    );
    // Once limits have removed the oldest messages, a replay from 1 says where the stream starts now.
    await jsm.streams.purge(INGEST_STREAM, { seq: 4 });
    await using partialDir = await tempDir("lanemap-kappa-partial-");
    const archive = new ArchiveStore(partialDir.path);
    await assert.rejects(
      readStreamRunSet({ nc: nats.nc, archive, maxPixels: config.maxPixels, logger }),
      (err: unknown) =>
        err instanceof StreamRangeError &&
        err.code === "REPLAY_RANGE" &&
        err.message.startsWith(`${INGEST_STREAM} no longer holds sequence 1: its first sequence is 4`),
    );
    const rest = await readStreamRunSet({
      nc: nats.nc,
      archive,
      maxPixels: config.maxPixels,
      logger,
      fromSeq: 4,
    });
    assert.deepEqual(
      rest.entries.map((e) => e.ingestSeq).sort((x, y) => x - y),
      [4, 5, 6, 9, 10],
      "--from-seq 4 replays what is left: the fourth and fifth tiles, the re-sent one (its first copy is gone), the last",
    );
  });
});
