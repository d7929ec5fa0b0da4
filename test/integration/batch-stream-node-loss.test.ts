/**
 * The coordinator of a stream batch run rides out the loss of a NATS node (issue 14, the operator's
 * run 1: node b, host of the coordinator's result consumer, SIGKILLed 1 s into the run; the workers
 * finished every tile, the results sat in LANEMAP_BATCH_RESULTS, and the coordinator read none of
 * them after the kill and failed 5 min later blaming the workers). Real 3-node cluster on loopback;
 * the test plays the workers' part by publishing the results on the wire, so that it controls when
 * they come: some before the kill, the rest after it.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { StreamTileExecutor } from "../../batch/index.js";
import { encodeResult, type ResultHead } from "../../batch/task-wire.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { BATCH_RESULT_STREAM, batchResultSubject } from "../../shared/adapters/nats/index.js";
import { serializeModel, type CatalogueEntry } from "../../shared/index.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, startNatsCluster } from "../helpers/nats-cluster.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { waitFor } from "./speed-fixtures.js";

describe("a stream batch run on a 3-node cluster", { skip: natsMissing() }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 3, height: 2, tileSize: 32, seed: 11 });
  });
  after(() => set?.dispose());

  test("when the node holding the coordinator's result consumer is SIGKILLed, the coordinator reads every result published after it", async () => {
    await using cluster = await startNatsCluster();
    const dir = await makeDataDir(set, "node-loss");
    // A stall limit well above what the test waits: a run that stops reading fails the test by its timeout.
    const config = dir.config({
      NATS_URL: cluster.natsUrl,
      LANEMAP_NATS_REPLICAS: "3",
      LANEMAP_BATCH_STALL_S: "120",
    });
    const entries: CatalogueEntry[] = [];
    for await (const e of dir.store.entries()) entries.push(e);
    const runId = "20260101T000000Z-nodelo";
    const executor = await StreamTileExecutor.start({
      nc: cluster.nc,
      config,
      logger: testLogger(),
      runId,
      artifact: new TextEncoder().encode(serializeModel(set.model)),
      models: await openModelRegistry(config, cluster.nc),
      tileIds: new Set(entries.map((e) => e.tileId)),
    });
    try {
      let done = 0;
      const outcomes = Promise.all(entries.map((e) => executor.process(e).then((o) => (done++, o))));
      const publishResult = (e: CatalogueEntry) => {
        const head: ResultHead = {
          runId,
          tileId: e.tileId,
          modelVersion: set.model.version,
          worker: "test-worker",
          // A permanent failure: a result the coordinator takes as it is, no raster to fetch.
          outcome: { ok: false, code: "TILE_INVALID", reason: `test result of ${e.tileId}` },
        };
        // Retried while the cluster elects new leaders, as a worker's publish is.
        return waitFor(
          `publishing the result of ${e.tileId}`,
          () =>
            jetstream(cluster.nc).publish(batchResultSubject(runId), encodeResult(head), { timeout: 2_000 }),
          60_000,
        );
      };
      const half = Math.floor(entries.length / 2);
      for (const e of entries.slice(0, half)) await publishResult(e);
      await waitFor("the results before the kill are read", () => done === half || undefined, 30_000);

      // The coordinator's ordered result consumer is R1: kill the node it lives on.
      const jsm = await jetstreamManager(cluster.nc);
      let host: string | undefined;
      for await (const c of jsm.consumers.list(BATCH_RESULT_STREAM)) host ??= c.cluster?.leader;
      const victim = NODE_NAMES.indexOf(host as (typeof NODE_NAMES)[number]);
      assert.ok(victim >= 0, `the result consumer lives on a node (got ${String(host)})`);
      await cluster.kill(victim);

      for (const e of entries.slice(half)) await publishResult(e);
      const all = await Promise.race([
        outcomes,
        new Promise<never>((_, reject) =>
          setTimeout(
            () => reject(new Error(`only ${done} of ${entries.length} results read`)),
            60_000,
          ).unref(),
        ),
      ]);
      assert.deepEqual(
        all.map((o) => (o.ok ? "ok" : o.code)),
        entries.map(() => "TILE_INVALID"),
        "every tile resolved with the result published for it",
      );
      assert.equal(executor.duplicates, 0, "a re-created consumer does not read a result twice");
    } finally {
      await executor.close();
    }
  });
});
