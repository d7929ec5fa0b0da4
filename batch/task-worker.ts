/**
 * The worker side of the batch work queue (issue 14): pulls tasks from the shared durable consumer,
 * loads the model version each task names from the model registry (any machine reaches the NATS
 * one), has the tile's bytes read from the master archive, classifies it through the TilePool it is
 * given (in `lanemap worker`, the same pool and so the same code path as the speed lane), publishes
 * the result on `batch.result.<runId>` and only then acknowledges the task. While a tile waits or
 * runs, the task is kept alive with in-progress heartbeats, so ack_wait only ever fires for a worker
 * that is gone.
 *
 * One pull request per free slot (`concurrency`, the pool's size), each slot on one long-lived
 * subscription (shared/adapters/nats PullSlot, not a fetch per task): a busy worker never hoards
 * tasks an idle one could take, and live tiles, which the pool queues ahead of batch tiles, wait
 * at most for the batch tiles already running. A slot is free again as soon as its tile thread is: the result is
 * published while the slot already pulls its next task, so the thread does not idle through that
 * round trip (at most one result per slot is on its way at a time). A task is acknowledged once its
 * result is stored, with the slot's next pull (`+NXT`, one message instead of an ack and a pull): a
 * task stays unacknowledged, kept alive by its heartbeats, until its slot asks for more work or
 * stops — at least once, as before, and one broker message and one socket write fewer per task.
 *
 * A tile's own failure (a broken TIFF, over its pixel budget) is a result with its code and reason,
 * acknowledged like a success: the coordinator reports it, nobody retries it. A missed deadline on
 * the task's first delivery is handed back instead, for one more try on any worker
 * (deadline-retry.ts): it says more about the moment (a frozen or starved worker) than the tile.
 */
import { hostname } from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ArchiveStore } from "../shared/adapters/archive/index.js";
import {
  BATCH_TASK_CONSUMER,
  BATCH_TASK_STREAM,
  PullSlot,
  batchResultSubject,
  ensureBatchQueue,
  serverMaxPayload,
  type PulledMsg,
} from "../shared/adapters/nats/index.js";
import {
  LanemapError,
  PoolClosedError,
  WorkerStartError,
  describeError,
  errorCode,
  isPermanent,
  pullBackoff,
  tileDeadline,
  type AnnouncedTileSize,
  type Config,
  type ModelRegistry,
  type TileArchive,
  type TileBytes,
  type TilePool,
} from "../shared/index.js";
import { deadlineTriedAgain } from "./deadline-retry.js";
import { batchQueueSettings } from "./stream-executor.js";
import {
  decodeTask,
  encodeResult,
  type BatchTask,
  type ResultHead,
  type ResultOutcome,
} from "./task-wire.js";

/** What a task worker needs besides config. */
export interface BatchTaskWorkerDeps {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** The tile threads (shared with the speed lane in `lanemap worker`); not closed by `stop`. */
  readonly pool: TilePool;
  /** Tasks in flight in this process: one pull per free slot. */
  readonly concurrency: number;
  /** Where task models are loaded from. */
  readonly models: ModelRegistry;
  /** The master archive the tiles are read from. */
  readonly archive: TileArchive;
  /** Name in logs and results (default host:pid). */
  readonly name?: string;
  /** Test hook: each tile's thread sleeps this long first (a fixed per-tile cost). 0 in production. */
  readonly tileDelayMs?: number;
  /**
   * How long one task may take from delivery to its outcome (model load, archive read, classify),
   * in ms, whatever its tile's size; default {@link taskDeadlineMs} of each task's tile. Beyond it
   * the task is handed back (test hook).
   */
  readonly taskDeadlineMs?: number;
}

/** What a task worker reports per task, for logs and tests. */
export type BatchTaskEvent =
  | { readonly type: "task-done"; readonly runId: string; readonly tileId: string; readonly ok: boolean }
  | { readonly type: "task-error"; readonly reason: string };

/** A running task worker. */
export interface BatchTaskWorker {
  readonly name: string;
  /** Calls `fn` for every later event; returns the unsubscribe function. */
  on(fn: (e: BatchTaskEvent) => void): () => void;
  /** Stops pulling, lets the tasks in flight finish (result + ack), then stops. */
  stop(): Promise<void>;
}

/** A classified task: its outcome and, when it succeeded, its class raster. */
interface Classified {
  readonly outcome: ResultOutcome;
  readonly raster: Uint8Array;
}

/**
 * Where one task's time went, in ms, logged with its outcome: from the task's store in the stream
 * to its delivery here (queued), through the tile pool (classify: the wait for a thread, the read
 * of the tile's bytes, decode and classification), and the result's publish until the server's
 * acknowledgement (publish). What the coordinator sees beyond their sum is the network and its own
 * reading of the result.
 */
