/**
 * Decoding in worker threads with a deadline. A decoder that loops forever on a hostile file (the fuzz
 * case broken/fuzz_infloop_* does that to naive decoders) cannot be interrupted from inside its own
 * thread; a worker can be terminated from outside. DecoderPool keeps a few decoder workers, gives each
 * decode a deadline, and terminates and replaces a worker that passes it.
 */
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Worker } from "node:worker_threads";
import { DeadlineError, LanemapError, TileDecodeError } from "../errors.js";
import type { Raster } from "../raster/types.js";
import { startWorker } from "../util/index.js";
import { DEFAULT_MAX_PIXELS } from "./decode.js";
import { type WireError, fromWireError } from "./wire.js";

/** Default deadline of one pooled decode: generous for a 100 Mpx LZW tile on a slow shared core. */
export const DEFAULT_DECODE_TIMEOUT_MS = 30_000;

/** Options of one pooled decode. */
export interface IsolatedDecodeOptions {
  /** Pixel budget (width * height); PixelBudgetError above it. Default DEFAULT_MAX_PIXELS. */
  readonly maxPixels?: number;
  /** Deadline of the decode once a worker has it; past it the worker is terminated. */
  readonly timeoutMs?: number;
}

/** Options of a DecoderPool. */
export interface DecoderPoolOptions {
  /** Number of worker threads (default: min(2, available cores)). */
  readonly size?: number;
  /** Default deadline of each decode (default DEFAULT_DECODE_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** Default pixel budget of each decode (default DEFAULT_MAX_PIXELS). */
  readonly maxPixels?: number;
}

/** Main thread -> worker. */
export interface PoolRequest {
  readonly id: number;
  readonly bytes: ArrayBuffer;
  readonly maxPixels: number;
}

/** Worker -> main thread. */
export type PoolReply =
  | { readonly ready: true }
  | { readonly id: number; readonly ok: true; readonly raster: Raster }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

interface Job {
  readonly id: number;
  readonly bytes: ArrayBuffer;
  readonly maxPixels: number;
  readonly timeoutMs: number;
  readonly resolve: (r: Raster) => void;
  readonly reject: (e: unknown) => void;
}

interface Slot {
  readonly worker: Worker;
  ready: boolean;
  job: Job | null;
  timer: NodeJS.Timeout | null;
}

// The worker entry sits beside this module, with this module's extension (.ts under tsx, .js if built).
const workerEntry = new URL(`./pool-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

function positive(name: string, v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a positive number, got ${v}`);
  return v;
}

/**
 * A pool of GeoTIFF decoder workers with per-decode deadlines. Errors come back as the same named
 * classes decodeGeoTiff throws (TileDecodeError, PixelBudgetError); a decode that passes its deadline
 * rejects with a TileDecodeError whose `cause` is a DeadlineError, and its worker is replaced.
 * Idle workers do not keep the process alive; `close()` ends them.
 */
export class DecoderPool {
  private readonly size: number;
  private readonly timeoutMs: number;
  private readonly maxPixels: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(options: DecoderPoolOptions = {}) {
    this.size = Math.floor(positive("size", options.size ?? Math.min(2, availableParallelism())));
    this.timeoutMs = positive("timeoutMs", options.timeoutMs ?? DEFAULT_DECODE_TIMEOUT_MS);
    this.maxPixels = positive("maxPixels", options.maxPixels ?? DEFAULT_MAX_PIXELS);
  }

  /** Number of live worker threads (started lazily, at most `size`). */
  get workerCount(): number {
    return this.slots.length;
  }

