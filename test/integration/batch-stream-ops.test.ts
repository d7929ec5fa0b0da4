/**
 * What an operator meets at night with `LANEMAP_BATCH_EXECUTOR=stream` (issue 14's operator
 * defects): a run nobody works on fails after LANEMAP_BATCH_STALL_S instead of waiting forever,
 * and removes its queued tasks; the first SIGTERM stops a coordinator that waits on an idle queue
 * and keeps its tasks for the resume; the resume does not inherit an earlier incarnation's
 * transient failure. Real nats-server, real `lanemap` processes, real DuckDB.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createBatchRunner } from "../../batch/index.js";
import { encodeResult, type ResultHead } from "../../batch/task-wire.js";
import { readCurrentBatch } from "../../shared/adapters/archive/index.js";
import {
  BATCH_HEADERS,
  BATCH_TASK_STREAM,
  BatchLeases,
  batchResultSubject,
} from "../../shared/adapters/nats/index.js";
import { dataPaths, type CatalogueEntry } from "../../shared/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { lanemap, testEnv, waitFor } from "./speed-fixtures.js";

/** Messages on the work queue (every run's tasks: each test has a server of its own). */
async function queuedTasks(nc: NatsConnection): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(BATCH_TASK_STREAM).catch(() => null);
  return info?.state.messages ?? 0;
}

/** How many tiles the tasks on the work queue name (a task names one tile or a few small ones). */
async function queuedTiles(nc: NatsConnection): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(BATCH_TASK_STREAM).catch(() => null);
  if (!info) return 0;
  let tiles = 0;
  for (let seq = info.state.first_seq; seq > 0 && seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(BATCH_TASK_STREAM, { seq }).catch(() => null);
    tiles += m?.header?.get(BATCH_HEADERS.tileId)?.split(",").length ?? 0;
  }
  return tiles;
}

