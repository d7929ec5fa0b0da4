/**
 * Tasks of a run that is over are never classified again (issue 14, the operator's check: after
 * the task stream's leader was SIGKILLed, the restarted node's copy of LANEMAP_BATCH_TASKS on
 * nats-server 2.9.10 kept 17 tasks the others had acknowledged, which a leader change or a
 * re-created consumer could hand to workers). A run that ends records the task stream's last
 * sequence before it removes its tasks (shared/adapters/nats batch-runs.ts); a task stored at or
 * below it is dead. Real nats-server, the real coordinator, task worker and tile threads.
 *
 * The server's fault itself (a copy that keeps acknowledged messages) cannot be called up on one
 * server: the test makes the state such a copy presents, a run's task still queued after the run
 * was recorded over, by recording the run without removing its task.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Registry } from "prom-client";
import type { BatchTaskEvent } from "../../batch/index.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import {
  BATCH_RESULT_STREAM,
  BATCH_TASK_STREAM,
  batchResultSubject,
  batchTaskSubject,
  readRunRecord,
  recordRunOver,
} from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  catalogued,
  coordinator,
  makeSampleSet,
  oneTaskWorker,
  testLogger,
  type SampleSet,
} from "./batch-fixture.js";
import { waitFor } from "./speed-fixtures.js";

/** The last task of run `runId` in the task stream, or undefined when it has none. */
async function lastTask(jsm: JetStreamManager, runId: string) {
  const m = await jsm.streams
    .getMessage(BATCH_TASK_STREAM, { last_by_subj: batchTaskSubject(runId) })
    .catch(() => null);
  return m ?? undefined;
}

describe("tasks of a batch run that is over", { skip: natsMissing() }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 2, height: 1, tileSize: 64, seed: 17 });
  });
  after(() => set?.dispose());

  test("a run that ends records the task stream's last sequence before it removes its tasks still queued", async () => {
    await using nats = await natsFixture();
    const { config, entries } = await catalogued(set, "ends", nats.server.url);
    const models = await openModelRegistry(config, nats.nc);
    const runId = "20260101T000000Z-ends01";
    const jsm = await jetstreamManager(nats.nc);
    const executor = await coordinator(set, config, nats.nc, models, runId, [entries[0]!.tileId]);
    // No worker runs: the task stays queued until the run is over.
    const owed = executor.process(entries[0]!);
    const task = await waitFor("the run's task queued", () => lastTask(jsm, runId));
    assert.equal(await readRunRecord(nats.nc, runId), null, "a running run has no record");
    await executor.close({ purge: true });
    const o = await owed;
    assert.deepEqual([o.ok, !o.ok && o.code], [false, "CANCELLED"], "the tile owed was cancelled");
    const record = await readRunRecord(nats.nc, runId);
    assert.ok(record, "the run is recorded over");
    assert.equal(record.end, "over");
    assert.ok(
      record.lastTaskSeq >= task.seq,
      `its task (seq ${task.seq}) is at or below the record's sequence`,
    );
    assert.equal(
      record.taskStreamCreated,
      (await jsm.streams.info(BATCH_TASK_STREAM)).created,
      "the record names the task stream it counts in",
    );
  });

  test("a task stored before its run was recorded over is acknowledged unclassified, logged and counted, and the run resumed from its checkpoint publishes that tile afresh: both tiles classified once, from the resumed run's tasks", async () => {
    await using nats = await natsFixture();
    const { fx, config, entries } = await catalogued(set, "stale", nats.server.url);
    const models = await openModelRegistry(config, nats.nc);
    const runId = "20260101T000000Z-stale1";
    const jsm = await jetstreamManager(nats.nc);
    const [first, second] = [entries[0]!, entries[1]!];

    // The first incarnation publishes its task and stops (interrupted: its task stays queued).
    const earlier = await coordinator(set, config, nats.nc, models, runId, [first.tileId]);
    const cancelled = earlier.process(first);
    const stale = await waitFor("the first incarnation's task queued", () => lastTask(jsm, runId));
    await earlier.close();
    await cancelled;
    // The run is over (as a failed run is) and its task is still on the queue, as on a copy of the
    // stream that kept it.
    const record = await recordRunOver(nats.nc, runId, "over");
    assert.ok(record.lastTaskSeq >= stale.seq);

    // The run is resumed from its checkpoint (same run id): the task still queued is not its own.
    const lines: { msg: string; [k: string]: unknown }[] = [];
    const resumed = await coordinator(set, config, nats.nc, models, runId, [first.tileId, second.tileId]);
    const registry = new Registry();
    const w = await oneTaskWorker(config, nats.nc, models, fx.store, {
      registry,
      logger: testLogger(lines),
    });
    const events: BatchTaskEvent[] = [];
    w.worker.on((e) => void events.push(e));
    try {
      const outcomes = await Promise.all([resumed.process(first), resumed.process(second)]);
      for (const o of outcomes) assert.ok(o.ok, "every tile of the resumed run is classified");
      await waitFor("the stale task dropped", () => events.some((e) => e.type === "task-dropped"));
      const dropped = events.filter((e) => e.type === "task-dropped");
      assert.deepEqual(
        dropped.map((e) => [e.seq, e.runId, e.tileIds]),
        [[stale.seq, runId, [first.tileId]]],
        "the task stored before the record was dropped, by its sequence",
      );
      const done = events.filter((e) => e.type === "task-done").map((e) => e.tileId);
      assert.deepEqual(done.sort(), [first.tileId, second.tileId].sort(), "each tile classified once");
      const counted = (await w.worker.metrics.dropped.get()).values;
      assert.deepEqual(
        counted.map((v) => [v.labels["reason"], v.value]),
        [["run-over", 1]],
        "lanemap_batch_tasks_dropped_total{reason=run-over} is 1",
      );
      const line = lines.find((l) => l.msg.startsWith("batch task of a run that is over dropped"));
      assert.ok(line, "the drop is one info line");
      assert.equal(line["seq"], stale.seq);
      assert.equal(line["lastTaskSeq"], record.lastTaskSeq);
      assert.equal(resumed.duplicates, 0, "no tile's result came twice");
      const subject = batchResultSubject(runId);
      const results = (await jsm.streams.info(BATCH_RESULT_STREAM, { subjects_filter: subject })).state
        .subjects?.[subject];
      assert.equal(results, 2, "two results in the results stream: none for the dropped task");
      // Acknowledged at once (the last classified task waits for its slot's next pull instead).
      await waitFor("the dropped task off the queue", async () => {
        const m = await jsm.streams.getMessage(BATCH_TASK_STREAM, { seq: stale.seq }).catch(() => null);
        return m === null;
      });
    } finally {
      await resumed.close({ purge: true });
      await w.stop();
    }
  });
});
