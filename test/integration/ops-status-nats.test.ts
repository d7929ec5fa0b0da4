/**
 * `lanemap ops status` with LANEMAP_STORAGE=nats reads the published views where the deployment
 * publishes them, the JetStream view store, not the local data directory (which on a worker or a
 * second machine holds no view at all); with the files backend it reads the folder as before.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createBatchRunner } from "../../batch/index.js";
import type { OpsStatus } from "../../infra/ops/index.js";
import { NatsPublishedViews } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, type SampleSet } from "./batch-fixture.js";
import { runLanemap, tempDir, testEnv } from "./speed-fixtures.js";

describe("ops status and the NATS view store", { skip: natsMissing() }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 2, height: 2, tileSize: 64, seed: 3 });
  });
  after(() => set?.dispose());

  test("with LANEMAP_STORAGE=nats an empty data directory shows the view published to NATS as CURRENT; with files it shows none", async () => {
    await using nats = await natsFixture();
    const a = await makeDataDir(set, "publisher");
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(a.dataDir, "cache", "views") });
    const report = await createBatchRunner(a.config(), { logger: a.logger, views }).run();
    await using empty = await tempDir("lanemap-ops-status-");

    const status = async (storage: string): Promise<OpsStatus> => {
      const r = await runLanemap(
        ["ops", "status", "--json"],
        testEnv(empty.path, { NATS_URL: nats.server.url, LANEMAP_STORAGE: storage }),
      );
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as OpsStatus;
    };
    const fromNats = await status("nats");
    assert.equal(fromNats.batch.storage, "nats");
    assert.equal(fromNats.batch.current?.name, report.version);
    assert.equal(fromNats.batch.current?.watermark, report.watermark);
    assert.equal(fromNats.batch.current?.tiles.total, 4);
    assert.deepEqual(
      fromNats.batch.versions.map((v) => [v.name, v.current]),
      [[report.version, true]],
    );

    const fromFiles = await status("files");
    assert.equal(fromFiles.batch.storage, "files");
    assert.equal(fromFiles.batch.current, null, "the empty folder has no view");
    assert.deepEqual(fromFiles.batch.versions, []);
  });
});
