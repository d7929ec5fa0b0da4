/**
 * Classification off the event loop. k-NN over a 256² tile takes a few hundred milliseconds of pure
 * CPU, and a large tile minutes; on the main thread that would stall everything else a worker does
 * meanwhile: in-progress heartbeats (so JetStream would redeliver a tile still being worked on),
 * acks, the model watch, other slots' I/O. ClassifierPool runs `classifyRaster` in worker threads,
 * one tile per thread at a time, with a deadline: a thread past it is terminated and replaced, the
 * same way DecoderPool bounds a decode.
 *
 * Each thread builds the classifier of a model version once (on `preload`, or before its first tile
 * of that version) and keeps the last two, so a hot-swap costs one build per thread and tiles in
 * flight keep the model they started with.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Worker } from "node:worker_threads";
import {
  DeadlineError,
  LanemapError,
  decodeError,
  startWorker,
  type CatalogueEntry,
  type ClassifiedTile,
  type Raster,
  type WireError,
} from "../shared/index.js";

/** Main thread -> classifier thread. */
export type ThreadRequest =
  | { readonly type: "model"; readonly version: string; readonly artifact: Uint8Array }
  | {
      readonly type: "job";
      readonly id: number;
      readonly version: string;
      readonly raster: Raster;
      readonly entry: CatalogueEntry;
    };

/** Classifier thread -> main thread. */
export type ThreadReply =
  | { readonly type: "ready" }
  | { readonly type: "model"; readonly version: string; readonly ok: true }
  | { readonly type: "model"; readonly version: string; readonly ok: false; readonly error: WireError }
  | { readonly type: "job"; readonly id: number; readonly ok: true; readonly out: ClassifiedTile }
  | { readonly type: "job"; readonly id: number; readonly ok: false; readonly error: WireError };

/** Options of a ClassifierPool. */
export interface ClassifierPoolOptions {
  /** Threads (one tile each at a time). */
  readonly size: number;
  /** Deadline of one classification once a thread has it, milliseconds. */
  readonly timeoutMs: number;
}

interface Job {
  readonly id: number;
  readonly version: string;
  readonly raster: Raster;
  readonly entry: CatalogueEntry;
  readonly resolve: (t: ClassifiedTile) => void;
  readonly reject: (e: unknown) => void;
}

interface Thread {
  readonly worker: Worker;
  ready: boolean;
  /** Versions this thread has built (or is building, in order: messages are handled in order). */
  readonly models: Set<string>;
  job: Job | null;
  timer: NodeJS.Timeout | null;
}

