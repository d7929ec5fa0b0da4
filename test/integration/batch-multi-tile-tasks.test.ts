/**
 * Tasks of several small tiles on the batch work queue (issue 14: the distribution's cost per task
 * at 128²): each tile of a task still has its own result, so a task that goes back to the queue
 * with some of its tiles done is as idempotent as a task of one tile, and the class rasters equal
 * the in-process executor's byte for byte; a resumed coordinator does not publish again the tiles of
 * its earlier incarnation's tasks still queued, however it packs the rest. Real nats-server, the
 * real task worker and tile threads, the real files archive.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { batchQueueSettings, openTileExecutor, type BatchTaskEvent } from "../../batch/index.js";
import { encodeResult, encodeTask } from "../../batch/task-wire.js";
import { openModelRegistry } from "../../infra/platform/models.js";
import type { ArchiveStore } from "../../shared/adapters/archive/index.js";
import {
  BATCH_HEADERS,
  BATCH_TASK_STREAM,
  batchResultSubject,
  batchTaskSubject,
  ensureBatchQueue,
  parseAckSubject,
} from "../../shared/adapters/nats/index.js";
import { LanemapError, type CatalogueEntry, type Config } from "../../shared/index.js";
import { DelegatingArchive } from "../helpers/archive-entries.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import {
  catalogued,
  coordinator,
  makeSampleSet,
  oneTaskWorker,
  testLogger,
  type SampleSet,
} from "./batch-fixture.js";

/** The files archive, except that the first read of one object fails as a broker's would (STORAGE). */
class FailsOnceFor extends DelegatingArchive {
  failed = 0;
  constructor(
    store: ArchiveStore,
    private readonly contentHash: string,
  ) {
    super(store);
  }
  override async readObject(hash: string): Promise<Uint8Array> {
    if (hash === this.contentHash && this.failed++ === 0)
      throw new LanemapError("STORAGE", "object read timed out (a leader election)");
    return this.store.readObject(hash);
  }
}

/** The class raster of every entry, by tile id, from the in-process (threads) executor. */
async function inProcessRasters(
  config: Config,
  modelPath: string,
  entries: readonly CatalogueEntry[],
): Promise<Map<string, Uint8Array>> {
  const ex = await openTileExecutor({
    kind: "threads",
    config,
    logger: testLogger(),
    modelPath,
    size: 1,
    tileDelayMs: 0,
    runId: "reference",
    tileIds: new Set(),
  });
  try {
    const out = new Map<string, Uint8Array>();
    for (const e of entries) {
      const o = await ex.process(e);
      assert.ok(o.ok, `the in-process executor classifies ${e.tileId}`);
      out.set(e.tileId, o.raster);
    }
    return out;
  } finally {
    await ex.close();
  }
}