interface TaskTimings {
  readonly queuedMs: number;
  readonly classifyMs: number;
}

/** A duration in ms to a tenth, for logs. */
const tenths = (ms: number): number => Math.round(ms * 10) / 10;

/** How long a task left for redelivery waits before it is delivered again (ms). */
const TRANSIENT_RETRY_MS = 500;

/** The longest wait before a redelivery of a task left for it: the delay doubles per delivery (ms). */
const TRANSIENT_RETRY_MAX_MS = 8_000;

/** How long a slot's pull request waits in the server for a task, in ms. */
const PULL_EXPIRES_MS = 5_000;

/**
 * Beyond the tile's own deadline (`tileDeadline`, which the pool enforces), how long a task may
 * spend loading its model and reading its tile's bytes (ms): the adapters' retries of a leader
 * election fit in it.
 */
const TASK_IO_MARGIN_MS = 60_000;

/**
 * How long a task of tile `entry` may take before the worker hands it back (ms): the tile's own
 * deadline, scaled to its announced size, plus the I/O margin. Its heartbeats (`+WPI`) would
 * otherwise keep a task whose read hangs (a consumer on a dead node) in progress forever, and no
 * other worker would ever take it (issue 14, the operator's run 3).
 */
export function taskDeadlineMs(config: Config, entry: AnnouncedTileSize | null): number {
  return tileDeadline(config, entry).ms + TASK_IO_MARGIN_MS;
}

/** Room for the result's JSON head and headers in a message, beyond the raster. */
const HEAD_ROOM = 64 * 1024;

/**
 * Starts pulling batch tasks (creating the queue's streams and consumer when absent).
 * @throws StreamSetupError (NATS_SETUP) when the queue cannot be created or read.
 */
