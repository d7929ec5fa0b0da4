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
 * subscription (shared/adapters/nats PullSlot, not a fetch per task): a busy worker holds no task
 * an idle one could take beyond the one it works on (and, for its last small tile's time, the
 * next: below), and live tiles, which the pool queues ahead of batch tiles, wait
 * at most for the batch tiles already running. A slot is free again as soon as its tile thread is: the result is
 * published while the slot already pulls its next task, so the thread does not idle through that
 * round trip (at most one result per slot is on its way at a time); a task of several small tiles
 * asks for the next one while its last tile still runs, so the pull's round trip through the broker
 * overlaps that tile too (the task pulled waits in the slot, with heartbeats, and goes back at a
 * stop). A task is acknowledged once its
 * result is stored, with the slot's next pull (`+NXT`, one message instead of an ack and a pull): a
 * task stays unacknowledged, kept alive by its heartbeats, until its slot asks for more work or
 * stops — at least once, as before, and one broker message and one socket write fewer per task.
 *
 * A tile's own failure (a broken TIFF, over its pixel budget) is a result with its code and reason,
 * acknowledged like a success: the coordinator reports it, nobody retries it. A missed deadline on
 * the task's first delivery is handed back instead, for one more try on any worker
 * (deadline-retry.ts): it says more about the moment (a frozen or starved worker) than the tile.
 *
 * A task consumer deleted under the worker (`nats consumer rm`) is re-created at the next failed or
 * unanswered pull; a task stream deleted under it stops the worker (`ended` says why):
 * shared/adapters/nats/vanished-consumer.ts, the rule the speed lane follows too.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { ArchiveStore } from "../shared/adapters/archive/index.js";
import {
  BATCH_TASK_CONSUMER,
  BATCH_TASK_STREAM,
  PullSlot,
  RunRecordCache,
  storedBeforeRunOver,
  batchResultSubject,
  BATCH_RASTER_BUCKET,
  ensureBatchQueue,
  consumerRecovery,
  ensureBatchTaskConsumer,
  putObjectOnce,
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
  type CatalogueEntry,
  type Config,
  type ModelRegistry,
  type TileArchive,
  type TileBytes,
  type TilePool,
} from "../shared/index.js";
import { deadlineTriedAgain } from "./deadline-retry.js";
import { batchQueueSettings } from "./stream-executor.js";
import { createBatchTaskMetrics, type BatchTaskMetrics, type HandBackReason } from "./task-metrics.js";
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
  /** Where the metrics go (task-metrics.ts; default a private Registry). */
  readonly registry?: Registry;
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
  | { readonly type: "task-error"; readonly reason: string }
  /**
   * A task went back to the queue (`-NAK`) for another delivery, to any worker: `seq` is its stream
   * sequence, `runId` null (and `tileIds` empty) when it could not be read.
   */
  | {
      readonly type: "task-handed-back";
      readonly seq: number;
      readonly runId: string | null;
      readonly tileIds: readonly string[];
      readonly reason: HandBackReason;
    }
  /**
   * A task stored before its run was recorded over (a node's stale copy of the task stream brought
   * it back: shared/adapters/nats batch-runs.ts) was acknowledged without being classified.
   */
  | {
      readonly type: "task-dropped";
      readonly seq: number;
      readonly runId: string;
      readonly tileIds: readonly string[];
    }
  /** The task consumer had vanished (its stream intact): re-created with the start-up's config. */
  | { readonly type: "consumer-recreated" }
  /** The task stream was deleted under the worker: it stops (`ended` gives the error). */
  | { readonly type: "stream-lost"; readonly reason: string };

