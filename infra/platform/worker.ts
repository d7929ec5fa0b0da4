/**
 * `lanemap worker` composed (issue 14, "one worker for both lanes"): one process serving the speed
 * consumer and the batch work queue through ONE TilePool of `config.batch.workers` threads, so
 * there is one place where pixels become classes. Live work goes first: the pool queues live tiles
 * ahead of batch tiles (shared/workers priority), and the batch consumer pulls only for its free
 * slots, so a fresh tile waits at most for the batch tiles already running. Run any number of
 * workers on any machines; they share both durable consumers.
 */
import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { startBatchTaskWorker, type BatchTaskWorker } from "../../batch/index.js";
import {
  TilePool,
  type Config,
  type LanemapError,
  type ModelRegistry,
  type TileArchive,
} from "../../shared/index.js";
import { startSpeedWorker, type SpeedWorker } from "../../speed/index.js";
import { openModelRegistry } from "./models.js";
import { openTileArchive } from "./storage.js";
import { openPublishedViews } from "./views.js";
import { ingestStreamBehindRecord, refuseIngestStreamBehind } from "./ingest-clock.js";

/** What a worker process is built from besides the configuration. */
export interface WorkerSetup {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** The model registry (default: the deployment's, NATS when `nc`). */
  readonly models?: ModelRegistry;
  /** The master archive (default: as `config.storage.backend` says, infra/platform/storage.ts). */
  readonly archive?: TileArchive;
  /** Name in logs and results (default host:pid). */
  readonly name?: string;
  /** Where both lanes' metrics go (`lanemap_speed_*`, `lanemap_batch_tasks_*`; default one private Registry each). */
  readonly registry?: Registry;
  /** Test hook: each batch tile costs this long more in its thread (LANEMAP_TEST_TILE_DELAY_MS). */
  readonly batchTileDelayMs?: number;
  /** Test hook: a batch task's deadline in ms (default batch/task-worker.ts `taskDeadlineMs`). */
  readonly batchTaskDeadlineMs?: number;
}

/** A running `lanemap worker`. */
export interface LanemapWorker {
  readonly name: string;
  readonly speed: SpeedWorker;
  readonly batch: BatchTaskWorker;
  readonly pool: TilePool;
  /** Stops both consumers (tiles in flight finish), then the threads. */
  stop(): Promise<void>;
  /**
   * Resolves once the worker has stopped: null after `stop()`, the error when a lane stopped by
   * itself (its stream deleted, or the ingest stream recreated behind lanemap's record, while it
   * ran; shared/adapters/nats/vanished-consumer.ts), after the other lane and the threads stopped too.
   */
  readonly ended: Promise<LanemapError | null>;
}

/**
 * Starts the shared tile threads, the speed worker and the batch task worker on them.
 * @throws WorkerStartError when the threads cannot start; StreamSetupError (NATS_SETUP).
 */
export async function startLanemapWorker(config: Config, setup: WorkerSetup): Promise<LanemapWorker> {
  const name = setup.name ?? `${hostname()}:${process.pid}`;
  const pool = new TilePool({
    size: config.batch.workers,
    timeoutMs: config.decodeTimeoutMs,
    resourceLimits: { maxOldGenerationSizeMb: 512 },
  });
  let speed: SpeedWorker | undefined;
  // The threads warm while the buckets open, so a deployment that cannot open them (replicas the
  // cluster cannot place) is told at once, not after every thread has loaded.
  const warming = pool.warm();
  warming.catch(() => undefined); // awaited below
  try {
    const models = setup.models ?? (await openModelRegistry(config, setup.nc, setup.logger));
    // One archive for both consumers: the data directory's, or the JetStream buckets (LANEMAP_STORAGE).
    const archive = setup.archive ?? (await openTileArchive(config, setup.nc));
    // A recreated ingest stream (sequences from 1 again) is refused before anything is consumed,
    // and checked again by the speed worker when its consumer vanishes while it runs.
    const records = { views: await openPublishedViews(config, setup.nc, setup.logger), archive };
    await refuseIngestStreamBehind(setup.nc, records, { what: "worker start-up", logger: setup.logger });
    await warming;
    speed = await startSpeedWorker(config, {
      nc: setup.nc,
      logger: setup.logger,
      pool,
      models,
      name,
      archive,
      ...(setup.registry ? { registry: setup.registry } : {}),
      ingestClock: () => ingestStreamBehindRecord(setup.nc, records),
    });
    const batch = await startBatchTaskWorker(config, {
      nc: setup.nc,
      logger: setup.logger,
      pool,
      concurrency: config.batch.workers,
      models,
      archive,
      name,
      ...(setup.registry ? { registry: setup.registry } : {}),
      tileDelayMs: setup.batchTileDelayMs ?? 0,
      ...(setup.batchTaskDeadlineMs ? { taskDeadlineMs: setup.batchTaskDeadlineMs } : {}),
    });
    const started = speed;
    let stopped: Promise<void> | undefined;
    const stop = () =>
      (stopped ??= (async () => {
        await Promise.all([batch.stop(), started.stop()]);
        await pool.close();
      })());
    // The first lane to end says why (null on a stop); a lane that stopped by itself stops the rest.
    const ended = Promise.race([started.ended, batch.ended]).then(async (why) => {
      await stop().catch(() => undefined); // a caller's own stop() reports its failure
      return why;
    });
    return { name, speed: started, batch, pool, stop, ended };
  } catch (err) {
    await speed?.stop().catch(() => undefined);
    await warming.catch(() => undefined);
    await pool.close();
    throw err;
  }
}
