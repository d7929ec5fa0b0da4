/**
 * A batch task whose tile read hangs (issue 14, the operator's run 3: an object-store read behind a
 * consumer on a node that died) is handed back once it outlives its deadline, instead of being kept
 * in progress by the worker's heartbeats forever where no other worker could take it; and stopping
 * a worker does not wait for such a read. Real nats-server, the real `lanemap worker` composition.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { encodeTask } from "../../batch/task-wire.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { startLanemapWorker } from "../../infra/platform/worker.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { batchTaskSubject } from "../../shared/adapters/nats/index.js";
import { describeTile, tileDeadline } from "../../shared/index.js";
import { DelegatingArchive } from "../helpers/archive-entries.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig, testLogger, testModel, testTile } from "./speed-fixtures.js";

/** The data directory's archive, except that reading an object never answers (a hung read). */
class HangingReads extends DelegatingArchive {
  reads = 0;
  override readObject(): Promise<Uint8Array> {
    this.reads++;
    return new Promise(() => undefined);
  }
}

test(
  "a batch task whose tile read hangs is handed back at its deadline and redelivered, and the worker still stops at once",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const config = testConfig(dir.path, { LANEMAP_BATCH_EXECUTOR: "stream", LANEMAP_BATCH_WORKERS: "1" });
    const logger = testLogger();
    const models = await openModelRegistry(config, nats.nc, logger);
    const { entry: model } = await models.put(await testModel());
    const archive = new HangingReads(new ArchiveStore(dir.path));
    const worker = await startLanemapWorker(config, {
      nc: nats.nc,
      logger,
      models,
      archive,
      batchTaskDeadlineMs: 1_500,
    });
    let stopped = false;
    try {
      const tile = testTile(0, 0, "2024-03-01T16:40:00Z");
      const entry = await describeTile(tile.bytes, {
        ingestSeq: 0,
        source: "bulk",
        tileId: tile.tileId,
        cell: tile.cell,
        acquired: tile.acquired,
      });
      const runId = "20240301T000000Z-hang01";
      await jetstream(nats.nc).publish(
        batchTaskSubject(runId),
        encodeTask({ runId, modelVersion: model.version, maxPixels: 1 << 24, entries: [entry] }),
      );
      // Heartbeats every ack_wait/3 kept the hung task in progress for ever: one read only.
      const start = Date.now();
      while (archive.reads < 2 && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 100));
      assert.ok(archive.reads >= 2, `the task was delivered again (${archive.reads} reads in 10 s)`);
      const stopStart = Date.now();
      await worker.stop();
      stopped = true;
      // A stop waits for a tile in flight as long as its own deadline, never for the hung read.
      assert.ok(
        Date.now() - stopStart < tileDeadline(config, entry).ms + 3_000,
        `stopped in ${Date.now() - stopStart} ms`,
      );
    } finally {
      if (!stopped) await worker.stop();
    }
  },
);
