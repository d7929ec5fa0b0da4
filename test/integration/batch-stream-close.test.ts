/**
 * Ending a stream batch run is bounded (issue 14, F3): a resume whose run failed at once hung for
 * 10 minutes in the executor's close, so its error was never reported and the first SIGTERM was
 * ignored. Here the run's nats-server freezes (SIGSTOP) with a tile owed: close still returns within
 * CLOSE_WITHIN_MS, the tile owed is cancelled, and it says what it gave up. Real nats-server.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { CLOSE_WITHIN_MS, StreamTileExecutor } from "../../batch/stream-executor.js";
import { BATCH_TASK_STREAM, batchTaskSubject } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { makeDataDir, makeSampleSet, testLogger, type SampleSet } from "./batch-fixture.js";
import { waitFor } from "./speed-fixtures.js";

let set: SampleSet;
before(async () => {
  set = await makeSampleSet({ width: 2, height: 1, tileSize: 64, seed: 3 });
});
after(() => set?.dispose());

/**
 * A stream executor for run `runId` over a fresh data directory named `name` of the sample set (no
 * worker runs), with its catalogue entries and the log lines it wrote.
 */
async function startExecutor(
  nats: { nc: NatsConnection; server: { url: string } },
  name: string,
  runId: string,
  signal?: AbortSignal,
) {
  const d = await makeDataDir(set, name);
  const entries = [];
  for await (const e of d.store.entries()) entries.push(e);
  const lines: { msg: string; [k: string]: unknown }[] = [];
  const executor = await StreamTileExecutor.start({
    nc: nats.nc,
    config: d.config({ NATS_URL: nats.server.url, LANEMAP_BATCH_EXECUTOR: "stream" }),
    logger: testLogger(lines),
    runId,
    artifact: new Uint8Array(readFileSync(set.modelPath)),
    tileIds: new Set(entries.map((e) => e.tileId)),
    ...(signal ? { signal } : {}),
  });
  return { executor, entries, lines };
}

test(
  "a stream run's executor closes within its bound when its nats-server froze, cancelling the tiles owed",
  { skip: natsMissing(), timeout: 120_000 },
  async () => {
    await using nats = await natsFixture();
    const { executor, entries } = await startExecutor(nats, "close", "20240301T000000Z-close1");
    // No worker: the tile is owed when the server freezes.
    const owed = executor.process(entries[0]!);
    await new Promise((r) => setTimeout(r, 500));
    process.kill(nats.server.pid, "SIGSTOP");
    try {
      const t0 = performance.now();
      const closed = await Promise.race([
        executor.close({ purge: true }).then(() => "closed" as const),
        new Promise((r) => setTimeout(() => r("still closing"), CLOSE_WITHIN_MS + 20_000)),
      ]);
      const ms = performance.now() - t0;
      assert.equal(closed, "closed", "close returned");
      assert.ok(ms < CLOSE_WITHIN_MS + 3_000, `within its bound (${Math.round(ms)} ms)`);
      const o = await owed;
      assert.deepEqual([o.ok, !o.ok && o.code], [false, "CANCELLED"], "the tile owed was cancelled");
    } finally {
      process.kill(nats.server.pid, "SIGCONT");
    }
  },
);

test(
  "a run halted while tiles wait to be packed into tasks rejects each of their `process` calls with the reason, and nothing goes unhandled",
  { skip: natsMissing(), timeout: 60_000 },
  async () => {
    await using nats = await natsFixture();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const ac = new AbortController();
    const { executor, entries } = await startExecutor(nats, "halt", "20240301T000000Z-halt1", ac.signal);
    try {
      // Both tiles are asked for in one tick and no worker runs: the halt finds them owed, the
      // second perhaps not yet published (a task waits for more tiles while the window is busy).
      const calls = entries.map((e) => executor.process(e));
      ac.abort(new Error("interrupted"));
      const settled = await Promise.allSettled(calls);
      await new Promise((r) => setTimeout(r, 200)); // Node reports an unhandled rejection after a turn
      for (const s of settled) {
        assert.equal(s.status, "rejected", "a halted run's tile is not reported as an outcome");
        assert.match(String((s as PromiseRejectedResult).reason), /interrupted/);
      }
      assert.deepEqual(unhandled, [], "no rejection went unobserved");
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await executor.close({ purge: true });
    }
  },
);