const entry = new URL(`./classifier-thread${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** Worker threads that classify decoded tiles with a deadline. */
export class ClassifierPool {
  private readonly threads: Thread[] = [];
  private readonly queue: Job[] = [];
  private readonly artifacts = new Map<string, Uint8Array>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: ClassifierPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new RangeError(`size must be a positive integer, got ${options.size}`);
    // Threads start now: their start-up (loading the modules) is not paid by the first tile.
    for (let i = 0; i < options.size; i++) this.spawn();
  }

  /**
   * Makes a model version known to the pool and has every thread build its classifier now, so the
   * first tile on it does not pay the build. Resolves once every live thread has built it.
   * @throws ModelError (as LanemapError code MODEL) when a thread cannot build it.
   */
  async preload(version: string, artifact: Uint8Array): Promise<void> {
    this.artifacts.set(version, artifact);
    // Keep only the artifacts threads may still need (the two newest versions).
    while (this.artifacts.size > 2) this.artifacts.delete(this.artifacts.keys().next().value as string);
    await Promise.all(this.threads.map((t) => this.ensureModel(t, version)));
  }

  private ensureModel(t: Thread, version: string): Promise<void> {
    if (t.models.has(version)) return Promise.resolve();
    const artifact = this.artifacts.get(version);
    if (!artifact)
      return Promise.reject(new LanemapError("MODEL", `model ${version} was never loaded into the pool`));
    t.models.add(version);
    return new Promise((resolve, reject) => {
      const onMessage = (msg: ThreadReply) => {
        if (msg.type !== "model" || msg.version !== version) return;
        t.worker.off("message", onMessage);
        if (msg.ok) resolve();
        else {
          t.models.delete(version);
          reject(decodeError(msg.error));
        }
      };
      t.worker.on("message", onMessage);
      t.worker.postMessage({ type: "model", version, artifact } satisfies ThreadRequest);
    });
  }

  /**
   * Classifies a decoded raster with model `version` (preloaded). The raster's band buffers are
   * transferred to the thread: the caller must not use them afterwards.
   * @throws LanemapError with the thread's code (TILE_INVALID for a band count the model cannot
   *   use, ...), DeadlineError past the deadline.
   */
  classify(version: string, raster: Raster, entry: CatalogueEntry): Promise<ClassifiedTile> {
    if (this.closed) return Promise.reject(new LanemapError("POOL_CLOSED", "the classifier pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, version, raster, entry, resolve, reject });
      this.pump();
    });
  }

  /** Terminates every thread; queued and running tiles reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closed = () => new LanemapError("POOL_CLOSED", "the classifier pool was closed");
    for (const job of this.queue.splice(0)) job.reject(closed());
    const threads = this.threads.splice(0);
    for (const t of threads) {
      if (t.timer) clearTimeout(t.timer);
      t.job?.reject(closed());
      t.job = null;
    }
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private spawn(): void {
    const worker = startWorker(entry);
    const t: Thread = { worker, ready: false, models: new Set(), job: null, timer: null };
    this.threads.push(t);
    worker.on("message", (msg: ThreadReply) => this.onMessage(t, msg));
    worker.on("error", (err) => this.onCrash(t, err));
    worker.on("exit", (code) => this.onCrash(t, new Error(`classifier thread exited with code ${code}`)));
    // Idle threads must not keep the process alive.
    worker.unref();
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const t = this.threads.find((x) => x.ready && x.job === null);
      if (!t) break;
      this.dispatch(t, this.queue.shift() as Job);
    }
    if (!this.closed) while (this.threads.length < this.options.size) this.spawn();
  }

  private dispatch(t: Thread, job: Job): void {
    t.job = job;
    t.worker.ref();
    this.ensureModel(t, job.version).catch((err: unknown) => {
      if (t.job !== job) return;
      this.settle(t);
      job.reject(err);
      this.pump();
    });
    // The deadline covers the build of a model the thread did not have, as the tile waits on it.
    t.timer = setTimeout(() => this.onDeadline(t), this.options.timeoutMs);
    const req: ThreadRequest = {
      type: "job",
      id: job.id,
      version: job.version,
      raster: job.raster,
      entry: job.entry,
    };
    const buffers = [...new Set(job.raster.bands.map((b) => b.buffer as ArrayBuffer))];
    t.worker.postMessage(req, buffers);
  }

  private settle(t: Thread): Job | null {
    const job = t.job;
    t.job = null;
    if (t.timer) clearTimeout(t.timer);
    t.timer = null;
    t.worker.unref();
    return job;
  }

  private onMessage(t: Thread, msg: ThreadReply): void {
    if (msg.type === "ready") {
      t.ready = true;
      // Bring a thread started after a preload (a replacement) up to date.
      for (const v of this.artifacts.keys()) this.ensureModel(t, v).catch(() => undefined);
      this.pump();
      return;
    }
    if (msg.type !== "job" || t.job === null || t.job.id !== msg.id) return;
    const job = this.settle(t) as Job;
    if (msg.ok) job.resolve(msg.out);
    else job.reject(decodeError(msg.error));
    this.pump();
  }

  private remove(t: Thread): void {
    const i = this.threads.indexOf(t);
    if (i >= 0) this.threads.splice(i, 1);
  }

  private onDeadline(t: Thread): void {
    const job = this.settle(t);
    this.remove(t);
    // terminate() stops even a thread deep in a k-NN search; its replacement starts on the next pump.
    void t.worker.terminate();
    job?.reject(new DeadlineError(`classification did not finish within ${this.options.timeoutMs} ms`));
    this.pump();
  }

  private onCrash(t: Thread, err: unknown): void {
    if (!this.threads.includes(t)) return;
    const job = this.settle(t);
    this.remove(t);
    void t.worker.terminate();
    const wasReady = t.ready;
    job?.reject(
      new LanemapError(
        "WORKER_CRASHED",
        `the classifier thread failed: ${err instanceof Error ? err.message : String(err)}`,
        {
          cause: err,
        },
      ),
    );
    // A thread that dies before it is ready would die again: fail what waits instead of respawning forever.
    if (!wasReady) {
      for (const waiting of this.queue.splice(0)) waiting.reject(err);
      return;
    }
    this.pump();
  }
}
