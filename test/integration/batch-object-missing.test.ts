/**
 * Issue 14: a catalogued tile whose archived object storage cannot find (a JetStream replica that
 * diverged after node restarts lost it) is a storage failure, not a bad tile. The batch task is
 * redelivered with backoff; if the object is still unreadable on its last delivery the run fails
 * without publishing and CURRENT stays where it was; if the object is back before a redelivery the
 * run completes with every tile. Real nats-server (the object's messages purged behind lanemap's
 * back while the catalogue keeps the entry), the real `lanemap worker` composition, real DuckDB.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { createBatchRunner, readRunSet } from "../../batch/index.js";
import { buildBatchRunner } from "../../infra/platform/batch-runners.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { openPublishedViews } from "../../infra/platform/views.js";
import { startLanemapWorker } from "../../infra/platform/worker.js";
import { addArchiveFolder } from "../../batch/index.js";
import { readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { NatsTileArchive, archiveGenerationBucket } from "../../shared/adapters/nats/index.js";
import type { CatalogueEntry } from "../../shared/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { activateModel, tempDir, testConfig, waitFor } from "./speed-fixtures.js";

/** An object's name in its meta subject: base64url with padding, as nats.js writes it. */
const metaName = (name: string): string =>
  Buffer.from(name).toString("base64").replaceAll("+", "-").replaceAll("/", "_");

describe(
  "a batch run whose archive lost sight of a catalogued tile's object",
  { skip: natsMissing() },
  () => {
    let set: SampleSet;
    before(async () => {
      set = await makeSampleSet({ width: 2, height: 2, tileSize: 64, seed: 5 });
    });
    after(() => set?.dispose());

    test(
      "fails without publishing while the object is unreadable, and completes once it is back before a redelivery",
      { timeout: 180_000 },
      async () => {
        await using nats = await natsFixture();
        await using dir = await tempDir();
        const config = testConfig(dir.path, {
          LANEMAP_STORAGE: "nats",
          LANEMAP_BATCH_EXECUTOR: "stream",
          LANEMAP_BATCH_WORKERS: "1",
          // Redelivered after 0.5, 1, 2 and 4 s: room to restore the object in the second run.
          LANEMAP_MAX_DELIVER: "5",
        });
        const lines: { msg: string; [k: string]: unknown }[] = [];
        const logger = testLogger(lines);
        const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
        await addArchiveFolder(archive, set.tilesDir, { logger, maxPixels: 1e8 });
        const entries: CatalogueEntry[] = (await readRunSet(archive)).entries.slice();
        entries.sort((a, b) => a.tileId.localeCompare(b.tileId));
        await activateModel(nats.nc, set.model);
        const models = await openModelRegistry(config, nats.nc, logger);
        const worker = await startLanemapWorker(config, { nc: nats.nc, logger, models, archive });
        const { runner } = await buildBatchRunner(config, { logger, nc: nats.nc, models });
        const views = await openPublishedViews(config, nats.nc);
        try {
          const first = await runner.run({ model: set.model.version, full: true });
          assert.equal(first.tiles.failed, 0);
          assert.equal((await views.current())?.name, first.version);

          // Storage loses one object: its chunks and its meta are gone, the catalogue entry stays.
          const lost = entries[1]!;
          const bytes = await archive.readObject(lost.contentHash);
          const jsm = await jetstreamManager(nats.nc);
          // A fresh archive stores its objects in generation 1 (nats-archive.ts).
          const bucket = archiveGenerationBucket(1);
          const stream = `OBJ_${bucket}`;
          const meta = await jsm.streams.getMessage(stream, {
            last_by_subj: `$O.${bucket}.M.${metaName(lost.contentHash)}`,
          });
          assert.ok(meta, "the object's meta message is stored");
          const nuid = (meta.json() as { nuid: string }).nuid;
          const purge = async () => {
            await jsm.streams.purge(stream, { filter: `$O.${bucket}.C.${nuid}` });
            await jsm.streams.purge(stream, { filter: meta.subject });
          };
          await purge();
          assert.ok(await archive.get(lost.tileId), "the catalogue still lists the tile");

          await assert.rejects(runner.run({ model: set.model.version, full: true }), (err: unknown) => {
            const e = err as { code?: string; message?: string };
            assert.equal(e.code, "ARCHIVE_OBJECTS_UNREADABLE");
            assert.equal(
              e.message,
              `archive objects unreadable: 1 tiles (e.g. ${lost.tileId}: no archived object ${lost.contentHash}); ` +
                "the previous view stays current; check `lanemap ops status`",
            );
            return true;
          });
          assert.equal((await views.current())?.name, first.version, "CURRENT did not move");
          assert.deepEqual(
            (await views.list()).map((v) => v.name),
            [first.version],
            "nothing was published",
          );
          const retried = lines.filter(
            (l) => l.msg === "transient failure; task left for redelivery" && l["tileId"] === lost.tileId,
          );
          assert.equal(
            retried.length,
            4,
            "the task was redelivered up to its max deliveries, never failed as bad",
          );

          // The object comes back (the replica catches up) before a redelivery: the run completes.
          lines.length = 0;
          const run = runner.run({ model: set.model.version, full: true });
          await waitFor("the lost tile's first failed read", () =>
            lines.some(
              (l) => l.msg === "transient failure; task left for redelivery" && l["tileId"] === lost.tileId,
            ),
          );
          await archive.putObject(bytes);
          const third = await run;
          assert.equal(third.tiles.failed, 0);
          assert.equal(third.tiles.total, entries.length);
          assert.equal((await views.current())?.name, third.version, "CURRENT moved to the complete view");
        } finally {
          await runner.close();
          await worker.stop();
        }
      },
    );

    test("with the threads executor, a catalogued tile whose object file is gone fails the run; CURRENT stays", async () => {
      const d = await makeDataDir(set, "threads-lost");
      const runner = createBatchRunner(d.config(), { logger: testLogger() });
      try {
        const first = await runner.run({ model: set.modelPath });
        assert.equal(first.tiles.failed, 0);
        const entries: CatalogueEntry[] = [];
        for await (const e of d.store.entries()) entries.push(e);
        const lost = entries.sort((a, b) => a.tileId.localeCompare(b.tileId))[0]!;
        rmSync(d.store.objectPath(lost.contentHash));
        await assert.rejects(runner.run({ model: set.modelPath, full: true }), {
          code: "ARCHIVE_OBJECTS_UNREADABLE",
          message: new RegExp(`^archive objects unreadable: 1 tiles \\(e\\.g\\. ${lost.tileId}: `),
        });
        assert.equal((await readCurrentBatch(d.dataDir))?.name, first.version, "CURRENT did not move");
      } finally {
        await runner.close();
      }
    });
  },
);