/** A running task worker. */
export interface BatchTaskWorker {
  readonly name: string;
  /** The worker's metrics, on `deps.registry` (or its own). */
  readonly metrics: BatchTaskMetrics;
  /** Calls `fn` for every later event; returns the unsubscribe function. */
  on(fn: (e: BatchTaskEvent) => void): () => void;
  /** Stops pulling, lets the tasks in flight finish (result + ack), then stops. */
  stop(): Promise<void>;
  /**
   * Resolves once the worker has stopped: null after `stop()`, the error when it stopped by itself
   * (its task stream deleted while it ran).
   */
  readonly ended: Promise<LanemapError | null>;
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
 * How long a task of the tiles `entries` may take before the worker hands it back (ms): the sum of
 * its tiles' own deadlines, each scaled to its announced size (its pool runs them one after the
 * other at worst), plus the I/O margin (`config.batch.ioMarginMs`, LANEMAP_BATCH_IO_MARGIN_S: the
 * model load and the tiles' reads, whose adapters retry through a leader election). Its heartbeats (`+WPI`) would otherwise keep a task whose
 * read hangs (a consumer on a dead node) in progress forever, and no other worker would ever take
 * it (issue 14, the operator's run 3).
 */
export function taskDeadlineMs(config: Config, entries: readonly (AnnouncedTileSize | null)[]): number {
  return entries.reduce((ms, e) => ms + tileDeadline(config, e).ms, 0) + config.batch.ioMarginMs;
}

/**
 * How long a worker trusts what it read of a run's record (batch-runs.ts), in ms: it asks the
 * bucket once per run per this long, not once per task.
 */
const RUN_RECORD_REFRESH_MS = 5_000;

/** Room for the result's JSON head and headers in a message, beyond the raster. */
const HEAD_ROOM = 64 * 1024;

/** The task `m` carries, or null when it cannot be read (it is then named by its sequence alone). */
function readableTask(m: PulledMsg): BatchTask | null {
  try {
    return decodeTask(m.data);
  } catch {
    return null;
  }
}

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
  await ensureBatchQueue(nc, jsm, settings);
  // The task stream a run record's sequence must be of (batch-runs.ts); read again when the
  // consumer is re-created, since the stream may have been re-created with it.
  let taskStreamCreated = (await jsm.streams.info(BATCH_TASK_STREAM)).created;
  const runRecords = new RunRecordCache(nc, RUN_RECORD_REFRESH_MS);
  const js = jetstream(nc);
  const listeners = new Set<(e: BatchTaskEvent) => void>();
  const emit = (e: BatchTaskEvent) => {
    for (const fn of listeners) fn(e);
  };
  const metrics = createBatchTaskMetrics(deps.registry ?? new Registry());
  /**
   * Hands `m` back to the queue (`-NAK`, redelivered after `delayMs`), said in one info line, the
   * counter and an event: without them a task handed back at a stop showed nowhere (issue 14).
   */
  const handBack = (m: PulledMsg, task: BatchTask | null, reason: HandBackReason, delayMs?: number): void => {
    m.nak(delayMs);
    metrics.handedBack.inc({ reason });
    const runId = task?.runId ?? null;
    const tileIds = task?.entries.map((e) => e.tileId) ?? [];
    log.info(
      { seq: m.seq, runId, tiles: tileIds, deliveries: m.info.deliveryCount, reason },
      "batch task handed back to the queue",
    );
    emit({ type: "task-handed-back", seq: m.seq, runId, tileIds, reason });
  };
  /**
   * Acknowledges `m` unclassified when it was stored before its run was recorded over (a node's
   * stale copy of the task stream brought it back: batch-runs.ts), said in one info line, the
   * counter and an event.
   * @returns whether it was dropped.
   */
  const droppedAsOver = async (m: PulledMsg, task: BatchTask): Promise<boolean> => {
    const record = await runRecords.get(task.runId);
    if (!storedBeforeRunOver(record, m.seq, taskStreamCreated)) return false;
    m.ack();
    metrics.dropped.inc({ reason: "run-over" });
    const tileIds = task.entries.map((e) => e.tileId);
    log.info(
      { seq: m.seq, runId: task.runId, tiles: tileIds, lastTaskSeq: record!.lastTaskSeq, end: record!.end },
      "batch task of a run that is over dropped unclassified (stored before the run ended)",
    );
    emit({ type: "task-dropped", seq: m.seq, runId: task.runId, tileIds });
    return true;
  };
  const maxInline = serverMaxPayload(nc) - HEAD_ROOM;
  /** How often a task held by this worker is reported in progress (`+WPI`), in ms. */
  const heartbeatMs = Math.max(500, Math.floor(settings.ackWaitMs / 3));
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

  const bytesOf = async (entry: CatalogueEntry): Promise<TileBytes> =>
    deps.archive instanceof ArchiveStore
      ? { kind: "archive", dataDir: deps.archive.paths.root }
      : { kind: "inline", bytes: await deps.archive.readObject(entry.contentHash) };

  /**
   * The outcome of the task's tile `entry`, or null when the pool is closing or the failure is
   * transient (the task is then left for a redelivery, to this or another worker).
   */
  const classify = async (
    task: BatchTask,
    entry: CatalogueEntry,
    deliveries: number,
  ): Promise<Classified | null> => {
    const lastDelivery = deliveries >= settings.maxDeliver;
    try {
      await ensureModel(task.modelVersion);
      const out = await pool.classify(
        {
          lane: "batch",
          source: entry,
          bytes: await bytesOf(entry),
          maxPixels: task.maxPixels,
          ...(deps.tileDelayMs ? { delayMs: deps.tileDelayMs } : {}),
        },
        task.modelVersion,
        { deadline: tileDeadline(config, entry) },
      );
      return { outcome: { ok: true, result: out.result, k: out.k }, raster: out.raster };
    } catch (err) {
      if (err instanceof PoolClosedError || err instanceof WorkerStartError) {
        log.warn(
          { tileId: entry.tileId, err: describeError(err) },
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
          { tileId: entry.tileId, code: errorCode(err), err: describeError(err) },
          "transient failure; task left for redelivery",
        );
        return null;
      }
      if (deadlineTriedAgain(errorCode(err), deliveries, settings.maxDeliver)) {
        log.warn(
          { tileId: entry.tileId, code: "DEADLINE", deliveries, err: describeError(err) },
          "batch tile missed its deadline (a frozen or starved worker?); handed back for one more try",
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
   * Publishes the result of the task's classified tile `entry` (its raster in the raster bucket
   * when too large for the message) and logs it.
   * @throws what publishing throws: the caller leaves the task unacknowledged.
   */
  const publishTile = async (
    m: PulledMsg,
    task: BatchTask,
    entry: CatalogueEntry,
    classified: Classified,
    times: TaskTimings,
  ): Promise<void> => {
    const { tileId } = entry;
    const publishStart = performance.now();
    let { outcome, raster } = classified;
    if (outcome.ok && raster.byteLength > maxInline) {
      // Named by content and written only when absent, by a writer that never purges: a redelivered
      // task (its worker killed after the put, before the ack; a slow worker's task redelivered) put
      // `<runId>.<tileId>` again over its name, which purges the old chunks in place (a filtered
      // STREAM.PURGE), and on nats-server 2.9.10 a node SIGKILLed seconds after such a purge came
      // back with only the last object's messages (issue 14, nats-removals-node-kill.test.ts). The
      // classification is deterministic, so the deliveries of a task name the same object and the
      // second writes nothing.
      const object = `${task.runId}.${tileId}.${createHash("sha256").update(raster).digest("hex")}`;
      await putObjectOnce(nc, BATCH_RASTER_BUCKET, object, raster);
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
    const publishMs = tenths(performance.now() - publishStart);
    if (outcome.ok)
      log.info(
        {
          runId: task.runId,
          tileId,
          deliveries: m.info.deliveryCount,
          ...(task.entries.length > 1 ? { tiles: task.entries.length } : {}),
          ...times,
          publishMs,
        },
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
  };

  /**
   * Classifies one task and returns as soon as its tile thread is free again, with the publishing of
   * its results still under way (`published`): the slot pulls its next task meanwhile, so the thread
   * does not idle through the results' round trips to the server. Every tile of the task goes to the
   * pool at once, so its thread takes the next as soon as one is done, and each tile's result is
   * published as soon as it is classified (a worker that dies midway has published the tiles it did:
   * the redelivered task classifies them again, and the coordinator keeps the first result of a
   * tile). `previous` is the slot's results before this task, awaited before this task's are
   * published: a slot publishes in order, and waits for a slow broker rather than pile up rasters.
   * `free` asks for the slot's next task once every tile is classified (on the paths that publish
   * nothing the slot asks itself). `stored(m, heartbeat)` takes the task once every tile's result
   * is stored, to be acknowledged with the slot's next pull; a task with a tile left for a
   * redelivery (transient failure, deadline) goes back (`nak`) once the others' results are out; one
   * whose result cannot be published is left unacknowledged, delivered again after ack_wait. Never
   * rejects for a tile.
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
    if (await droppedAsOver(m, task)) return { published: previous };
    const heartbeat = setInterval(() => m.working(), heartbeatMs);
    // A stop waits for the task's tiles as long as their own deadlines, one after the other at worst.
    const tilesMs = task.entries.reduce((ms, e) => ms + tileDeadline(config, e).ms, 0);
    const deadlineMs = deps.taskDeadlineMs ?? taskDeadlineMs(config, task.entries);
    const queuedMs = Math.max(0, tenths(Date.now() - m.info.timestampNanos / 1e6));
    const classifyStart = performance.now();
    // Each tile's outcome as it settles (never rejects: a failure is an outcome, or null when left
    // for a redelivery); a tile still running when the task outlives its deadline or its worker
    // stops stays null and unreported (the hung read goes on in the background, unused).
    const done: (Classified | null)[] = task.entries.map(() => null);
    let over = false;
    let publishing = previous;
    let unpublished: unknown;
    // The slot's next task is asked for once, by whichever comes first: the task's last tile left
    // running (a task of several tiles, see below) or every tile classified.
    let freed = false;
    const freeOnce = () => {
      if (freed) return;
      freed = true;
      free();
    };
    // A task of several (small) tiles asks for the slot's next one while its last tile is still
    // classifying, once the slot's earlier results are out: the pull's round trip through the
    // broker, which the tile thread otherwise idled through between two tasks (a scheduling delay
    // of each of three processes on a loaded machine), overlaps that tile. The task pulled waits
    // in the slot, kept alive by its heartbeats, and reaches the pool only once this one's tiles
    // are classified, so live tiles still go first and the slot never has more than one task's
    // tiles in the pool; a task of one tile (a large one) asks only once it is classified, not to
    // hold a task another worker could take for a long tile's time.
    let unsettled = task.entries.length;
    const settled = () => {
      if (--unsettled === 1 && task.entries.length > 1)
        void previous.then(() => {
          if (!over) freeOnce();
        });
    };
    const classified = async (entry: CatalogueEntry, i: number): Promise<void> => {
      const c = await classify(task, entry, m.info.deliveryCount);
      settled();
      if (over || !c) return;
      done[i] = c;
      const times = { queuedMs, classifyMs: tenths(performance.now() - classifyStart) };
      publishing = publishing.then(async () => {
        if (unpublished === undefined)
          await publishTile(m, task, entry, c, times).catch((err: unknown) => (unpublished = err));
      });
    };
    let deadline: NodeJS.Timeout | undefined;
    let stopGrace: NodeJS.Timeout | undefined;
    // What ended the wait for the task's tiles, when not their own outcomes.
    let cutShort: HandBackReason | undefined;
    let removeOnStop = () => {};
    await Promise.race([
      Promise.all(task.entries.map(classified)),
      new Promise<void>((resolve) => {
        deadline = setTimeout(() => {
          log.warn(
            { tiles: task.entries.map((e) => e.tileId), deadlineMs: deadlineMs },
            "batch task outlived its deadline (a read that hangs?); handed back for redelivery",
          );
          cutShort = "deadline";
          resolve();
        }, deadlineMs);
      }),
      // A stop waits for the tiles in flight as long as their own deadlines, not for a read that hangs.
      new Promise<void>((resolve) => {
        const onStop = () => {
          stopGrace = setTimeout(() => {
            cutShort = "stopping";
            resolve();
          }, tilesMs);
        };
        if (stopping.signal.aborted) onStop();
        else stopping.signal.addEventListener("abort", onStop, { once: true });
        removeOnStop = () => stopping.signal.removeEventListener("abort", onStop);
      }),
    ]);
    over = true;
    clearTimeout(deadline);
    clearTimeout(stopGrace);
    removeOnStop();
    // A growing delay: a broker that just lost a node is not asked again at once, and a replica
    // that lost sight of an object has a few seconds to catch up or lose its leadership.
    // A tile left without an outcome by the worker's stop (its pool closing) counts as the stop's.
    const redeliver = () => {
      clearInterval(heartbeat);
      const reason = cutShort ?? (stopping.signal.aborted ? "stopping" : "retry");
      handBack(
        m,
        task,
        reason,
        Math.min(TRANSIENT_RETRY_MAX_MS, TRANSIENT_RETRY_MS * 2 ** (m.info.deliveryCount - 1)),
      );
    };
    if (done.every((c) => c === null)) {
      redeliver();
      return { published: previous };
    }
    // The slot's results before this task have had this whole task to be published; if they have
    // not been yet (the broker is slow), the slot waits here rather than pile up rasters.
    await previous;
    freeOnce();
    const complete = done.every((c) => c !== null);
    return {
      published: publishing.then(() => {
        if (unpublished !== undefined) {
          clearInterval(heartbeat);
          const reason = describeError(unpublished);
          log.warn(
            { tiles: task.entries.map((e) => e.tileId), err: reason },
            "cannot publish a batch result; task left for redelivery",
          );
          emit({ type: "task-error", reason });
        } else if (complete) stored(m, heartbeat);
        else redeliver(); // the tiles left for a redelivery go back with the task
      }),
    };
  };

  const stopping = new AbortController();
  // Why the worker stopped by itself (null: it did not); set once, before `stop()`.
  let failure: LanemapError | null = null;
  const fail = (error: LanemapError): void => {
    if (failure || stopping.signal.aborted) return;
    failure = error;
    log.error({ code: error.code, err: error.message }, "batch task worker stopping: its stream is gone");
    emit({ type: "stream-lost", reason: error.message });
    stop().catch(() => undefined); // the caller's own stop() gets the same promise
  };
  const recover = consumerRecovery(
    {
      jsm,
      stream: BATCH_TASK_STREAM,
      consumer: BATCH_TASK_CONSUMER,
      recreate: () => ensureBatchTaskConsumer(jsm, settings),
      streamMissing: "stopping; the tasks queued in it are gone (a start creates it again)",
    },
    {
      recreated: () => {
        log.warn(
          { stream: BATCH_TASK_STREAM, consumer: BATCH_TASK_CONSUMER },
          "the batch task consumer had vanished (stream intact): re-created it",
        );
        void jsm.streams.info(BATCH_TASK_STREAM).then(
          (i) => (taskStreamCreated = i.created),
          () => undefined, // the record of another stream is ignored until a later look
        );
        emit({ type: "consumer-recreated" });
      },
      stop: fail,
      unknown: (err) =>
        log.debug({ err: describeError(err) }, "cannot tell whether the batch task consumer exists"),
    },
  );
  const slot = async (): Promise<void> => {
    let failures = 0;
    // The slot's last result still being published (see `handle`).
    let publishing: Promise<void> = Promise.resolve();
    // One subscription for the slot's life, one pull request per task it is free for (pull-slot.ts).
    // A task that arrives after its pull was given up (at a stop, the abort can beat the server's
    // delivery) goes back the way every other hand-back does: logged and counted.
    const pulls = new PullSlot(nc, BATCH_TASK_STREAM, BATCH_TASK_CONSUMER, (m) =>
      handBack(m, readableTask(m), stopping.signal.aborted ? "stopping" : "unclaimed"),
    );
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
    // The next task's pull, asked for by `handle` as soon as the tile thread is free (or about to
    // be: the last tile of a task of several). A task that arrives while this slot's previous one
    // still runs is kept alive with heartbeats until `handle` takes it (and its own start).
    let asked: Promise<PulledMsg | null> | undefined;
    let waitingBeat: NodeJS.Timeout | undefined;
    const ask = () => {
      const p = pull();
      asked = p;
      p.then(
        (m) => {
          if (m && asked === p) waitingBeat = setInterval(() => m.working(), heartbeatMs);
        },
        () => undefined, // awaited below: only no "unhandled" report before that
      );
    };
    try {
      while (!stopping.signal.aborted) {
        try {
          const next = asked ?? pull();
          asked = undefined;
          const m = await next;
          clearInterval(waitingBeat);
          if (m) ({ published: publishing } = await handle(m, publishing, ask, stored));
          // Not even a 408 at its expiry: a consumer that no longer exists answers nothing.
          else if (pulls.unanswered && (await recover()) === "stop") break;
          failures = 0;
        } catch (err) {
          if (stopping.signal.aborted) break;
          // A 409 "consumer deleted" (the pull was waiting when it went), or another refusal.
          const recovery = await recover();
          if (recovery === "stop" || stopping.signal.aborted) break;
          if (recovery === "recreated") {
            failures = 0;
            continue;
          }
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
      // A task pulled for this slot that it will not start (it stopped): back to the queue at once,
      // not after its ack wait (the pull itself ended null at the stop if it was still waiting).
      const left = asked;
      asked = undefined;
      const m = await left?.catch(() => null);
      clearInterval(waitingBeat);
      if (m) handBack(m, readableTask(m), "stopping");
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
  let endedWith: (why: LanemapError | null) => void = () => {};
  const ended = new Promise<LanemapError | null>((resolve) => (endedWith = resolve));
  // `fail` (above) calls it: only ever after an await of a slot, so once it is defined here.
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      try {
        stopping.abort();
        await Promise.all(slots);
        log.info("batch task worker stopped");
      } finally {
        endedWith(failure);
      }
    })());
  return {
    name,
    metrics,
    on: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    stop,
    ended,
  };
}
