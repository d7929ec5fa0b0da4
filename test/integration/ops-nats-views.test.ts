/**
 * `lanemap ops expire` and `lanemap ops diff` on a machine of a cluster: with LANEMAP_STORAGE=nats the
 * batch view (CURRENT, its manifest and files) lives in the JetStream view store, and this machine's
 * data directory is empty. Both commands must answer from the store, as they answer from the files
 * of the publisher's data directory. A real nats-server per test, the real batch lane publishing into
 * NatsPublishedViews, a real speed worker filling the live view.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createBatchRunner, type RunReport } from "../../batch/index.js";
import { FilePublishedViews, setCurrentBatch } from "../../shared/adapters/archive/index.js";
import {
  LiveView,
  NatsModelRegistry,
  NatsPublishedViews,
  speedLaneStatus,
} from "../../shared/adapters/nats/index.js";
import { serializeModel } from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";
import { publishTile, startSpeedWorker } from "../../speed/index.js";
import {
  NoBatchViewError,
  WatermarkMovedBackError,
  diffLanes,
  expireAbsorbed,
  type DiffReport,
  type ExpireReport,
} from "../../infra/ops/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { runLanemap, tempDir, testEnv, waitFor } from "./speed-fixtures.js";

/** makeSampleSet's seed: fresh acquisitions of the same ground as the archive. */
const SEED = 7;

