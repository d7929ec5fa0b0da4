/**
 * A fixed-size pool of tile workers (worker_threads). Each worker loads the model once and then
 * classifies one tile at a time, so the number of tiles in flight is the pool size and memory stays
 * flat however large the archive is. A tile that overruns its deadline, or whose worker dies, is
 * failed with a reason; that worker is terminated and replaced, and the run goes on.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { LanemapError, startWorker, type CatalogueEntry, type TileResult } from "../shared/index.js";
import type { FromWorker, TileWorkerData, ToWorker } from "./worker-protocol.js";

/** A worker could not start (model unreadable, entry module broken): the run cannot go on. */
export class WorkerStartError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("WORKER_START", message, options);
  }
}

/** The outcome of one tile. */
export type TileJobOutcome =
  | { readonly ok: true; readonly result: TileResult; readonly k: number; readonly raster: Uint8Array }
  | { readonly ok: false; readonly code: string; readonly reason: string };

/** Options of {@link TileWorkerPool.start}. */
export interface TileWorkerPoolOptions {
  readonly size: number;
  readonly workerData: TileWorkerData;
  /** Per-tile deadline from dispatch to result, in ms. */
  readonly deadlineMs: number;
  readonly logger: Logger;
  /** Worker entry module (default ./tile-worker.ts). */
  readonly entry?: URL;
  /** V8 old-space cap per worker: a runaway tile kills its worker, not the run. Default 512 MB. */
  readonly maxOldGenerationSizeMb?: number;
}

interface Job {
  readonly job: number;
  readonly tileId: string;
  readonly resolve: (o: TileJobOutcome) => void;
  readonly timer: NodeJS.Timeout;
}

interface Slot {
  readonly id: number;
  readonly worker: Worker;
  job: Job | undefined;
  /** Set once the slot is given up (terminated or replaced); late events are ignored. */
  retired: boolean;
}

