/**
 * The seam between a batch run and where its tiles are classified (issue 14). The runner orders the
 * tiles and hands them, one `process` call per tile and at most `slots` at once, to an executor:
 *
 *   threads  TileWorkerPool (worker-pool.ts): this process's worker_threads, the embedded default;
 *   stream   StreamTileExecutor (stream-executor.ts): one task per tile on the JetStream work queue,
 *            classified by `lanemap worker` processes on any machine (task-worker.ts).
 *
 * Both return the same TileJobOutcome, so the runner's checkpoint, failure report and publish do not
 * know which one ran.
 */
import { readFile } from "node:fs/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  LanemapError,
  type Config,
  type CatalogueEntry,
  type ModelRegistry,
  type TileArchive,
  type TilePool,
} from "../shared/index.js";
import { StreamTileExecutor } from "./stream-executor.js";
import { TileWorkerPool, type TileJobOutcome, type TileWorkerData } from "./worker-pool.js";

export type { TileJobOutcome };

/** Where a run's tiles are classified. */
export type ExecutorKind = Config["batch"]["executor"];

/** What a run dispatches its tiles to (see the module comment). */
export interface TileExecutor {
  /** The model version every tile is classified with. */
  readonly modelVersion: string;
  /** Tiles the runner may have in flight at once. */
  readonly slots: number;
  /** Workers replaced after a deadline or a crash during this run (threads; 0 for the stream). */
  readonly replaced: number;
  /**
   * Stream: the distinct `lanemap worker` processes whose results the run took. Absent for threads,
   * where the run's workers are its slots.
   */
  readonly workers?: number;
  /**
   * Stream: tiles whose result came from a redelivered task (a worker lost or past its deadline).
   * Absent for threads, where a lost worker thread is `replaced`.
   */
  readonly redelivered?: number;
  /**
   * Classifies one tile. Never rejects for a tile's own failure (that is an `ok: false` outcome with
   * its code and reason), nor for a close while it waits (code CANCELLED).
   * @throws WorkerStartError when the executor cannot go on at all.
   */
  process(entry: CatalogueEntry): Promise<TileJobOutcome>;
  /**
   * Ends the run's use of the executor (`force`: also what is kept warm between runs; `purge`: the
   * run is over, so the stream executor removes its tasks still queued).
   */
  close(options?: { force?: boolean; purge?: boolean }): Promise<void>;
}

/** What {@link openTileExecutor} needs for either kind. */
export interface TileExecutorSpec {
  readonly kind: ExecutorKind;
  readonly config: Config;
  readonly logger: Logger;
  /** The model artifact in the run's staging folder. */
  readonly modelPath: string;
  /** Threads: at most this many workers (the run's tiles or `config.batch.workers`, the fewer). */
  readonly size: number;
  readonly tileDelayMs: number;
  readonly warm?: TilePool;
  /** The master archive when it is not the files one of `config.dataDir` (threads read it inline). */
  readonly archive?: TileArchive;
  /** Stream: the connection, the run's task id and the registry workers load models from. */
  readonly nc?: NatsConnection;
  readonly runId: string;
  readonly models?: ModelRegistry;
  /** Stream: the tiles this run still needs; late results of other tiles are dropped. */
  readonly tileIds: ReadonlySet<string>;
  /** Stream: the run's stop signal; tiles waiting for a worker reject at once when it aborts. */
  readonly signal?: AbortSignal;
}

/**
 * The connection a `kind` executor needs: the stream one cannot run without NATS, and a run asked
 * for it is refused even when it has nothing to classify, so a misconfigured schedule fails on its
 * first night rather than on the first night with new tiles.
 * @throws LanemapError CONFIG for the stream executor without a NATS connection.
 */
export function checkExecutor(kind: ExecutorKind, nc: NatsConnection | undefined): void {
  if (kind === "stream") streamConnection(nc);
}

/** `nc`, which the stream executor needs. @throws LanemapError CONFIG when there is none. */
function streamConnection(nc: NatsConnection | undefined): NatsConnection {
  if (!nc)
    throw new LanemapError(
      "CONFIG",
      "the stream executor needs NATS: set NATS_URL (or run under `lanemap start`), or use --executor threads",
    );
  return nc;
}

/**
 * Starts the executor of `spec.kind`.
 * @throws LanemapError CONFIG for the stream executor without a NATS connection; what
 *   TileWorkerPool.start and StreamTileExecutor.start throw.
 */
export async function openTileExecutor(spec: TileExecutorSpec): Promise<TileExecutor> {
  if (spec.kind === "threads") {
    const workerData: TileWorkerData = {
      dataDir: spec.config.dataDir,
      modelPath: spec.modelPath,
      maxPixels: spec.config.maxPixels,
      tileDelayMs: spec.tileDelayMs,
    };
    return TileWorkerPool.start({
      size: spec.size,
      workerData,
      deadline: spec.config,
      logger: spec.logger,
      ...(spec.warm ? { warm: spec.warm } : {}),
      ...(spec.archive ? { archive: spec.archive } : {}),
    });
  }
  const nc = streamConnection(spec.nc);
  return StreamTileExecutor.start({
    nc,
    config: spec.config,
    logger: spec.logger,
    runId: spec.runId,
    artifact: new Uint8Array(await readFile(spec.modelPath)),
    ...(spec.models ? { models: spec.models } : {}),
    tileIds: spec.tileIds,
    ...(spec.signal ? { signal: spec.signal } : {}),
  });
}