describe("ops expire and ops diff with the views in NATS", { skip: natsMissing() }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 3, height: 3, tileSize: 64, seed: SEED });
  });
  after(() => set?.dispose());

  test("on a machine with an empty data directory both see the view published to NATS and answer as the publisher's files do", async () => {
    await using nats = await natsFixture();
    const publisher = await makeDataDir(set, "publisher");
    const config = publisher.config({
      NATS_URL: nats.server.url,
      LANEMAP_SPEED_CONCURRENCY: "1",
      LANEMAP_ACK_WAIT_S: "5",
      LANEMAP_MAX_DELIVER: "3",
    });
    const logger = publisher.logger;
    const registry = await NatsModelRegistry.open(nats.nc);
    await registry.upload(set.model.version, new TextEncoder().encode(serializeModel(set.model)));
    await registry.activate(set.model.version);
    const worker = await startSpeedWorker(config, { nc: nats.nc, logger, name: "ops-nats-test" });
    try {
      const live = await LiveView.open(nats.nc);
      const jsm = await jetstreamManager(nats.nc);
      const js = jetstream(nats.nc);
      let minute = 0;
      const send = async (col: number, row: number) => {
        const acquired = new Date(Date.UTC(2025, 0, 1, 0, ++minute)).toISOString();
        const tile = generateTile({ seed: SEED, col, row, tileSize: 64, acquired });
        const tileId = `${tile.cell}-2025${String(minute).padStart(4, "0")}`;
        const sent = await publishTile(js, tile.bytes, { tileId, cell: tile.cell, acquired });
        await waitFor(`live result of ${tileId}`, () => live.get(tile.cell, tileId));
        return { cell: tile.cell, tileId, seq: sent.seq };
      };
      const published = await NatsPublishedViews.open(nats.nc, {
        cacheDir: join(publisher.dataDir, "cache", "views"),
      });
      const batch = (): Promise<RunReport> =>
        createBatchRunner(config, {
          logger,
          views: published,
          watermark: async () => (await speedLaneStatus(jsm)).consumer?.ackFloorSeq ?? 0,
        }).run();

      const absorbed = [await send(0, 0), await send(1, 1), await send(2, 2), await send(0, 1)];
      const v1 = await batch();
      assert.equal(v1.watermark, absorbed.at(-1)?.seq);
      const above = [await send(1, 0), await send(2, 1)];

      // This machine: an empty data directory, the views reached through NATS only.
      await using empty = await tempDir("expire14-ops-nats-");
      const here = await NatsPublishedViews.open(nats.nc, { cacheDir: join(empty.path, "cache", "views") });
      // The same version as a files deployment holds it: the publisher's folder with CURRENT naming it.
      await setCurrentBatch(publisher.dataDir, v1.version);
      const onFiles = new FilePublishedViews(publisher.dataDir);

      const diff = await diffLanes({ views: here, dataDir: empty.path, live, threshold: 0.1, logger });
      assert.equal(diff.version, v1.version);
      assert.equal(diff.watermark, v1.watermark);
      assert.equal(diff.summary.batchCells, 9);
      assert.equal(diff.summary.compared, absorbed.length);
      assert.equal(diff.summary.sameTile, absorbed.length);
      assert.equal(diff.summary.exceeding, 0);
      assert.equal(diff.summary.maxMaxDiff, 0, "the same model on the same bytes agrees exactly");
      const diffOnFiles = await diffLanes({
        views: onFiles,
        dataDir: publisher.dataDir,
        live,
        threshold: 0.1,
        logger,
      });
      assert.deepEqual(diff, diffOnFiles, "the same report as from the publisher's files");

      const dry = await expireAbsorbed({ views: here, live, dryRun: true, logger });
      assert.equal(dry.version, v1.version);
      assert.equal(dry.watermark, v1.watermark);
      assert.deepEqual(
        dry.results.map((r) => r.tileId),
        absorbed.map((s) => s.tileId),
      );
      assert.equal(dry.kept, above.length);
      assert.deepEqual(dry, await expireAbsorbed({ views: onFiles, live, dryRun: true, logger }));

      // Through the CLI on the empty data directory.
      const env = testEnv(empty.path, { NATS_URL: nats.server.url, LANEMAP_STORAGE: "nats" });
      const [cliDiff, cliDry] = await Promise.all([
        runLanemap(["ops", "diff", "--json"], env),
        runLanemap(["ops", "expire", "--dry-run", "--json"], env),
      ]);
      assert.equal(cliDiff.code, 0, cliDiff.stderr);
      assert.deepEqual((JSON.parse(cliDiff.stdout) as DiffReport).summary, diff.summary);
      assert.equal(cliDry.code, 0, cliDry.stderr);
      const dryReport = JSON.parse(cliDry.stdout) as ExpireReport;
      assert.equal(dryReport.version, v1.version);
      assert.equal(dryReport.absorbed, absorbed.length);
      assert.equal(dryReport.removed, 0);
      assert.equal((await live.list()).length, absorbed.length + above.length, "a dry run changes nothing");

      const expired = await expireAbsorbed({ views: here, live, dryRun: false, logger });
      assert.equal(expired.removed, absorbed.length);
      assert.deepEqual(
        (await live.list()).map((e) => e.result.tileId).sort(),
        above.map((s) => s.tileId).sort(),
        "only results above the watermark remain",
      );

      // The guard reads the same store: CURRENT rolled back in NATS to a lower watermark stops it.
      const v2 = await batch();
      assert.ok(v2.watermark > v1.watermark);
      // The publisher's local CURRENT still names v1 (a stale folder): through NATS expiry uses v2.
      const stale = await expireAbsorbed({ views: published, live, dryRun: true, logger });
      assert.equal(stale.version, v2.version);
      assert.equal(stale.absorbed, above.length);
      let rolledBack = false;
      const rollingBack = {
        list: () => live.list(),
        async remove(cell: string, tileId: string) {
          await live.remove(cell, tileId);
          if (!rolledBack) await here.setCurrent(v1.version);
          rolledBack = true;
        },
      };
      await assert.rejects(
        expireAbsorbed({ views: here, live: rollingBack, dryRun: false, chunk: 1, logger }),
        (err: unknown) => err instanceof WatermarkMovedBackError && err.removed === 1,
      );
      assert.equal((await live.list()).length, above.length - 1, "the rest is kept for the older view");
    } finally {
      await worker.stop();
    }
  });

  test("with nothing published in NATS, diff names the KV key, not views/batch/CURRENT, and expire removes nothing", async () => {
    await using nats = await natsFixture();
    await using empty = await tempDir("expire14-ops-nats-none-");
    const env = testEnv(empty.path, { NATS_URL: nats.server.url, LANEMAP_STORAGE: "nats" });
    const diff = await runLanemap(["ops", "diff"], env);
    assert.notEqual(diff.code, 0);
    assert.match(
      diff.stderr,
      /no batch view is published: NATS \(key current of KV bucket lanemap-view-pointer\)/,
    );
    assert.doesNotMatch(diff.stderr, /views\/batch\/CURRENT/);
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(empty.path, "cache", "views") });
    await assert.rejects(
      diffLanes({
        views,
        dataDir: empty.path,
        live: await LiveView.open(nats.nc),
        threshold: 0.1,
        logger: testLogger(),
      }),
      NoBatchViewError,
    );
    const expire = await runLanemap(["ops", "expire", "--json"], env);
    assert.equal(expire.code, 0, expire.stderr);
    assert.equal((JSON.parse(expire.stdout) as ExpireReport).version, null);
  });
});
