/**
 * Tasks the broker lost are published again (issue 14, F-B). After rolling kills and replica repairs
 * a nats-server 2.9 replica of LANEMAP_BATCH_TASKS reset to a shorter history and twelve tasks it had
 * acknowledged at publish were gone: the run waited with nothing queued and failed BATCH_STALLED
 * ("0 tasks held ... 0 waiting"), and only a rerun finished it. Here the run's tasks are removed
 * behind the coordinator's back while no worker runs, as the reset removed them; a worker started
 * then finishes the run, every tile classified once. Real nats-server, the real task worker and
 * tile threads, the real files archive.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import type { BatchTaskEvent } from "../../batch/index.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import { BATCH_TASK_STREAM, batchTaskSubject } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  catalogued,
  coordinator,
  makeSampleSet,
  oneTaskWorker,
  testLogger,
  type SampleSet,
} from "./batch-fixture.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 4, height: 2, tileSize: 64, seed: 5 });
});
after(() => set?.dispose());

test(
  "a run whose queued tasks the broker lost publishes them again: a worker started later classifies every tile once, and the run does not stall",
  { skip: natsMissing(), timeout: 120_000 },
  async () => {
    await using nats = await natsFixture();
    // The old coordinator fails this run 8 s after its tasks are gone.
    const { fx, config, entries } = await catalogued(set, "lost", nats.server.url, {
      LANEMAP_BATCH_STALL_S: "8",
    });
    const models = await openModelRegistry(config, nats.nc);
    const lines: { msg: string; [k: string]: unknown }[] = [];
    const runId = "20260101T000000Z-lost1";
    const subject = batchTaskSubject(runId);
    const executor = await coordinator(
      set,
      config,
      nats.nc,
      models,
      runId,
      entries.map((e) => e.tileId),
      testLogger(lines),
    );
    let w: Awaited<ReturnType<typeof oneTaskWorker>> | undefined;
    try {
      // Asked for in one tick, as the runner asks for its window: two tasks of four tiles.
      const outcomes = Promise.all(entries.map((e) => executor.process(e)));
      outcomes.catch(() => undefined); // awaited below
      const jsm = await jetstreamManager(nats.nc);
      const queued = async () =>
        (await jsm.streams.info(BATCH_TASK_STREAM, { subjects_filter: subject })).state.subjects?.[subject] ??
        0;
      for (let i = 0; i < 100 && (await queued()) < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await queued(), 2, "the run's two tasks were acknowledged at publish");
      // The broker loses them (what the replica reset did), no worker has taken any.
      const { purged } = await jsm.streams.purge(BATCH_TASK_STREAM, { filter: subject });
      assert.equal(purged, 2);

      const done: string[] = [];
      w = await oneTaskWorker(config, nats.nc, models, fx.store);
      w.worker.on((e: BatchTaskEvent) => void (e.type === "task-done" && done.push(e.tileId)));

      for (const [i, o] of (await outcomes).entries())
        assert.ok(o.ok, `${entries[i]!.tileId} is classified (${o.ok ? "" : `${o.code}: ${o.reason}`})`);
      assert.deepEqual(
        [...done].sort(),
        entries.map((e) => e.tileId),
        "every tile classified exactly once",
      );
      assert.equal(executor.duplicates, 0, "no tile answered twice");
      assert.equal(executor.republished, entries.length, "the lost tiles were published again");
      const warned = lines.filter((l) => l.msg.startsWith("batch tasks lost by the broker"));
      assert.equal(warned.length, 1, "one warning says so");
      assert.equal(warned[0]!["level"], 40, "at warn");
      assert.deepEqual(
        [
          warned[0]!["lostTiles"],
          warned[0]!["publishedAgain"],
          warned[0]!["tasksOwed"],
          warned[0]!["tasksInStream"],
        ],
        [entries.length, entries.length, 2, 0],
        "with its counts",
      );
    } finally {
      await executor.close({ purge: true });
      await w?.stop();
    }
  },
);

test(
  "a slow run whose tasks are all on the queue publishes nothing again, however often the coordinator looks",
  { skip: natsMissing(), timeout: 120_000 },
  async () => {
    await using nats = await natsFixture();
    // A look every 2 s (half the stall bound) over a run of about 6 s.
    const { fx, config, entries } = await catalogued(set, "slow", nats.server.url, {
      LANEMAP_BATCH_STALL_S: "4",
    });
    const models = await openModelRegistry(config, nats.nc);
    const lines: { msg: string; [k: string]: unknown }[] = [];
    const executor = await coordinator(
      set,
      config,
      nats.nc,
      models,
      "20260101T000000Z-slow1",
      entries.map((e) => e.tileId),
      testLogger(lines),
    );
    const w = await oneTaskWorker(config, nats.nc, models, fx.store, { tileDelayMs: 700 });
    const done: string[] = [];
    w.worker.on((e: BatchTaskEvent) => void (e.type === "task-done" && done.push(e.tileId)));
    try {
      const outcomes = await Promise.all(entries.map((e) => executor.process(e)));
      assert.ok(
        outcomes.every((o) => o.ok),
        "every tile is classified",
      );
      assert.equal(done.length, entries.length, "each once");
      assert.ok(
        lines.some((l) => l.msg === "looked for lost batch tasks: none"),
        "the coordinator looked while tiles were owed",
      );
      assert.equal(executor.republished, 0, "nothing was published again");
      assert.equal(executor.duplicates, 0);
      assert.deepEqual(
        lines.filter((l) => l.msg.startsWith("batch tasks lost")),
        [],
      );
    } finally {
      await executor.close({ purge: true });
      await w.stop();
    }
  },
);