// The entry sits beside this module, with its extension (.ts from source, .js compiled).
const DEFAULT_ENTRY = new URL(`./tile-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** A fixed-size pool of tile workers (see the module comment). */
export class TileWorkerPool {
  private readonly options: TileWorkerPoolOptions;
  private readonly idle: Slot[] = [];
  private readonly waiters: { resolve: (s: Slot) => void; reject: (e: unknown) => void }[] = [];
  private readonly slots = new Set<Slot>();
  private nextSlotId = 0;
  private nextJob = 0;
  private fatal: unknown;
  private closing = false;
  private replacedCount = 0;
  /** The model version the workers report. */
  modelVersion = "";

  private constructor(options: TileWorkerPoolOptions) {
    this.options = options;
  }

  /** Starts `size` workers and waits until every one has loaded the model. */
  static async start(options: TileWorkerPoolOptions): Promise<TileWorkerPool> {
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new LanemapError("POOL", `pool size must be a positive integer, got ${options.size}`);
    const pool = new TileWorkerPool(options);
    try {
      const slots = await Promise.all(Array.from({ length: options.size }, () => pool.spawn()));
      for (const s of slots) pool.release(s);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Workers replaced after a deadline or a crash. */
  get replaced(): number {
    return this.replacedCount;
  }

  /** Classifies one tile on the next idle worker. Never rejects for a tile's own failure. */
  async process(entry: CatalogueEntry): Promise<TileJobOutcome> {
    const slot = await this.acquire();
    return new Promise<TileJobOutcome>((resolve) => {
      const job = ++this.nextJob;
      const timer = setTimeout(() => this.onDeadline(slot), this.options.deadlineMs);
      slot.job = { job, tileId: entry.tileId, resolve, timer };
      const msg: ToWorker = { type: "tile", job, entry };
      slot.worker.postMessage(msg);
    });
  }

  /** Terminates every worker. In-flight tiles are failed with code CANCELLED. */
  async close(): Promise<void> {
    this.closing = true;
    const err = new LanemapError("CANCELLED", "the worker pool was closed");
    for (const w of this.waiters.splice(0)) w.reject(err);
    const all = [...this.slots];
    this.slots.clear();
    this.idle.length = 0;
    await Promise.all(
      all.map(async (s) => {
        s.retired = true;
        this.finish(s, { ok: false, code: "CANCELLED", reason: "the run was stopped" });
        await s.worker.terminate().catch(() => undefined);
      }),
    );
  }

  private spawn(): Promise<Slot> {
    return new Promise<Slot>((resolve, reject) => {
      const worker = startWorker(this.options.entry ?? DEFAULT_ENTRY, {
        workerData: this.options.workerData,
        resourceLimits: { maxOldGenerationSizeMb: this.options.maxOldGenerationSizeMb ?? 512 },
      });
      const slot: Slot = { id: this.nextSlotId++, worker, job: undefined, retired: false };
      this.slots.add(slot);
      let started = false;
      worker.on("message", (msg: FromWorker) => {
        if (slot.retired) return;
        if (msg.type === "ready") {
          started = true;
          this.modelVersion = msg.modelVersion;
          resolve(slot);
        } else if (msg.type === "init-failed") {
          this.retire(slot);
          reject(new WorkerStartError(`tile worker could not start: ${msg.message}`));
        } else if (slot.job && msg.job === slot.job.job) {
          const outcome: TileJobOutcome =
            msg.type === "done"
              ? { ok: true, result: msg.result, k: msg.k, raster: msg.raster }
              : { ok: false, code: msg.code, reason: msg.reason };
          this.finish(slot, outcome);
          this.release(slot);
        }
      });
      worker.on("error", (err) => {
        if (slot.retired) return;
        if (!started) {
          this.retire(slot);
          reject(new WorkerStartError(`tile worker could not start: ${err.message}`, { cause: err }));
          return;
        }
        this.lost(slot, "WORKER_CRASHED", `worker crashed: ${err.message}`);
      });
      worker.on("exit", (code) => {
        if (slot.retired) return;
        if (!started) {
          this.retire(slot);
          reject(new WorkerStartError(`tile worker exited with code ${code} before it was ready`));
          return;
        }
        this.lost(slot, "WORKER_CRASHED", `worker exited with code ${code}`);
      });
    });
  }

  private onDeadline(slot: Slot): void {
    if (slot.retired || !slot.job) return;
    this.options.logger.warn(
      { tileId: slot.job.tileId, deadlineMs: this.options.deadlineMs },
      "tile over its deadline: terminating its worker",
    );
    this.lost(slot, "DEADLINE", `no result within the ${this.options.deadlineMs} ms deadline`);
  }

  /** Fails the slot's tile, terminates the worker and starts a replacement. */
  private lost(slot: Slot, code: string, reason: string): void {
    this.finish(slot, { ok: false, code, reason });
    this.retire(slot);
    if (this.closing) return;
    this.replacedCount++;
    this.spawn().then(
      (fresh) => this.release(fresh),
      (err: unknown) => this.fail(err),
    );
  }

  private retire(slot: Slot): void {
    slot.retired = true;
    this.slots.delete(slot);
    const i = this.idle.indexOf(slot);
    if (i >= 0) this.idle.splice(i, 1);
    void slot.worker.terminate().catch(() => undefined);
  }

  private finish(slot: Slot, outcome: TileJobOutcome): void {
    const job = slot.job;
    if (!job) return;
    slot.job = undefined;
    clearTimeout(job.timer);
    job.resolve(outcome);
  }

  private fail(err: unknown): void {
    this.fatal ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private release(slot: Slot): void {
    if (slot.retired || this.closing) return;
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(slot);
    else this.idle.push(slot);
  }

  private acquire(): Promise<Slot> {
    if (this.fatal !== undefined) return Promise.reject(this.fatal);
    if (this.closing) return Promise.reject(new LanemapError("CANCELLED", "the worker pool was closed"));
    const slot = this.idle.shift();
    if (slot) return Promise.resolve(slot);
    return new Promise<Slot>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
