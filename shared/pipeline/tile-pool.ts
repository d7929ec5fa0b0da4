/**
 * Tiles decoded and classified in worker threads, with a deadline: the house WorkerPool running the
 * one tile job of both lanes (tile-job.ts). k-NN over a 256² tile is a few hundred milliseconds of
 * CPU and a large tile minutes, and a hostile file can make a decoder loop; on a lane's main thread
 * either would stall heartbeats, acks and checkpoints. A tile past its deadline costs its thread,
 * which is terminated and replaced; the lane goes on.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { ResourceLimits } from "node:worker_threads";
import { DeadlineError, ModelError } from "../errors.js";
import type { Lane } from "../view/types.js";
import { WorkerPool } from "../workers/index.js";
import type { ClassifiedTile } from "../view/types.js";
import type { ResultSource } from "./classify.js";
import { describeTileDeadline, type TileDeadline } from "./deadline.js";
import type { TileBytes, TileJob, TileJobResult } from "./tile-job.js";

/** Options of a TilePool. */
export interface TilePoolOptions {
  /** Threads, one tile each at a time. */
  readonly size: number;
  /**
   * Default deadline of one job, in ms: a model load, a thread's warm-up, and a tile classified
   * without a `deadline` of its own (the lanes give each tile one, see deadline.ts).
   */
  readonly timeoutMs: number;
  /** V8 limits per thread: a runaway tile kills its thread, not the process. */
  readonly resourceLimits?: ResourceLimits;
}

/** One tile to classify. */
export interface TileInput {
  readonly lane: Lane;
  readonly source: ResultSource;
  readonly bytes: TileBytes;
  readonly maxPixels: number;
  /** Test hook: the thread sleeps this long first. */
  readonly delayMs?: number;
}

/** A model the pool has loaded. */
export interface LoadedTileModel {
  readonly version: string;
  /** Neighbours per vote. */
  readonly k: number;
}

// The entry sits beside this module, with this module's extension (.ts under tsx, .js if built).
const entry = new URL(`./tile-thread${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** Queue priority of live-lane tiles over batch tiles (shared/workers RunOptions.priority). */
const LIVE_PRIORITY = 1;

/** The artifact in shared memory: every job message then shares it instead of copying it. */
function shared(artifact: Uint8Array): Uint8Array {
  const out = new Uint8Array(new SharedArrayBuffer(artifact.byteLength));
  out.set(artifact);
  return out;
}

/** Worker threads that turn tiles into lane results with a deadline (see the module comment). */
export class TilePool {
  private readonly pool: WorkerPool<TileJob, TileJobResult>;
  /** Artifacts of the models tiles may still name (the two newest), by version. */
  private readonly artifacts = new Map<string, Uint8Array>();

  /** @throws RangeError for a size or timeoutMs that is not positive. */
  constructor(options: TilePoolOptions) {
    this.pool = new WorkerPool({
      entry,
      name: "tile",
      size: options.size,
      timeoutMs: options.timeoutMs,
      ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
      // A replacement thread builds the models in use before its first tile, outside its deadline.
      warmUp: () =>
        [...this.artifacts].map(([version, artifact]): TileJob => ({
          kind: "model",
          model: { version, artifact },
        })),
    });
  }

  /** Threads terminated and replaced after a deadline, an abort or a crash. */
  get replaced(): number {
    return this.pool.replaced;
  }

  /** Live threads. */
  get workerCount(): number {
    return this.pool.workerCount;
  }

  /**
   * Starts every thread and waits until each is ready.
   * @throws WorkerStartError, PoolClosedError.
   */
  warm(): Promise<void> {
    return this.pool.warm();
  }

  /**
   * Makes a model usable by `classify`: one job per live thread parses, validates and builds its
   * classifier now, so on a warmed, idle pool every thread has it before its first tile. A thread
   * started later builds the loaded models before its first tile; one that was busy builds it with
   * its first tile of that version, within that tile's deadline.
   * `version` is checked against the artifact; null takes the artifact's own.
   * @throws ModelError when the artifact is not a usable model; DeadlineError, PoolClosedError.
   */
  async loadModel(artifact: Uint8Array, version: string | null = null): Promise<LoadedTileModel> {
    const model = { version, artifact: shared(artifact) };
    const threads = Math.max(1, this.pool.workerCount);
    const replies = await Promise.all(
      Array.from({ length: threads }, () => this.pool.run({ kind: "model", model })),
    );
    const reply = replies[0];
    if (reply?.kind !== "model") throw new ModelError("the tile thread did not load the model");
    this.artifacts.delete(reply.version);
    this.artifacts.set(reply.version, model.artifact);
    // Keep only what tiles in flight and new tiles may name: the two most recently used.
    while (this.artifacts.size > 2) this.artifacts.delete(this.artifacts.keys().next().value as string);
    return { version: reply.version, k: reply.k };
  }

  /**
   * Classifies one tile with model `version` (loaded by `loadModel`). Inline bytes are copied once;
   * the caller's stay usable. Its deadline is `options.deadline` (the tile's own, from
   * `tileDeadline`), else `options.timeoutMs`, else the pool's.
   * @throws TileDecodeError, PixelBudgetError, TileInvalidError, ModelError (from the thread, as
   *   the same classes); DeadlineError past the deadline (naming it and, with `deadline`, its
   *   derivation); WorkerCrashError; WorkerStartError; PoolClosedError; `signal.reason` when aborted.
   */
  async classify(
    tile: TileInput,
    version: string,
    options: { signal?: AbortSignal; timeoutMs?: number; deadline?: TileDeadline } = {},
  ): Promise<ClassifiedTile> {
    const artifact = this.artifacts.get(version);
    if (!artifact) throw new ModelError(`model ${version} was never loaded into the tile pool`);
    // Least recently used goes first: in a process serving both lanes (`lanemap worker`) a batch run's
    // model must not push out the live lane's active one, which every live tile touches.
    this.artifacts.delete(version);
    this.artifacts.set(version, artifact);
    let job: TileJob = { kind: "tile", model: { version, artifact }, ...tile };
    let transfer: ArrayBuffer[] = [];
    if (tile.bytes.kind === "inline") {
      // A copy of its own, moved: cloning a view (a NATS message's payload) would copy its whole
      // underlying buffer, and the caller keeps its bytes (a dead letter needs them).
      const bytes = Uint8Array.prototype.slice.call(tile.bytes.bytes);
      job = { ...job, bytes: { kind: "inline", bytes } };
      transfer = [bytes.buffer];
    }
    // Live tiles first: a fresh acquisition must not wait behind a batch backlog in a process that
    // serves both lanes (`lanemap worker`).
    const priority = tile.lane === "live" ? LIVE_PRIORITY : 0;
    const { deadline, ...run } = options;
    let reply: TileJobResult;
    try {
      reply = await this.pool.run(job, {
        ...run,
        ...(deadline ? { timeoutMs: deadline.ms } : {}),
        transfer,
        priority,
      });
    } catch (err) {
      // The reason a dead letter or a batch report carries: which deadline, and why that long.
      if (deadline && err instanceof DeadlineError)
        throw new DeadlineError(`the tile job did not finish within ${describeTileDeadline(deadline)}`, {
          cause: err,
        });
      throw err;
    }
    if (reply.kind !== "tile") throw new ModelError("the tile thread answered a tile with a model");
    return reply.outcome;
  }

  /** True when model `version` is loaded (a `classify` with it will not throw for want of it). */
  hasModel(version: string): boolean {
    return this.artifacts.has(version);
  }

  /** Terminates every thread; queued and running tiles reject with PoolClosedError. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