export async function startBatchTaskWorker(
  config: Config,
  deps: BatchTaskWorkerDeps,
): Promise<BatchTaskWorker> {
  const name = deps.name ?? `${hostname()}:${process.pid}`;
  const log = deps.logger.child({ worker: name, lane: "batch" });
  const { nc, pool } = deps;
  const settings = batchQueueSettings(config);
  const jsm = await jetstreamManager(nc);
  const { rasters } = await ensureBatchQueue(nc, jsm, settings);
  const js = jetstream(nc);
  const listeners = new Set<(e: BatchTaskEvent) => void>();
  const emit = (e: BatchTaskEvent) => {
    for (const fn of listeners) fn(e);
  };
  const maxInline = serverMaxPayload(nc) - HEAD_ROOM;
  const loading = new Map<string, Promise<void>>();

  /** Loads a model version into the pool once, however many tasks name it at once. */
  const ensureModel = async (version: string): Promise<void> => {
    if (pool.hasModel(version)) return;
    let p = loading.get(version);
    if (!p) {
      p = (async () => {
        await pool.loadModel(await deps.models.artifact(version), version);
        log.info({ model: version }, "batch model loaded");
      })().finally(() => loading.delete(version));
      loading.set(version, p);
    }
    await p;
  };

  const bytesOf = async (task: BatchTask): Promise<TileBytes> =>
    deps.archive instanceof ArchiveStore
      ? { kind: "archive", dataDir: deps.archive.paths.root }
      : { kind: "inline", bytes: await deps.archive.readObject(task.entry.contentHash) };

  /**
   * The task's outcome, or null when the pool is closing or the failure is transient (the task is
   * then left for a redelivery, to this or another worker).
   */
  const classify = async (task: BatchTask, lastDelivery: boolean): Promise<Classified | null> => {
    try {
      await ensureModel(task.modelVersion);
      const out = await pool.classify(
        {
          lane: "batch",
          source: task.entry,
          bytes: await bytesOf(task),
          maxPixels: task.maxPixels,
          ...(deps.tileDelayMs ? { delayMs: deps.tileDelayMs } : {}),
        },
        task.modelVersion,
        { deadline: tileDeadline(config, task.entry) },
      );
      return { outcome: { ok: true, result: out.result, k: out.k }, raster: out.raster };
    } catch (err) {
      if (err instanceof PoolClosedError || err instanceof WorkerStartError) {
        log.warn(
          { tileId: task.entry.tileId, err: describeError(err) },
          "tile threads unavailable; task left to another worker",
        );
        return null;
      }
      // Not the tile's own failure (e.g. STORAGE: the archive's object or the model unreadable while
      // the cluster elects a new leader): retried on a redelivery, as the speed lane retries it,
      // up to the consumer's max deliveries (then the coordinator records MAX_DELIVER). A catalogued
      // tile whose object is still missing on its last delivery is reported as OBJECT_MISSING, not
      // MAX_DELIVER: the coordinator then fails the run instead of publishing a view without it.
      if (lastDelivery && errorCode(err) === "OBJECT_MISSING")
        return {
          outcome: { ok: false, code: "OBJECT_MISSING", reason: describeError(err) },
          raster: new Uint8Array(0),
        };
      if (!isPermanent(err)) {
        log.warn(
          { tileId: task.entry.tileId, code: errorCode(err), err: describeError(err) },
          "transient failure; task left for redelivery",
        );
        return null;
      }
      // A DEADLINE's reason names the tile's deadline and its derivation (TilePool.classify).
      return {
        outcome: { ok: false, code: errorCode(err), reason: describeError(err) },
        raster: new Uint8Array(0),
      };
    }
  };

  /**
   * Publishes a classified tile's result, then hands its task to `stored`, which acknowledges it
   * with the slot's next pull. Never rejects: a result that cannot be published leaves the task
   * unacknowledged (`failed`), so it is delivered again after ack_wait.
   */
  const finish = async (
    m: PulledMsg,
    task: BatchTask,
    done: Classified,
    times: TaskTimings,
    stored: () => void,
    failed: () => void,
  ): Promise<void> => {
    const { tileId } = task.entry;
    try {
      const publishStart = performance.now();
      let { outcome, raster } = done;
      if (outcome.ok && raster.byteLength > maxInline) {
        const object = `${task.runId}.${tileId}`;
        await (rasters as ObjectStore).putBlob({ name: object }, raster);
        outcome = { ...outcome, rasterObject: object };
        raster = new Uint8Array(0);
      }
      const head: ResultHead = {
        runId: task.runId,
        tileId,
        modelVersion: task.modelVersion,
        worker: name,
        deliveries: m.info.deliveryCount,
        outcome,
      };
      await js.publish(batchResultSubject(task.runId), encodeResult(head, raster));
      stored();
      const publishMs = tenths(performance.now() - publishStart);
      if (outcome.ok)
        log.info(
          { runId: task.runId, tileId, deliveries: m.info.deliveryCount, ...times, publishMs },
          "batch tile classified",
        );
      else
        log.warn(
          {
            runId: task.runId,
            tileId,
            code: outcome.code,
            reason: outcome.reason,
            deliveries: m.info.deliveryCount,
          },
          "batch tile failed",
        );
      emit({ type: "task-done", runId: task.runId, tileId, ok: outcome.ok });
    } catch (err) {
      failed();
      const reason = describeError(err);
      log.warn({ tileId, err: reason }, "cannot publish a batch result; task left for redelivery");
      emit({ type: "task-error", reason });
    }
  };

  /**
   * Classifies one task and returns as soon as its tile thread is free again, with the publishing of
   * its result still under way (`published`): the slot pulls its next task meanwhile, so the thread
   * does not idle through the result's round trip to the server. `previous` is the slot's result
   * before this one, awaited before this one is published: a slot has at most one result on its way
   * while it classifies the next tile, and publishes them in order. `free` asks for the slot's next
   * task: called just before this result is published, in the same tick, so that the pull request
   * (carrying the previous task's ack) and the result go out in one socket write (on the paths that
   * publish nothing the slot asks itself). `stored(m, heartbeat)` takes the task once its result is
   * stored, to be acknowledged with the slot's next pull. Never rejects for a tile.
   */
  const handle = async (
    m: PulledMsg,
    previous: Promise<void>,
    free: () => void,
    stored: (m: PulledMsg, heartbeat: NodeJS.Timeout) => void,
  ): Promise<{ published: Promise<void> }> => {
    let task: BatchTask;
    try {
      task = decodeTask(m.data);
    } catch (err) {
      log.error({ err: describeError(err), seq: m.seq }, "unreadable batch task terminated");
      m.term(describeError(err));
      return { published: previous };
    }
    const heartbeat = setInterval(() => m.working(), Math.max(500, Math.floor(settings.ackWaitMs / 3)));
    const tileMs = tileDeadline(config, task.entry).ms;
    const deadlineMs = deps.taskDeadlineMs ?? taskDeadlineMs(config, task.entry);
    const queuedMs = Math.max(0, tenths(Date.now() - m.info.timestampNanos / 1e6));
    const classifyStart = performance.now();
    // Never rejects: a failure is an outcome or null; null too when the task outlives its deadline
    // (the hung read goes on in the background, its outcome unused).
    let deadline: NodeJS.Timeout | undefined;
    let stopGrace: NodeJS.Timeout | undefined;
    let removeOnStop = () => {};
    const done = await Promise.race([
      classify(task, m.info.deliveryCount >= settings.maxDeliver),
      new Promise<null>((resolve) => {
        deadline = setTimeout(() => {
          log.warn(
            { tileId: task.entry.tileId, deadlineMs: deadlineMs },
            "batch task outlived its deadline (a read that hangs?); handed back for redelivery",
          );
          resolve(null);
        }, deadlineMs);
      }),
      // A stop waits for a tile in flight as long as its own deadline, not for a read that hangs.
      new Promise<null>((resolve) => {
        const onStop = () => {
          stopGrace = setTimeout(() => resolve(null), tileMs);
        };
        if (stopping.signal.aborted) onStop();
        else stopping.signal.addEventListener("abort", onStop, { once: true });
        removeOnStop = () => stopping.signal.removeEventListener("abort", onStop);
      }),
    ]);
    clearTimeout(deadline);
    clearTimeout(stopGrace);
    removeOnStop();
    const classifyMs = tenths(performance.now() - classifyStart);
    const again =
      done !== null &&
      !done.outcome.ok &&
      deadlineTriedAgain(done.outcome.code, m.info.deliveryCount, settings.maxDeliver);
    if (again)
      log.warn(
        { tileId: task.entry.tileId, code: "DEADLINE", deliveries: m.info.deliveryCount, classifyMs },
        "batch tile missed its deadline (a frozen or starved worker?); handed back for one more try",
      );
    if (!done || again) {
      clearInterval(heartbeat);
      // A growing delay: a broker that just lost a node is not asked again at once, and a replica
      // that lost sight of an object has a few seconds to catch up or lose its leadership.
      m.nak(Math.min(TRANSIENT_RETRY_MAX_MS, TRANSIENT_RETRY_MS * 2 ** (m.info.deliveryCount - 1)));
      return { published: previous };
    }
    // The slot's result before this one has had this whole tile to be published; if it has not
    // been yet (the broker is slow), the slot waits here rather than pile up rasters.
    await previous;
    // nats.js flushes what one tick queued in one write (a microtask): the pull and the result.
    free();
    return {
      published: finish(
        m,
        task,
        done,
        { queuedMs, classifyMs },
        () => stored(m, heartbeat),
        () => clearInterval(heartbeat),
      ),
    };
  };

  const stopping = new AbortController();
  const slot = async (): Promise<void> => {
    let failures = 0;
    // The slot's last result still being published (see `handle`).
    let publishing: Promise<void> = Promise.resolve();
    // One subscription for the slot's life, one pull request per task it is free for (pull-slot.ts).
    const pulls = new PullSlot(nc, BATCH_TASK_STREAM, BATCH_TASK_CONSUMER);
    // The slot's last task whose result is stored: acknowledged with its next pull (`+NXT`), its
    // heartbeats going on until then (a slot waiting on an empty queue sends it when its pull
    // expires, within PULL_EXPIRES_MS; a stopping one at once).
    let unacked: { readonly m: PulledMsg; readonly heartbeat: NodeJS.Timeout } | undefined;
    const takeUnacked = (): PulledMsg | undefined => {
      const u = unacked;
      unacked = undefined;
      if (u) clearInterval(u.heartbeat);
      return u?.m;
    };
    const stored = (m: PulledMsg, heartbeat: NodeJS.Timeout) => {
      takeUnacked()?.ack(); // not expected: every pull in between took it
      unacked = { m, heartbeat };
    };
    const pull = () => {
      const ack = takeUnacked();
      return pulls.next({ expiresMs: PULL_EXPIRES_MS, signal: stopping.signal, ...(ack ? { ack } : {}) });
    };
    // The next task's pull, asked for by `handle` as soon as the tile thread is free.
    let asked: Promise<PulledMsg | null> | undefined;
    const ask = () => {
      asked = pull();
      asked.catch(() => undefined); // awaited below: only no "unhandled" report before that
    };
    try {
      while (!stopping.signal.aborted) {
        try {
          const next = asked ?? pull();
          asked = undefined;
          const m = await next;
          if (m) ({ published: publishing } = await handle(m, publishing, ask, stored));
          failures = 0;
        } catch (err) {
          if (stopping.signal.aborted) break;
          failures++;
          const reason = describeError(err);
          if (failures === 1 || failures % 20 === 0)
            log.warn({ err: reason, failures }, "pulling batch tasks failed; retrying");
          emit({ type: "task-error", reason });
          await pullBackoff(failures, stopping.signal);
        }
      }
      await publishing;
    } finally {
      takeUnacked()?.ack();
      pulls.close();
    }
  };
  if (!Number.isInteger(deps.concurrency) || deps.concurrency < 1)
    throw new LanemapError(
      "CONFIG",
      `batch task concurrency must be a positive integer, got ${deps.concurrency}`,
    );
  const slots = Array.from({ length: deps.concurrency }, slot);
  log.info({ concurrency: deps.concurrency }, "batch task worker started");

  let stopped: Promise<void> | undefined;
  return {
    name,
    on: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    stop: () =>
      (stopped ??= (async () => {
        stopping.abort();
        await Promise.all(slots);
        log.info("batch task worker stopped");
      })()),
  };
}