  /**
   * Decodes `bytes` in a worker (the caller's bytes are copied, never detached).
   * @throws TileDecodeError (cause DeadlineError past the deadline), PixelBudgetError.
   */
  decode(bytes: Uint8Array, options: IsolatedDecodeOptions = {}): Promise<Raster> {
    if (this.closed) return Promise.reject(new LanemapError("POOL_CLOSED", "the decoder pool is closed"));
    let timeoutMs: number;
    let maxPixels: number;
    try {
      timeoutMs = positive("timeoutMs", options.timeoutMs ?? this.timeoutMs);
      maxPixels = positive("maxPixels", options.maxPixels ?? this.maxPixels);
    } catch (err) {
      return Promise.reject(err);
    }
    // Uint8Array's own slice: a Node Buffer's `slice` would share (and the transfer detach) its pool.
    const copy = Uint8Array.prototype.slice.call(bytes).buffer as ArrayBuffer;
    return new Promise<Raster>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, bytes: copy, maxPixels, timeoutMs, resolve, reject });
      this.pump();
    });
  }

  /** Terminates every worker; pending and running decodes reject with a TileDecodeError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closedError = () => new TileDecodeError("the decoder pool was closed before the tile was decoded");
    for (const job of this.queue.splice(0)) job.reject(closedError());
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.job?.reject(closedError());
      slot.job = null;
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const slot = this.slots.find((s) => s.ready && s.job === null);
      if (slot === undefined) break;
      this.dispatch(slot, this.queue.shift() as Job);
    }
    // Start workers for what is still waiting, beyond those already starting, up to the pool size.
    let starting = this.slots.filter((s) => !s.ready).length;
    while (this.queue.length > starting && this.slots.length < this.size) {
      this.spawn();
      starting++;
    }
  }

  private spawn(): void {
    const worker = startWorker(workerEntry);
    const slot: Slot = { worker, ready: false, job: null, timer: null };
    this.slots.push(slot);
    worker.on("message", (msg: PoolReply) => this.onMessage(slot, msg));
    worker.on("error", (err) => this.onCrash(slot, err));
    worker.on("exit", (code) => this.onCrash(slot, new Error(`decoder worker exited with code ${code}`)));
  }

  private dispatch(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref();
    slot.timer = setTimeout(() => this.onDeadline(slot), job.timeoutMs);
    const req: PoolRequest = { id: job.id, bytes: job.bytes, maxPixels: job.maxPixels };
    slot.worker.postMessage(req, [job.bytes]);
  }

  private settle(slot: Slot): Job | null {
    const job = slot.job;
    slot.job = null;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    // An idle worker must not keep the process alive.
    slot.worker.unref();
    return job;
  }

  private onMessage(slot: Slot, msg: PoolReply): void {
    if ("ready" in msg) {
      slot.ready = true;
      slot.worker.unref();
      this.pump();
      return;
    }
    if (slot.job === null || slot.job.id !== msg.id) return;
    const job = this.settle(slot) as Job;
    if (msg.ok) job.resolve(msg.raster);
    else job.reject(fromWireError(msg.error));
    this.pump();
  }

  private remove(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }

  private onDeadline(slot: Slot): void {
    const job = this.settle(slot);
    this.remove(slot);
    // terminate() stops even a worker stuck in a loop; its replacement starts on the next pump.
    void slot.worker.terminate();
    if (job !== null) {
      const deadline = new DeadlineError(`decoding did not finish within ${job.timeoutMs} ms`);
      job.reject(new TileDecodeError(`decoding timed out after ${job.timeoutMs} ms`, { cause: deadline }));
    }
    if (!this.closed) this.pump();
  }

  private onCrash(slot: Slot, err: unknown): void {
    if (!this.slots.includes(slot)) return;
    const job = this.settle(slot);
    this.remove(slot);
    void slot.worker.terminate();
    const failure = () =>
      new TileDecodeError(`the decoder worker failed: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    job?.reject(failure());
    if (!slot.ready) {
      // A worker that dies before it is ready would die again: fail what waits instead of respawning forever.
      for (const waiting of this.queue.splice(0)) waiting.reject(failure());
      return;
    }
    if (!this.closed) this.pump();
  }
}

let sharedPool: DecoderPool | null = null;

/**
 * Decodes in a shared, lazily started DecoderPool (its idle workers do not keep the process alive), so a
 * hostile file can cost at most `timeoutMs` and never hang the caller.
 * @throws TileDecodeError (cause DeadlineError past the deadline), PixelBudgetError.
 */
export function decodeGeoTiffIsolated(
  bytes: Uint8Array,
  options: IsolatedDecodeOptions = {},
): Promise<Raster> {
  sharedPool ??= new DecoderPool();
  return sharedPool.decode(bytes, options);
}
