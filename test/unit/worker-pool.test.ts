/**
 * The house WorkerPool against real worker threads (test/helpers/pool-worker.ts) that answer, hang,
 * crash, exit and throw: results and errors come back typed, a deadline or an abort terminates and
 * replaces the worker, a crash fails only its own job, a worker that cannot start fails what waits,
 * and close rejects what is queued.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  DeadlineError,
  PoolClosedError,
  TileInvalidError,
  WorkerCrashError,
  WorkerPool,
  WorkerStartError,
  type WorkerPoolOptions,
} from "../../shared/index.js";
import type { PoolTestJob, PoolTestResult, PoolTestWorkerData } from "../helpers/pool-worker.js";

const entry = new URL("../helpers/pool-worker.ts", import.meta.url);

const pools: WorkerPool<PoolTestJob, PoolTestResult>[] = [];
after(() => Promise.all(pools.map((p) => p.close())));

function pool(
  options: Partial<WorkerPoolOptions<PoolTestJob>> & { workerData?: PoolTestWorkerData } = {},
): WorkerPool<PoolTestJob, PoolTestResult> {
  const p = new WorkerPool<PoolTestJob, PoolTestResult>({
    entry,
    name: "test",
    size: 1,
    timeoutMs: 10_000,
    ...options,
  });
  pools.push(p);
  return p;
}

async function echo(p: WorkerPool<PoolTestJob, PoolTestResult>, value: string): Promise<number> {
  const r = await p.run({ kind: "echo", value });
  assert.deepEqual([r.kind, r.kind === "echo" && r.value], ["echo", value]);
  return (r as { threadId: number }).threadId;
}

describe("WorkerPool", () => {
  test("a job's result comes back from a worker thread, which is started lazily and reused", async () => {
    const p = pool();
    assert.equal(p.workerCount, 0, "no worker before the first job");
    const first = await echo(p, "a");
    assert.equal(await echo(p, "b"), first, "the same thread runs the next job");
    assert.equal(p.workerCount, 1);
    assert.equal(p.replaced, 0);
  });

  test("no more jobs run at once than the pool has workers; the rest wait in order", async () => {
    const p = pool({ size: 2 });
    const order: string[] = [];
    const jobs = ["1", "2", "3", "4"].map((v) => p.run({ kind: "sleep", ms: 150 }).then(() => order.push(v)));
    await Promise.all(jobs);
    assert.equal(p.workerCount, 2, "never more threads than the size");
    assert.deepEqual(order.slice(0, 2).sort(), ["1", "2"], "the first two ran first");
  });

  test("a queued job of a higher priority runs before queued jobs of a lower one, FIFO within each", async () => {
    const p = pool({ size: 1 });
    await p.warm();
    const order: string[] = [];
    const run = (v: string, priority: number) =>
      p.run({ kind: "sleep", ms: 30 }, { priority }).then(() => order.push(v));
    // The first batch job takes the only worker; the rest queue behind it.
    const jobs = [run("b1", 0), run("b2", 0), run("b3", 0), run("live1", 1), run("live2", 1)];
    await Promise.all(jobs);
    assert.deepEqual(order, ["b1", "live1", "live2", "b2", "b3"]);
  });

  test("warm starts every worker and resolves once all are ready", async () => {
    const p = pool({ size: 3 });
    await p.warm();
    assert.equal(p.workerCount, 3);
    const threads = await Promise.all(["x", "y", "z"].map((v) => echo(p, v)));
    assert.equal(new Set(threads).size, 3, "three ready workers take three jobs at once");
  });

  test("typed arrays listed for transfer move to the worker and back instead of being copied", async () => {
    const p = pool();
    const samples = new Float64Array([1, 2, 3]);
    const r = await p.run({ kind: "double", samples }, { transfer: [samples.buffer] });
    assert.equal(samples.byteLength, 0, "the caller's buffer was detached by the transfer");
    assert.ok(r.kind === "double");
    assert.deepEqual(Array.from(r.samples), [2, 4, 6]);
    assert.equal(r.received, 3);
  });

  test("an error thrown by the job comes back as the same named class with its code, and the worker stays", async () => {
    const p = pool();
    const thread = await echo(p, "before");
    await assert.rejects(p.run({ kind: "throw", message: "band 7 is missing" }), (err: unknown) => {
      assert.ok(err instanceof TileInvalidError, `got ${String(err)}`);
      assert.equal(err.code, "TILE_INVALID");
      assert.equal(err.message, "band 7 is missing");
      return true;
    });
    assert.equal(await echo(p, "after"), thread, "a failing job does not cost its worker");
    assert.equal(p.replaced, 0);
  });

  test("a job that hangs past its deadline rejects with DeadlineError; its worker is terminated and replaced", async () => {
    const p = pool({ timeoutMs: 300 });
    const thread = await echo(p, "before");
    await assert.rejects(p.run({ kind: "hang" }), (err: unknown) => {
      assert.ok(err instanceof DeadlineError, `got ${String(err)}`);
      assert.match(err.message, /within 300 ms/);
      return true;
    });
    assert.equal(p.replaced, 1);
    assert.notEqual(await echo(p, "after"), thread, "a fresh thread runs the next job");
    assert.equal(p.workerCount, 1);
  });

  test("a job's own deadline overrides the pool's, and the deadline does not count the worker's start-up", async () => {
    const p = pool({ timeoutMs: 60_000 });
    // The first job waits for a thread to start (hundreds of ms here) and still has its 1 s.
    assert.equal((await p.run({ kind: "sleep", ms: 50 }, { timeoutMs: 1000 })).kind, "echo");
    await assert.rejects(p.run({ kind: "sleep", ms: 5000 }, { timeoutMs: 100 }), DeadlineError);
    await assert.rejects(p.run({ kind: "echo", value: "x" }, { timeoutMs: 0 }), RangeError);
  });

  test("a new worker runs the warm-up jobs of the moment before it takes a queued job, outside that job's deadline", async () => {
    let model = "v1";
    const p = pool({ timeoutMs: 300, warmUp: () => [{ kind: "remember", value: model }] });
    const first = await p.run({ kind: "echo", value: "a" });
    assert.ok(first.kind === "echo");
    assert.deepEqual(first.remembered, ["v1"]);
    await assert.rejects(p.run({ kind: "hang" }), DeadlineError);
    model = "v2";
    const second = await p.run({ kind: "echo", value: "b" });
    assert.ok(second.kind === "echo");
    assert.notEqual(second.threadId, first.threadId);
    assert.deepEqual(second.remembered, ["v2"], "the replacement was brought up to date");
  });

  test("a worker that passes the deadline on a warm-up job has failed to start", async () => {
    const p = pool({ timeoutMs: 300, warmUp: () => [{ kind: "hang" }] });
    await assert.rejects(p.run({ kind: "echo", value: "x" }), (err: unknown) => {
      assert.ok(err instanceof WorkerStartError, `got ${String(err)}`);
      assert.match(err.message, /warm-up did not finish within 300 ms/);
      return true;
    });
    assert.equal(p.workerCount, 0);
  });

  test("a worker that crashes fails only its job with WorkerCrashError, and is replaced", async () => {
    const p = pool();
    const thread = await echo(p, "before");
    await assert.rejects(p.run({ kind: "crash", message: "boom in the worker" }), (err: unknown) => {
      assert.ok(err instanceof WorkerCrashError, `got ${String(err)}`);
      assert.equal(err.code, "WORKER_CRASHED");
      assert.match(err.message, /boom in the worker/);
      return true;
    });
    assert.notEqual(await echo(p, "after"), thread);
    assert.equal(p.replaced, 1);
  });

  test("a worker that exits mid-job fails that job with WorkerCrashError naming the exit code", async () => {
    const p = pool();
    await assert.rejects(p.run({ kind: "exit", code: 3 }), (err: unknown) => {
      assert.ok(err instanceof WorkerCrashError, `got ${String(err)}`);
      assert.match(err.message, /exited with code 3/);
      return true;
    });
    await echo(p, "after");
  });

  test("an aborted job rejects with the signal's reason: queued ones are dropped, a running one's worker is replaced", async () => {
    const p = pool();
    const thread = await echo(p, "before");
    const running = new AbortController();
    const queued = new AbortController();
    const first = assert.rejects(p.run({ kind: "hang" }, { signal: running.signal }), { name: "AbortError" });
    const second = p.run({ kind: "echo", value: "never" }, { signal: queued.signal });
    queued.abort(new Error("not needed any more"));
    await assert.rejects(second, /not needed any more/);
    await new Promise((r) => setTimeout(r, 100));
    running.abort();
    await first;
    assert.equal(p.replaced, 1);
    assert.notEqual(await echo(p, "after"), thread);
    await assert.rejects(p.run({ kind: "echo", value: "x" }, { signal: AbortSignal.abort() }), {
      name: "AbortError",
    });
  });

  test("a worker whose setup throws fails warm and waiting jobs with WorkerStartError, never respawning in a loop", async () => {
    const p = pool({ workerData: { setup: "throw" } });
    await assert.rejects(p.warm(), (err: unknown) => {
      assert.ok(err instanceof WorkerStartError, `got ${String(err)}`);
      assert.equal(err.code, "WORKER_START");
      assert.match(err.message, /setup refused: no model here/);
      assert.ok(err.cause instanceof TileInvalidError, "the setup's own error is the cause");
      return true;
    });
    assert.equal(p.workerCount, 0);
    await assert.rejects(p.run({ kind: "echo", value: "x" }), WorkerStartError);
    assert.equal(p.workerCount, 0, "the failed worker is not replaced");
  });

  test("a worker that exits before it is ready fails its waiting jobs with WorkerStartError", async () => {
    const p = pool({ workerData: { setup: "exit" } });
    await assert.rejects(p.run({ kind: "echo", value: "x" }), (err: unknown) => {
      assert.ok(err instanceof WorkerStartError, `got ${String(err)}`);
      assert.match(err.message, /exited with code 7/);
      return true;
    });
  });

  test("close rejects running and queued jobs and every later one with PoolClosedError", async () => {
    const p = pool();
    await p.warm();
    const running = assert.rejects(p.run({ kind: "hang" }), PoolClosedError);
    const queued = assert.rejects(p.run({ kind: "echo", value: "never" }), PoolClosedError);
    await new Promise((r) => setTimeout(r, 50));
    await p.close();
    await running;
    await queued;
    await assert.rejects(p.run({ kind: "echo", value: "late" }), { code: "POOL_CLOSED" });
    await assert.rejects(p.warm(), PoolClosedError);
    assert.equal(p.workerCount, 0);
    assert.ok(p.closed);
    await p.close();
  });

  test("a bad size or deadline is refused when the pool is made", () => {
    assert.throws(() => pool({ size: 0 }), RangeError);
    assert.throws(() => pool({ size: 1.5 }), RangeError);
    assert.throws(() => pool({ timeoutMs: -1 }), RangeError);
  });
});