describe("tasks of several tiles on the batch work queue", { skip: natsMissing() }, () => {
  let set: SampleSet;
  before(async () => {
    set = await makeSampleSet({ width: 4, height: 2, tileSize: 64, seed: 11 });
  });
  after(() => set?.dispose());

  test("a task whose tile fails transiently goes back with its other tiles' results out: every tile classified, the others' second results are duplicates, the rasters equal the in-process executor's", async () => {
    await using nats = await natsFixture();
    const { fx, config, entries } = await catalogued(set, "flaky", nats.server.url);
    const reference = await inProcessRasters(config, set.modelPath, entries);
    const flaky = entries[1]!;
    const archive = new FailsOnceFor(fx.store, flaky.contentHash);
    const models = await openModelRegistry(config, nats.nc);
    const w = await oneTaskWorker(config, nats.nc, models, archive);
    const done: Extract<BatchTaskEvent, { type: "task-done" }>[] = [];
    w.worker.on((e) => void (e.type === "task-done" && done.push(e)));
    const executor = await coordinator(
      set,
      config,
      nats.nc,
      models,
      "20260101T000000Z-multi1",
      entries.map((e) => e.tileId),
    );
    try {
      // Asked for in one tick, as the runner asks for a window: two tasks of four 64² tiles.
      const outcomes = await Promise.all(entries.map((e) => executor.process(e)));
      for (const [i, o] of outcomes.entries()) {
        const { tileId } = entries[i]!;
        assert.ok(o.ok, `${tileId} is classified`);
        assert.ok(
          Buffer.from(o.raster).equals(reference.get(tileId)!),
          `class raster of ${tileId} equals the in-process one`,
        );
      }
      assert.equal(archive.failed, 2, "the flaky tile was read twice: its failure, then its redelivery");
      // The flaky tile's task (the first four) went back once; its three other tiles were classified
      // again on the redelivery, and the coordinator kept their first results.
      await new Promise((r) => setTimeout(r, 500)); // the redelivery's last results reach the coordinator
      const times = (id: string) => done.filter((d) => d.tileId === id).length;
      const firstTask = entries.slice(0, 4).map((e) => e.tileId);
      assert.deepEqual(
        firstTask.map(times),
        firstTask.map((id) => (id === flaky.tileId ? 1 : 2)),
        "the first task's tiles: the flaky one classified once (on the redelivery), the others twice",
      );
      assert.deepEqual(
        entries.slice(4).map((e) => times(e.tileId)),
        [1, 1, 1, 1],
        "the second task's tiles once each",
      );
      assert.equal(executor.duplicates, 3, "the others' second results are duplicates");
      assert.equal(executor.redelivered, 1, "only the flaky tile's taken result came from a redelivery");
    } finally {
      await executor.close({ purge: true });
      await w.stop();
    }
  });

  test("a worker asks for its next task while the last tile of a task of several runs, and one that stops then hands that task back at once, saying so in one info line and its handed-back counter: no task held after its stop, and another worker classifies it", async () => {
    await using nats = await natsFixture();
    const { fx, config, entries } = await catalogued(set, "prefetch", nats.server.url);
    const models = await openModelRegistry(config, nats.nc);
    // Every answer a worker sends for a task (its ack subject names the task's stream sequence).
    const answers: { seq: number; verb: string }[] = [];
    const sub = nats.nc.subscribe(`$JS.ACK.${BATCH_TASK_STREAM}.>`, {
      callback: (_err, m) =>
        void answers.push({
          seq: parseAckSubject(m.subject)?.streamSequence ?? 0,
          verb: new TextDecoder().decode(m.data).split(" ")[0]!,
        }),
    });
    const logLines: { msg: string; [k: string]: unknown }[] = [];
    const registry = new Registry();
    const a = await oneTaskWorker(config, nats.nc, models, fx.store, {
      name: "a",
      logger: testLogger(logLines),
      registry,
    });
    const byA: string[] = [];
    let stopped: Promise<void> | undefined;
    a.worker.on((e) => {
      if (e.type !== "task-done") return;
      byA.push(e.tileId);
      // The first task's third result is out: its fourth tile is left, so the next task was asked
      // for (before that result's publish, on the same connection, so it has arrived by the end of
      // the task). Stopping now: the task finishes, the one pulled early must go back.
      if (byA.length === 3) stopped = a.stop();
    });
    const executor = await coordinator(
      set,
      config,
      nats.nc,
      models,
      "20260101T000000Z-multi4",
      entries.map((e) => e.tileId),
    );
    let b: Awaited<ReturnType<typeof oneTaskWorker>> | undefined;
    try {
      // Two tasks of four 64² tiles.
      const outcomes = Promise.all(entries.map((e) => executor.process(e)));
      while (!stopped) await new Promise((r) => setTimeout(r, 20));
      await stopped;
      await nats.nc.flush(); // the answers the worker sent are in
      assert.deepEqual(
        byA,
        entries.slice(0, 4).map((e) => e.tileId),
        "the stopped worker classified its first task only",
      );
      assert.deepEqual(
        answers.filter((a) => a.seq === 2 && a.verb !== "+WPI").map((a) => a.verb),
        ["-NAK"],
        "the second task, pulled while the first one's last tile ran, went back at once at the stop",
      );
      assert.deepEqual(
        logLines
          .filter((l) => l.msg === "batch task handed back to the queue")
          .map(({ seq, runId, tiles, reason, level }) => ({ seq, runId, tiles, reason, level })),
        [
          {
            seq: 2,
            runId: "20260101T000000Z-multi4",
            tiles: entries.slice(4).map((e) => e.tileId),
            reason: "stopping",
            level: 30, // info
          },
        ],
        "one info line names the task handed back, its run, its tiles and why",
      );
      const exposition = await registry.metrics();
      assert.match(
        exposition,
        /^lanemap_batch_tasks_handed_back_total\{reason="stopping"\} 1$/m,
        "the worker's metrics count the task handed back at its stop",
      );
      assert.doesNotMatch(
        exposition,
        /^lanemap_batch_tasks_handed_back_total\{reason="(deadline|retry)"\} [1-9]/m,
        "and nothing else handed back",
      );
      b = await oneTaskWorker(config, nats.nc, models, fx.store, { name: "b" });
      for (const [i, o] of (await outcomes).entries()) assert.ok(o.ok, `${entries[i]!.tileId} is classified`);
      assert.equal(
        executor.redelivered,
        4,
        "the second task's tiles came from its second delivery: the first was the early pull",
      );
      assert.equal(executor.duplicates, 0);
    } finally {
      await executor.close({ purge: true });
      await b?.stop();
      await a.stop();
      sub.unsubscribe();
    }
  });

  test("a resumed coordinator does not publish again the tiles of its earlier incarnation's queued tasks, however it packs the rest", async () => {
    await using nats = await natsFixture();
    const { fx, config, entries } = await catalogued(set, "resume", nats.server.url);
    const reference = await inProcessRasters(config, set.modelPath, entries);
    const models = await openModelRegistry(config, nats.nc);
    await models.put(set.model);
    const runId = "20260101T000000Z-multi2";
    const subject = batchTaskSubject(runId);
    // The earlier incarnation's task still queued: tiles 2-5, under its generation.
    const queued = entries.slice(1, 5);
    const ids = queued.map((e) => e.tileId);
    const h = natsHeaders();
    h.set(BATCH_HEADERS.runId, runId);
    h.set(BATCH_HEADERS.tileId, ids.join(","));
    h.set(BATCH_HEADERS.modelVersion, set.model.version);
    await ensureBatchQueue(nats.nc, await jetstreamManager(nats.nc), batchQueueSettings(config));
    await jetstream(nats.nc).publish(
      subject,
      encodeTask({ runId, modelVersion: set.model.version, maxPixels: config.maxPixels, entries: queued }),
      { msgID: `${runId}:${ids.join(",")}:1700000000000`, headers: h },
    );
    const executor = await coordinator(
      set,
      config,
      nats.nc,
      models,
      runId,
      entries.slice(0, 6).map((e) => e.tileId),
    );
    const done: string[] = [];
    let w: Awaited<ReturnType<typeof oneTaskWorker>> | undefined;
    try {
      // Tiles 1-6 asked for at once: packed afresh they would make tasks of other message ids.
      const outcomes = Promise.all(entries.slice(0, 6).map((e) => executor.process(e)));
      await new Promise((r) => setTimeout(r, 300)); // the tasks are published
      const jsm = await jetstreamManager(nats.nc);
      const info = await jsm.streams.info(BATCH_TASK_STREAM, { subjects_filter: subject });
      assert.equal(
        info.state.subjects?.[subject],
        2,
        "one new task (tiles 1 and 6) beside the queued one (tiles 2-5)",
      );
      w = await oneTaskWorker(config, nats.nc, models, fx.store);
      w.worker.on((e) => void (e.type === "task-done" && done.push(e.tileId)));
      for (const [i, o] of (await outcomes).entries()) {
        const { tileId } = entries[i]!;
        assert.ok(o.ok, `${tileId} is classified`);
        assert.ok(
          Buffer.from(o.raster).equals(reference.get(tileId)!),
          `class raster of ${tileId} equals the in-process one`,
        );
      }
      assert.deepEqual(
        [...done].sort(),
        entries.slice(0, 6).map((e) => e.tileId),
        "every tile classified exactly once",
      );
      assert.equal(executor.duplicates, 0);
    } finally {
      await executor.close({ purge: true });
      await w?.stop();
    }
  });

  test("a resumed coordinator does not inherit its earlier incarnation's DEADLINE failure of a tile: the tile is classified again", async () => {
    await using nats = await natsFixture();
    const { fx, config, entries } = await catalogued(set, "resume-deadline", nats.server.url);
    const tile = entries[0]!;
    const models = await openModelRegistry(config, nats.nc);
    await models.put(set.model);
    const runId = "20260101T000000Z-multi3";
    await ensureBatchQueue(nats.nc, await jetstreamManager(nats.nc), batchQueueSettings(config));
    // The earlier incarnation's result: the tile missed its deadline (frozen workers) on both tries.
    const head = {
      runId,
      tileId: tile.tileId,
      modelVersion: set.model.version,
      worker: "w0",
      deliveries: 2,
      outcome: {
        ok: false as const,
        code: "DEADLINE" as const,
        reason: "the tile job did not finish within 100 ms",
      },
    };
    await jetstream(nats.nc).publish(batchResultSubject(runId), encodeResult(head, new Uint8Array(0)));
    await new Promise((r) => setTimeout(r, 20)); // stored before this incarnation starts
    const executor = await coordinator(set, config, nats.nc, models, runId, [tile.tileId]);
    const w = await oneTaskWorker(config, nats.nc, models, fx.store);
    try {
      const o = await executor.process(tile);
      assert.ok(o.ok, `the tile is classified, not failed again (${o.ok ? "" : `${o.code}: ${o.reason}`})`);
    } finally {
      await executor.close({ purge: true });
      await w.stop();
    }
  });
});
