/**
 * A batch run on the work queue fails at once where the workers that would take its tasks cannot
 * start (an operator's check, issue 14): a node whose max_file_store cannot hold the speed lane's
 * streams at LANEMAP_STREAM_MAX_BYTES made every `lanemap worker` exit with NATS_SETUP, while the
 * run published its tasks and waited LANEMAP_BATCH_STALL_S (5 minutes by default) for nobody.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { natsMissing, startBareNatsServer } from "../helpers/nats.js";
import { makeSampleSet, type SampleSet } from "./batch-fixture.js";
import { runLanemap, tempDir } from "./speed-fixtures.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 1, height: 1 });
});
after(() => set?.dispose());

/** Below the stall wait set here (30 s), above a loaded machine's two CLI starts. */
const PROMPT_MS = 20_000;

const skip = natsMissing();

describe("a batch run on the work queue where no worker can start", { ...(skip ? { skip } : {}) }, () => {
  test("fails at once with the workers' own NATS_SETUP line, not after the stall wait", async () => {
    // 8 GB of file store: the archive's buckets and the batch queue fit, the ingest and dead-letter
    // streams (8 GiB each by default) do not both: the node config an operator had.
    await using server = await startBareNatsServer({
      jetstream: true,
      config: "jetstream { max_file_store: 8GB }\n",
    });
    await using data = await tempDir("lanemap-stream-setup-");
    const env = {
      LANEMAP_DATA_DIR: data.path,
      NATS_URL: server.url,
      LANEMAP_STORAGE: "nats",
      LANEMAP_BATCH_EXECUTOR: "stream",
      LANEMAP_BATCH_STALL_S: "30",
      LANEMAP_LOG_LEVEL: "warn",
    };
    const added = await runLanemap(["archive", "add", set.tilesDir], env);
    assert.equal(added.code, 0, added.stderr);

    // The run first, as an operator starts the coordinator before noticing the workers died: its
    // own buckets and queue fit, the speed lane's streams it now checks for the workers do not.
    const t0 = Date.now();
    const run = await runLanemap(["batch", "run", "--model", set.modelPath], env);
    const ms = Date.now() - t0;
    assert.equal(run.code, 1, `${run.stderr}\n${run.stdout}`);
    assert.ok(ms < PROMPT_MS, `failed in ${ms} ms, not after the stall wait: ${run.stderr}`);

    const worker = await runLanemap(["worker"], env);
    assert.equal(worker.code, 1, worker.stderr);
    const refusal = /^lanemap: .*insufficient storage.*$/m.exec(worker.stderr)?.[0];
    assert.ok(refusal, `the worker's refusal names the storage: ${worker.stderr}`);
    assert.ok(run.stderr.includes(refusal), `the worker's line:\n${refusal}\nin the run's:\n${run.stderr}`);
  });
});