describe("operating a stream batch run", { skip: natsMissing() }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 3, height: 2, tileSize: 64, seed: 5 });
  });
  after(() => set?.dispose());

  test("a run no `lanemap worker` works on fails after LANEMAP_BATCH_STALL_S with BATCH_STALLED, saying what to do; CURRENT stays and no task is left queued", async () => {
    await using nats = await natsFixture();
    const d = await makeDataDir(set, "stalled");
    // --full: the stream run must classify every tile, not reuse this view's.
    const before = await createBatchRunner(d.config(), { logger: testLogger() }).run({
      model: set.modelPath,
    });
    await using run = lanemap(
      ["batch", "run", "--model", set.modelPath, "--executor", "stream", "--full"],
      testEnv(d.dataDir, {
        NATS_URL: nats.server.url,
        LANEMAP_BATCH_STALL_S: "2",
        LANEMAP_LOG_LEVEL: "info",
      }),
    );
    const t0 = performance.now();
    const code = await run.exited;
    const seconds = (performance.now() - t0) / 1000;

    assert.equal(code, 1, "the run exits non-zero");
    const last = run.stderr().trim().split("\n").pop() ?? "";
    assert.match(last, /^lanemap: BATCH_STALLED: no `lanemap worker` has taken a task of run \S+ for 2 s/);
    assert.match(last, /start one with `lanemap worker`/);
    assert.ok(
      run.lines.some((l) => l["msg"] === "batch run failed" && l["code"] === "BATCH_STALLED"),
      "the failure carries the stable code BATCH_STALLED",
    );
    assert.ok(seconds < 40, `it gave up within the stall time plus start-up (${seconds.toFixed(1)} s)`);
    assert.equal((await readCurrentBatch(d.dataDir))?.name, before.version, "CURRENT is untouched");
    assert.equal(await queuedTasks(nats.nc), 0, "the failed run's tasks were removed from the work queue");
  });

  test("`batch run --executor stream` without NATS is refused as CONFIG even when there is nothing to classify", async () => {
    const d = await makeDataDir(set, "no-nats");
    await createBatchRunner(d.config(), { logger: testLogger() }).run({ model: set.modelPath });
    const env = testEnv(d.dataDir);
    delete env["NATS_URL"];
    await using run = lanemap(["batch", "run", "--model", set.modelPath, "--executor", "stream"], env);
    assert.equal(await run.exited, 1, "refused, not an empty run that exits 0");
    assert.match(
      run.stderr().trim().split("\n").pop() ?? "",
      /^lanemap: CONFIG: the stream executor needs NATS/,
    );
  });

  test("a --full run after a SIGKILLed coordinator discards its checkpoint and removes its queued tasks, saying both in one line", async () => {
    await using nats = await natsFixture();
    const d = await makeDataDir(set, "full-after-kill");
    const env = (stallS: string) =>
      testEnv(d.dataDir, {
        NATS_URL: nats.server.url,
        LANEMAP_BATCH_STALL_S: stallS,
        // Short: the killed holder's lease must expire before the rerun can take over.
        LANEMAP_BATCH_LEASE_S: "2",
        LANEMAP_LOG_LEVEL: "info",
      });
    // No worker: the killed coordinator's tasks stay queued, as a crash leaves them for a resume.
    await using killed = lanemap(
      ["batch", "run", "--model", set.modelPath, "--executor", "stream"],
      env("300"),
    );
    const started = await killed.waitForLine("the run's start", (l) => l["msg"] === "batch run started");
    await waitFor("its tasks on the queue", async () => (await queuedTasks(nats.nc)) > 0 || undefined);
    killed.child.kill("SIGKILL");
    await killed.exited;
    const left = await queuedTasks(nats.nc);
    await waitFor(
      "the killed holder's lease to expire",
      async () => (await BatchLeases.read(nats.nc)) === null,
    );

    await using full = lanemap(
      ["batch", "run", "--model", set.modelPath, "--executor", "stream", "--full"],
      env("2"),
    );
    assert.equal(await full.exited, 1, "still no worker: it stalls, after starting over");
    const dropped = full.lines.filter((l) => String(l["msg"]).startsWith("--full: discarded the checkpoint"));
    assert.equal(dropped.length, 1, full.stderr());
    assert.match(
      String(dropped[0]!["msg"]),
      new RegExp(
        `^--full: discarded the checkpoint of interrupted run ${String(started["runId"])} \\(0 of 6 tiles done, last written \\d+ s ago, ${left} of its tasks removed from the queue\\); every tile is recomputed$`,
      ),
    );
    assert.equal(
      full.lines.filter((l) => l["msg"] === "resuming an interrupted batch run from its checkpoint").length,
      0,
    );
    // Its own tasks are removed when it fails; the killed run's only by the discard.
    assert.equal(await queuedTasks(nats.nc), 0, "no task of either run is left queued");
  });

  test("the first SIGTERM stops a coordinator waiting for workers and keeps its tasks; the resume classifies a tile whose earlier result was a transient failure again", async () => {
    await using nats = await natsFixture();
    const d = await makeDataDir(set, "sigterm");
    const env = testEnv(d.dataDir, { NATS_URL: nats.server.url, LANEMAP_LOG_LEVEL: "info" });
    await using run = lanemap(["batch", "run", "--model", set.modelPath, "--executor", "stream"], env);
    const entries: CatalogueEntry[] = [];
    for await (const e of d.store.entries()) entries.push(e);
    await waitFor(
      "every tile's task queued",
      async () => (await queuedTiles(nats.nc)) === entries.length || undefined,
      60_000,
    );
    const t0 = performance.now();
    run.child.kill("SIGTERM");
    // Bounded: a coordinator that ignores the first signal must fail this test, not hang it.
    const code = await Promise.race([run.exited, sleep(15_000).then(() => "still running")]);
    const seconds = (performance.now() - t0) / 1000;
    assert.notEqual(code, "still running", "one SIGTERM stopped the coordinator");
    assert.notEqual(code, 0);
    assert.ok(seconds < 5, `one SIGTERM stopped it, in ${seconds.toFixed(1)} s`);
    assert.equal(
      await queuedTiles(nats.nc),
      entries.length,
      "the interrupted run's tasks stay queued for its resume",
    );
    assert.equal(await readCurrentBatch(d.dataDir), null, "nothing was published");

    // The interrupted run's checkpoint (its staging folder is named after its run id, the queue id).
    const staged = readdirSync(dataPaths(d.dataDir).batchStaging).filter((n) => !n.startsWith("."));
    assert.equal(staged.length, 1);
    const runId = staged[0]!;
    // An earlier incarnation's transient failure of one tile (a storage timeout during a leader
    // election): the resume must not take it as that tile's result.
    const victim = entries[0]!;
    const head: ResultHead = {
      runId,
      tileId: victim.tileId,
      modelVersion: set.model.version,
      worker: "an earlier worker",
      outcome: { ok: false, code: "STORAGE", reason: "object store read timed out" },
    };
    await jetstream(nats.nc).publish(batchResultSubject(runId), encodeResult(head));

    await using worker = lanemap(["worker", "--name", "w1"], { ...env, LANEMAP_BATCH_WORKERS: "1" });
    await worker.waitForLine("worker ready", (l) => l["msg"] === "worker ready: speed + batch", 60_000);
    await using resume = lanemap(
      ["batch", "run", "--model", set.modelPath, "--executor", "stream", "--json"],
      env,
    );
    assert.equal(await resume.exited, 0, resume.stderr().trim().split("\n").pop());
    const report = JSON.parse(resume.out.join("\n")) as {
      resumedFrom: string;
      tiles: { total: number; failed: number };
      failures: unknown[];
      workers: number;
      version: string;
    };
    assert.equal(report.resumedFrom, runId, "the resume kept the interrupted run's queue id");
    const twice = resume
      .stderr()
      .split("\n")
      .filter((l) => (l.match(/"runId":/g) ?? []).length > 1);
    assert.deepEqual(twice, [], "no log line of the resume carries runId twice");
    assert.deepEqual(report.failures, [], "the transient failure was not inherited");
    assert.equal(report.tiles.failed, 0);
    assert.equal(report.workers, 1, "one worker process returned the results");
    const current = await readCurrentBatch(d.dataDir);
    assert.equal(current?.name, report.version);
    assert.ok(
      worker.lines.some((l) => l["msg"] === "batch tile classified" && l["tileId"] === victim.tileId),
      "the tile was classified again",
    );
    assert.equal(await queuedTasks(nats.nc), 0, "the finished run left no task queued");
  });
});