test(
  "a run over removes its tasks still queued one message at a time, never with a purge of the task stream",
  { skip: natsMissing(), timeout: 60_000 },
  async () => {
    await using nats = await natsFixture();
    const runId = "20240301T000000Z-over1";
    const { executor, entries, lines } = await startExecutor(nats, "over", runId);
    // A filtered STREAM.PURGE lost a node's copy of a replicated stream on nats-server 2.9.10
    // (issue 14, nats-removals-node-kill.test.ts): a request on $JS.API.STREAM.PURGE.<stream>.
    const spy = await connect({ servers: nats.server.url, name: "purge-spy" });
    const purges: string[] = [];
    spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    await spy.flush();
    const subject = batchTaskSubject(runId);
    const jsm = await jetstreamManager(nats.nc);
    const queued = async () =>
      (await jsm.streams.info(BATCH_TASK_STREAM, { subjects_filter: subject })).state.subjects?.[subject] ??
      0;
    try {
      // No worker runs: the tasks stay queued until the run is over.
      const calls = entries.map((e) => executor.process(e));
      await waitFor("the run's tasks queued", async () => (await queued()) > 0);
      await executor.close({ purge: true });
      for (const o of await Promise.all(calls))
        assert.deepEqual([o.ok, !o.ok && o.code], [false, "CANCELLED"], "the tile owed was cancelled");
      assert.equal(await queued(), 0, "no task of the run is left on the queue");
      assert.ok(
        lines.some(
          (l) => l.msg === "the run is over: its tasks still queued were removed" && Number(l["purged"]) > 0,
        ),
        "the removal is logged with its count",
      );
      await spy.flush();
      assert.deepEqual(purges, [], "no purge request was sent");
    } finally {
      await spy.close();
      await executor.close();
    }
  },
);

test(
  "an executor stopped while its result consumer is still being made closes at once, without giving up on its reader",
  { skip: natsMissing(), timeout: 60_000 },
  async () => {
    await using nats = await natsFixture();
    const { executor, lines } = await startExecutor(nats, "early", "20240301T000000Z-early1");
    // `start` returns as the reader sends its consumer's creation: this close comes before the
    // consumer exists (a SIGTERM right after "batch tiles go to the work queue" — the first
    // SIGTERM then took CLOSE_WITHIN_MS, 10 s, to stop the coordinator).
    const t0 = performance.now();
    await executor.close();
    const ms = performance.now() - t0;
    assert.deepEqual(
      lines.filter((l) => /did not stop in time/.test(l.msg)).map((l) => l.msg),
      [],
      "the reader stopped by itself",
    );
    assert.ok(ms < CLOSE_WITHIN_MS / 2, `closed at once (${Math.round(ms)} ms)`);
  },
);

test(
  "a window of task publishes retrying while the nats-server is frozen waits on the run's signal without a MaxListenersExceededWarning",
  { skip: natsMissing(), timeout: 120_000 },
  async () => {
    // 16 tiles, one task each, all published at once: an operator watching a node die saw Node's
    // warning about more than 10 listeners on the run's signal (issue 14).
    const many = await makeSampleSet({ width: 4, height: 4, tileSize: 32, seed: 5 });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on("warning", onWarning);
    try {
      await using nats = await natsFixture();
      const d = await makeDataDir(many, "window");
      const entries = [];
      for await (const e of d.store.entries()) entries.push(e);
      const lines: { msg: string; [k: string]: unknown }[] = [];
      const ac = new AbortController();
      const executor = await StreamTileExecutor.start({
        nc: nats.nc,
        config: d.config({ NATS_URL: nats.server.url, LANEMAP_BATCH_EXECUTOR: "stream" }),
        logger: testLogger(lines),
        runId: "20240301T000000Z-window",
        artifact: new Uint8Array(readFileSync(many.modelPath)),
        tileIds: new Set(entries.map((e) => e.tileId)),
        window: 32,
        tilesPerTask: 1,
        signal: ac.signal,
      });
      process.kill(nats.server.pid, "SIGSTOP");
      try {
        const calls = entries.map((e) => executor.process(e).catch(() => undefined));
        await waitFor(
          "every task publish timed out and waits to retry",
          () => lines.filter((l) => /transient broker error/.test(l.msg)).length >= entries.length,
          60_000,
        );
        ac.abort(new Error("stopped"));
        await Promise.all(calls);
      } finally {
        process.kill(nats.server.pid, "SIGCONT");
      }
      await executor.close();
      await new Promise((r) => setImmediate(r)); // a warning is emitted on the next tick
      assert.deepEqual(
        warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
        [],
        "no listener warning",
      );
    } finally {
      process.off("warning", onWarning);
      many.dispose();
    }
  },
);
