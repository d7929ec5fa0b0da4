/**
 * The batch run's tile workers: the shared TilePool (shared/pipeline) with a fixed size, started and
 * loaded with the run's model before the first tile, so the number of tiles in flight is the pool
 * size and memory stays flat however large the archive is. Each worker reads a tile's bytes from the
 * archive itself (the run's thread never holds pixels), decodes and classifies it. A tile that
 * overruns its deadline, or whose worker dies, is failed with a reason; that worker is terminated
 * and replaced, and the run goes on. A tile that overran its deadline is tried once more on a fresh
 * thread first (deadline-retry.ts): a missed deadline says more about the moment than the tile.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import {
  DeadlineError,
  LanemapError,
  PoolClosedError,
  TilePool,
  WorkerStartError,
  describeError,
  describeTileDeadline,
  errorCode,
  tileDeadline,
  type CatalogueEntry,
  type ClassifiedTile,
  type ErrorCode,
  type TileDeadlineRule,
} from "../shared/index.js";
import type { TileArchive } from "../shared/index.js";
import { DEADLINE_TRIES, deadlineTriedAgain } from "./deadline-retry.js";

/** The outcome of one tile. */
export type TileJobOutcome =
  | ({ readonly ok: true } & ClassifiedTile)
  | { readonly ok: false; readonly code: ErrorCode; readonly reason: string };

/** What the workers of a run work with. */
export interface TileWorkerData {
  readonly dataDir: string;
  readonly modelPath: string;
  readonly maxPixels: number;
  /** Test hook: sleep this long before each tile (see batch/README.md). 0 in production. */
  readonly tileDelayMs: number;
}

/** Options of {@link TileWorkerPool.start}. */
export interface TileWorkerPoolOptions {
  readonly size: number;
  readonly workerData: TileWorkerData;
  /**
   * The tile deadline rule (a Config has it): each tile's deadline from dispatch to result is
   * `tileDeadline(deadline, entry)`, scaled to its announced size; the base bounds a model load.
   */
  readonly deadline: TileDeadlineRule;
  readonly logger: Logger;
  /** V8 old-space cap per worker: a runaway tile kills its worker, not the run. Default 512 MB. */
  readonly maxOldGenerationSizeMb?: number;
  /**
   * Threads kept warm by the runner between its runs (see {@link createTilePool}): this run uses
   * them instead of starting its own, and `close()` leaves them running. Starting a thread loads
   * the decoder, the classifier and their modules, about 2 s of CPU each, which a run ordered
   * around the analyst's viewport would otherwise pay before its first tile.
   */
  readonly warm?: TilePool;
  /**
   * The master archive the run reads, when it is not the files one in `workerData.dataDir`: then
   * this thread reads each tile's object and sends the bytes inline (a worker thread has no NATS
   * connection of its own). The files archive is read by the workers themselves.
   */
  readonly archive?: TileArchive;
}

/** The thread pool of a run's workers, for a runner that keeps it warm between runs. */
export function createTilePool(options: {
  size: number;
  deadlineMs: number;
  maxOldGenerationSizeMb?: number;
}): TilePool {
  return new TilePool({
    size: options.size,
    timeoutMs: options.deadlineMs,
    resourceLimits: { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb ?? 512 },
  });
}

/** A fixed-size pool of tile workers (see the module comment). */
export class TileWorkerPool {
  private constructor(
    private readonly options: TileWorkerPoolOptions,
    private readonly pool: TilePool,
    /** The model version the workers classify with. */
    readonly modelVersion: string,
    /** Replacements the pool had made before this run (a warm pool's count goes on across runs). */
    private readonly replacedBefore: number,
  ) {}

  /**
   * Starts `size` workers and waits until every one has loaded the model.
   * @throws WorkerStartError when a worker cannot start or the model cannot be loaded;
   *   LanemapError POOL for a size that is not a positive integer.
   */
  static async start(options: TileWorkerPoolOptions): Promise<TileWorkerPool> {
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new LanemapError("CONFIG", `pool size must be a positive integer, got ${options.size}`);
    const { modelPath } = options.workerData;
    const pool =
      options.warm ??
      createTilePool({
        size: options.size,
        deadlineMs: options.deadline.decodeTimeoutMs,
        ...(options.maxOldGenerationSizeMb ? { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb } : {}),
      });
    try {
      await pool.warm();
      let version: string;
      try {
        ({ version } = await pool.loadModel(await readFile(modelPath)));
      } catch (err) {
        throw new WorkerStartError(`tile worker could not start: model ${modelPath}: ${describeError(err)}`, {
          cause: err,
        });
      }
      return new TileWorkerPool(options, pool, version, pool.replaced);
    } catch (err) {
      await pool.close();
      throw err;
    }
  }

  /** Tiles in flight at once: one per worker. */
  get slots(): number {
    return this.options.size;
  }

  /** Workers replaced after a deadline or a crash, during this run. */
  get replaced(): number {
    return this.pool.replaced - this.replacedBefore;
  }

  /**
   * Classifies one tile on the next idle worker. Never rejects for a tile's own failure, nor for a
   * close while it waits or runs (code CANCELLED).
   * @throws WorkerStartError when no worker can be started any more: the run cannot go on.
   */
  async process(entry: CatalogueEntry): Promise<TileJobOutcome> {
    for (let tried = 1; ; tried++) {
      const o = await this.classifyOnce(entry);
      if (o.ok || !deadlineTriedAgain(o.code, tried, DEADLINE_TRIES)) return o;
      this.options.logger.warn(
        { tileId: entry.tileId, tried },
        "tile missed its deadline: trying it once more on a fresh thread",
      );
    }
  }

  /** One try of `process`. */
  private async classifyOnce(entry: CatalogueEntry): Promise<TileJobOutcome> {
    const { dataDir, maxPixels, tileDelayMs } = this.options.workerData;
    const archive = this.options.archive;
    const deadline = tileDeadline(this.options.deadline, entry);
    try {
      const out = await this.pool.classify(
        {
          lane: "batch",
          source: entry,
          bytes:
            archive && archive.backend !== "files"
              ? { kind: "inline", bytes: await archive.readObject(entry.contentHash) }
              : { kind: "archive", dataDir },
          maxPixels,
          delayMs: tileDelayMs,
        },
        this.modelVersion,
        { deadline },
      );
      return { ok: true, result: out.result, k: out.k, raster: out.raster };
    } catch (err) {
      if (err instanceof WorkerStartError) throw err;
      if (err instanceof PoolClosedError)
        return { ok: false, code: "CANCELLED", reason: "the run was stopped" };
      if (err instanceof DeadlineError) {
        this.options.logger.warn(
          { tileId: entry.tileId, deadlineMs: deadline.ms },
          "tile over its deadline: terminating its worker",
        );
        return {
          ok: false,
          code: "DEADLINE",
          reason: `no result within the ${describeTileDeadline(deadline)} deadline`,
        };
      }
      return {
        ok: false,
        code: errorCode(err),
        reason: describeError(err),
      };
    }
  }

  /**
   * Ends the run's use of the workers: terminates them, failing queued and in-flight tiles with code
   * CANCELLED, unless they are a warm pool and `force` is not set (then they stay, idle, for the
   * next run; idle threads do not keep the process alive).
   */
  close(options: { force?: boolean } = {}): Promise<void> {
    if (this.options.warm && !options.force) return Promise.resolve();
    return this.pool.close();
  }
}
