/**
 * Issue 14, tombstones: a tile `lanemap archive remove` took out stays out when the ingest stream is
 * replayed — `lanemap batch run --from-stream` (kappa mode) and `lanemap ops replay` leave out its
 * messages stored before the removal — while a tile ingested again after its removal is live and
 * counts. On both storages, everything real: nats-server, a speed worker, the CLI, DuckDB.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { RunReport } from "../../batch/index.js";
import type { ReplayReport } from "../../infra/ops/index.js";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { openTileArchive } from "../../infra/platform/storage.js";
import { openPublishedViews } from "../../infra/platform/views.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import { INGEST_STREAM, speedLaneStatus } from "../../shared/adapters/nats/index.js";
import { BATCH_VIEW_FILES } from "../../shared/index.js";
import { publishTile, startSpeedWorker } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { viewRasters } from "./batch-fixture.js";
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

/** A view's tile rows (but when they were processed), by tile id. */
async function viewTiles(viewDir: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDbDatabase.open(join(viewDir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
  try {
    return await db.allJS(
      `SELECT tile_id, cell, CAST(acquired AS VARCHAR) AS acquired, ingest_seq, content_hash, model_version,
              valid_pixels, counts, dominant_class, mean_confidence
         FROM tiles ORDER BY tile_id`,
    );
  } finally {
    db.closeSync();
  }
}

function scenario(backend: "files" | "nats"): void {
  test(
    `with LANEMAP_STORAGE=${backend}, batch run --from-stream and ops replay leave out the tiles archive remove took out, ` +
      "and a tile ingested again after its removal counts",
    { timeout: 240_000 },
    async () => {
      await using nats = await natsFixture();
      await using dataDir = await tempDir(`tomb14-removals-${backend}-`);
      const extra = { LANEMAP_STORAGE: backend, NATS_URL: nats.server.url, LANEMAP_BATCH_WORKERS: "2" };
      const config = testConfig(dataDir.path, extra);
      const env = testEnv(dataDir.path, extra);
      const logger = testLogger();
      const models = await openModelRegistry(config, nats.nc);
      const model = await testModel();
      await models.put(model, { trainedBy: "test" });
      await models.activate(model.version);
      const archive = await openTileArchive(config, nats.nc, logger);
      const jsm = await jetstreamManager(nats.nc);
      const ackedUpTo = (seq: number) =>
        waitFor(
          `the speed lane to acknowledge up to ${seq}`,
          async () => ((await speedLaneStatus(jsm)).consumer?.ackFloorSeq ?? 0) >= seq,
          60_000,
        );
      await using worker = await startSpeedWorker(config, { nc: nats.nc, logger, models });
      void worker;

      const js = jetstream(nats.nc);
      const jan = "2024-01-10T16:40:00Z";
      const tiles = [0, 1, 2, 3, 4].map((col) => testTile(col, 0, jan));
      const [, gone, , back] = tiles as [unknown, (typeof tiles)[0], unknown, (typeof tiles)[0]];
      const send = (t: (typeof tiles)[0], msgId?: string) =>
        publishTile(js, t.bytes, {
          tileId: t.tileId,
          cell: t.cell,
          acquired: t.acquired,
          ...(msgId ? { msgId } : {}),
        });
      for (const t of tiles) await send(t);
      await ackedUpTo(5);
      await waitFor(
        "the five tiles catalogued",
        async () => (await archive.get(tiles[4]!.tileId)) !== undefined,
      );

      // The operator takes two tiles out; the stream is at sequence 5 then.
      const removed = await runLanemap(["archive", "remove", gone.tileId, back.tileId], env);
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(
        removed.stdout,
        /^tombstones recorded: replays of the ingest stream leave out the messages of these 2 tiles stored up to sequence 5 /m,
      );
      const listed = await runLanemap(["archive", "list", "--removed", "--json"], env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(
        (JSON.parse(listed.stdout) as { tileId: string; ingestSeq: number; droppable: boolean }[]).map(
          (r) => [r.tileId, r.ingestSeq, r.droppable],
        ),
        [
          [gone.tileId, 5, false],
          [back.tileId, 5, false],
        ].sort(),
      );

      // One of them is ingested again (sequence 6): a live tile again.
      const again = await send(back, `${back.tileId}-again`);
      assert.equal(again.seq, 6);
      await ackedUpTo(6);
      await waitFor("the tile ingested again catalogued", () => archive.get(back.tileId));
      assert.equal((await archive.get(back.tileId))?.ingestSeq, 6);

      // The catalogue-driven view, then the stream-driven one (kappa mode, as an operator runs it).
      const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc, models });
      const byCatalogue = await runner.run();
      await runner.close();
      const kappa = await runLanemap(["batch", "run", "--from-stream", "--json"], env);
      assert.equal(kappa.code, 0, `batch run --from-stream exits 0 (stderr: ${kappa.stderr})`);
      const byStream = JSON.parse(kappa.stdout) as RunReport;
      assert.deepEqual(
        byStream.stream?.removed?.map((r) => [r.seq, r.tileId, r.removedAtSeq]),
        [
          [2, gone.tileId, 5],
          [4, back.tileId, 5],
        ],
        "the messages stored before the removal are left out, listed as removed",
      );
      assert.deepEqual(byStream.stream?.excluded, []);
      assert.equal(
        await archive.get(gone.tileId),
        undefined,
        "the replay did not register the removed tile again",
      );

      const views = await openPublishedViews(config, nats.nc, logger);
      const a = await views.materialize(byCatalogue.version);
      const b = await views.materialize(byStream.version);
      const expected = [tiles[0]!, tiles[2]!, back, tiles[4]!].map((t) => t.tileId).sort();
      assert.deepEqual(
        (await viewTiles(a)).map((t) => t["tile_id"]),
        expected,
      );
      assert.deepEqual(
        await viewTiles(b),
        await viewTiles(a),
        "the kappa view equals the catalogue's tile for tile",
      );
      const [ra, rb] = [await viewRasters(a), await viewRasters(b)];
      assert.deepEqual([...rb.keys()], [...ra.keys()]);
      for (const [tileId, r] of ra)
        assert.ok(rb.get(tileId)?.equals(r), `the class raster of ${tileId} is the same`);

      // ops replay over the whole range: the two messages of removed tiles are not republished.
      const dry = await runLanemap(["ops", "replay", "--from-seq", "1", "--dry-run"], env);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(
        dry.stdout,
        new RegExp(`^  seq 2  ${gone.tileId}  skipped: removed by \`lanemap archive remove\` at `, "m"),
      );
      assert.match(
        dry.stdout,
        /^2 message\(s\) of tiles `lanemap archive remove` took out after they were stored left out/m,
      );
      const replay = await runLanemap(["ops", "replay", "--from-seq", "1", "--json"], env);
      assert.equal(replay.code, 0, replay.stderr);
      const report = JSON.parse(replay.stdout) as ReplayReport;
      assert.deepEqual(
        {
          read: report.read,
          republished: report.republished,
          skipped: report.skipped,
          removed: report.removed,
        },
        { read: 6, republished: 4, skipped: 2, removed: 2 },
      );
      assert.deepEqual(
        report.messages.filter((m) => m.newSeq !== null).map((m) => m.origSeq),
        [1, 3, 5, 6],
        "the message of the tile ingested again after its removal is replayed",
      );
      await ackedUpTo(10);
      assert.equal(
        await archive.get(gone.tileId),
        undefined,
        "the speed lane was not handed the removed tile",
      );
      assert.equal((await archive.get(back.tileId))?.ingestSeq, 6);

      // Once the stream's limits have discarded every message a tombstone covers, it can go; the
      // next removal drops it (a single test server: the purge stands in for max_age).
      await jsm.streams.purge(INGEST_STREAM, { seq: 6 });
      const droppable = await runLanemap(["archive", "list", "--removed", "--json"], env);
      assert.deepEqual(
        (JSON.parse(droppable.stdout) as { droppable: boolean }[]).map((r) => r.droppable),
        [true, true],
      );
      const next = await runLanemap(["archive", "remove", tiles[0]!.tileId], env);
      assert.equal(next.code, 0, next.stderr);
      assert.match(
        next.stdout,
        new RegExp(
          `^dropped 2 older tombstone\\(s\\) the ingest stream holds no message of: ${[gone.tileId, back.tileId].sort().join(", ")}$`,
          "m",
        ),
      );
      const left = await runLanemap(["archive", "list", "--removed", "--json"], env);
      assert.deepEqual(
        (JSON.parse(left.stdout) as { tileId: string; ingestSeq: number }[]).map((r) => [
          r.tileId,
          r.ingestSeq,
        ]),
        [[tiles[0]!.tileId, 10]],
      );
    },
  );
}

describe("tombstones: replays leave removed tiles out", { skip: natsMissing() }, () => {
  scenario("files");
  scenario("nats");
});
