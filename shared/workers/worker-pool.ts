/**
 * One deadline-bounded worker pool for every CPU-heavy job of lanemap (GeoTIFF decoding, a tile's
 * decode + classify in either lane). Code that loops forever on a hostile file, or a k-NN search over
 * a huge tile, cannot be interrupted from inside its own thread; a worker can be terminated from
 * outside. So each job gets a deadline, and a worker that passes it (or whose job is aborted) is
 * terminated and replaced; a worker that crashes or exits is replaced too, and only its job fails.
 *
 * The life of a worker: started lazily (or all at once by `warm()`), it loads its modules, runs its
 * setup and says "ready" (serve-jobs.ts); deadlines count from dispatch to a ready worker, never the
 * start-up. A worker that dies before it is ready would die again, so that fails the waiting jobs
 * with a WorkerStartError instead of respawning forever. Idle workers do not keep the process alive.
 *
 * Modelled on geotiff.js's `Pool` (a fixed set of workers, jobs queued when all are busy, an
 * AbortSignal per call) with the deadline and replacement it lacks.
 */
import type { ResourceLimits, Transferable, Worker } from "node:worker_threads";
import {
  DeadlineError,
  PoolClosedError,
  WorkerCrashError,
  WorkerStartError,
  describeError,
} from "../errors.js";
import { startWorker } from "../util/worker.js";
import type { FromWorker, ToWorker } from "./protocol.js";
import { fromWireError } from "./wire-error.js";

/** Options of a WorkerPool. */
export interface WorkerPoolOptions<J = unknown> {
  /** The worker's entry module (.ts or .js), which calls `serveJobs`. */
  readonly entry: URL;
  /** What the workers are, for error messages ("decoder", "tile"). */
  readonly name: string;
  /** Most workers alive at once = most jobs running at once (a positive integer). */
  readonly size: number;
  /** Default deadline of one job from dispatch to result, in milliseconds (> 0). */
  readonly timeoutMs: number;
  /** Passed to every worker (structured clone), read there with `workerPayload()`. */
  readonly workerData?: unknown;
  /** V8 limits per worker: a runaway job kills its worker, not the process. */
  readonly resourceLimits?: ResourceLimits;
  /**
   * Jobs every new worker runs once it is ready and before it takes a queued job, each with the
   * pool's deadline: they bring a replacement up to date (build the models in use) so that this
   * work never counts against a caller's deadline. Their results are dropped and a failed one is
   * skipped (the next real job reports it); a worker that dies or passes the deadline on them has
   * failed to start.
   */
  readonly warmUp?: () => readonly J[];
}

/** Options of one job. */
export interface RunOptions {
  /** Deadline of this job in milliseconds (default the pool's). */
  readonly timeoutMs?: number;
  /**
   * Cancels the job: a queued job is dropped, a running one's worker is terminated and replaced.
   * The job rejects with `signal.reason`.
   */
  readonly signal?: AbortSignal;
  /**
   * Buffers of the job to move to the worker instead of copying (they are detached here afterwards).
   * Not SharedArrayBuffers: those are shared by any message without being listed.
   */
  readonly transfer?: readonly Transferable[];
  /**
   * Queue priority (default 0): a queued job waits behind every queued job of a higher or equal
   * priority and ahead of those of a lower one. The tile pool puts live tiles ahead of batch tiles
   * in a process that serves both lanes (`lanemap worker`). A running job is never pre-empted.
   */
  readonly priority?: number;
}

interface Job<J, R> {
  readonly id: number;
  readonly payload: J;
  readonly transfer: readonly Transferable[];
  readonly timeoutMs: number;
  readonly priority: number;
  readonly resolve: (r: R) => void;
  readonly reject: (e: unknown) => void;
}

interface Slot<J, R> {
  readonly worker: Worker;
  /** Said ready and ran its warm-up jobs: it takes queued jobs. */
  ready: boolean;
  /** Warm-up jobs still to run (see WorkerPoolOptions.warmUp). */
  warming: J[];
  /** Set once the worker is given up (terminated, crashed, closed): its late events are ignored. */
  gone: boolean;
  job: Job<J, R> | null;
  timer: NodeJS.Timeout | null;
  /** Settles when the worker says ready (or fails to start). */
  readonly started: Promise<void>;
  readonly startedResolve: () => void;
  readonly startedReject: (e: unknown) => void;
}

function positive(name: string, v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a positive number, got ${v}`);
  return v;
}

/**
 * A pool of worker threads running jobs of type `J` into results of type `R` (see the module
 * comment). The worker side is `serveJobs` with a handler of the same types.
 */
export class WorkerPool<J, R> {
  private readonly slots: Slot<J, R>[] = [];
  private readonly queue: Job<J, R>[] = [];
  private readonly size: number;
  private readonly timeoutMs: number;
  private nextId = 1;
  private replacedCount = 0;
  private isClosed = false;

  /** @throws RangeError when size is not a positive integer or timeoutMs not a positive number. */
  constructor(private readonly options: WorkerPoolOptions<J>) {
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new RangeError(`size must be a positive integer, got ${options.size}`);
    this.size = options.size;
    this.timeoutMs = positive("timeoutMs", options.timeoutMs);
  }

  /** Live worker threads (starting or ready), at most the pool's size. */
  get workerCount(): number {
    return this.slots.length;
  }

  /** Workers terminated and replaced after a deadline, an abort or a crash. */
  get replaced(): number {
    return this.replacedCount;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Starts workers up to the pool's size and resolves once every one is ready, so the first jobs do
   * not pay the start-up.
   * @throws WorkerStartError when a worker cannot start; PoolClosedError after `close()`.
   */
  async warm(): Promise<void> {
    if (this.isClosed) throw new PoolClosedError(`the ${this.options.name} pool is closed`);
    while (this.slots.length < this.size) this.spawn();
    await Promise.all(this.slots.map((s) => s.started));
  }

  /**
   * Runs `job` on the next free worker and resolves with its result. Jobs wait in order while every
   * worker is busy.
   * @throws what the worker's handler threw, rebuilt as the same named class (wire-error.ts);
   *   DeadlineError past the deadline; WorkerCrashError when the worker died meanwhile;
   *   WorkerStartError when no worker could start; PoolClosedError when the pool is (or gets)
   *   closed first; `signal.reason` when aborted; RangeError for a bad timeoutMs.
   */
  run(job: J, options: RunOptions = {}): Promise<R> {
    if (this.isClosed) return Promise.reject(new PoolClosedError(`the ${this.options.name} pool is closed`));
    let timeoutMs: number;
    try {
      timeoutMs = positive("timeoutMs", options.timeoutMs ?? this.timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<R>((resolve, reject) => {
      const onAbort = () => this.abort(entry, signal?.reason);
      const done = () => signal?.removeEventListener("abort", onAbort);
      const entry: Job<J, R> = {
        id: this.nextId++,
        payload: job,
        transfer: options.transfer ?? [],
        timeoutMs,
        priority: options.priority ?? 0,
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      // Behind every job of its priority or higher (FIFO within a priority), ahead of lower ones.
      const at = this.queue.findIndex((q) => q.priority < entry.priority);
      if (at < 0) this.queue.push(entry);
      else this.queue.splice(at, 0, entry);
      this.pump();
    });
  }

  /**
   * Terminates every worker. Queued and running jobs reject with a PoolClosedError, and so does
   * every later `run`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    const closed = () => new PoolClosedError(`the ${this.options.name} pool was closed`);
    for (const job of this.queue.splice(0)) job.reject(closed());
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      slot.gone = true;
      this.settle(slot)?.reject(closed());
      slot.startedReject(closed());
    }
    await Promise.all(slots.map((s) => s.worker.terminate().catch(() => undefined)));
  }

  private pump(): void {
    if (this.isClosed) return;
    while (this.queue.length > 0) {
      const slot = this.slots.find((s) => s.ready && s.job === null);
      if (slot === undefined) break;
      this.dispatch(slot, this.queue.shift() as Job<J, R>);
    }
    // Start workers for what still waits, beyond those already starting, up to the pool's size.
    let starting = this.slots.filter((s) => !s.ready).length;
    while (this.queue.length > starting && this.slots.length < this.size) {
      this.spawn();
      starting++;
    }
  }

  private spawn(): void {
    const worker = startWorker(this.options.entry, {
      workerData: this.options.workerData,
      ...(this.options.resourceLimits ? { resourceLimits: this.options.resourceLimits } : {}),
    });
    let startedResolve!: () => void;
    let startedReject!: (e: unknown) => void;
    const started = new Promise<void>((res, rej) => {
      startedResolve = res;
      startedReject = rej;
    });
    // Nobody may await `started` (a lazily started worker): its rejection is reported through jobs.
    started.catch(() => undefined);
    const slot: Slot<J, R> = {
      worker,
      ready: false,
      warming: [],
      gone: false,
      job: null,
      timer: null,
      started,
      startedResolve,
      startedReject,
    };
    this.slots.push(slot);
    worker.on("message", (msg: FromWorker<R>) => this.onMessage(slot, msg));
    worker.on("error", (err) => this.onDeath(slot, err));
    worker.on("exit", (code) =>
      this.onDeath(slot, new Error(`the ${this.options.name} worker exited with code ${code}`)),
    );
  }

  private dispatch(slot: Slot<J, R>, job: Job<J, R>): void {
    slot.job = job;
    slot.worker.ref();
    slot.timer = setTimeout(() => this.onDeadline(slot), job.timeoutMs);
    try {
      const msg: ToWorker<J> = { type: "job", id: job.id, job: job.payload };
      slot.worker.postMessage(msg, job.transfer);
    } catch (err) {
      // The job cannot be sent (not cloneable, a detached buffer): its fault, not the worker's.
      this.settle(slot)?.reject(err);
      queueMicrotask(() => this.pump());
    }
  }

  /** Detaches the slot's job (if any) and makes the worker idle: unref'd, no timer. */
  private settle(slot: Slot<J, R>): Job<J, R> | null {
    const job = slot.job;
    slot.job = null;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    // An idle worker must not keep the process alive.
    slot.worker.unref();
    return job;
  }

  private onMessage(slot: Slot<J, R>, msg: FromWorker<R>): void {
    if (slot.gone) return;
    switch (msg.type) {
      case "ready":
        slot.warming = [...(this.options.warmUp?.() ?? [])];
        this.warmUp(slot);
        return;
      case "start-failed":
        this.startFailed(slot, fromWireError(msg.error));
        return;
      case "done":
      case "failed": {
        if (slot.job === null || slot.job.id !== msg.id) return;
        const job = this.settle(slot) as Job<J, R>;
        if (msg.type === "done") job.resolve(msg.result);
        else job.reject(fromWireError(msg.error));
        this.pump();
        return;
      }
    }
  }

  /** Runs the slot's next warm-up job, or makes it ready for queued jobs when none is left. */
  private warmUp(slot: Slot<J, R>): void {
    if (slot.gone) return;
    const payload = slot.warming.shift();
    if (payload === undefined) {
      slot.ready = true;
      slot.worker.unref();
      slot.startedResolve();
      this.pump();
      return;
    }
    const next = () => this.warmUp(slot);
    this.dispatch(slot, {
      id: this.nextId++,
      payload,
      transfer: [],
      timeoutMs: this.timeoutMs,
      priority: 0,
      resolve: next,
      reject: next,
    });
  }

  private onDeath(slot: Slot<J, R>, err: unknown): void {
    if (slot.gone) return;
    if (!slot.ready) {
      this.startFailed(slot, err);
      return;
    }
    this.lose(
      slot,
      new WorkerCrashError(`the ${this.options.name} worker failed: ${describeError(err)}`, { cause: err }),
    );
  }

  private onDeadline(slot: Slot<J, R>): void {
    const job = slot.job;
    if (slot.gone || job === null) return;
    if (!slot.ready) {
      // A warm-up job: a replacement would stall on it again.
      this.settle(slot);
      this.startFailed(slot, new DeadlineError(`its warm-up did not finish within ${job.timeoutMs} ms`));
      return;
    }
    this.lose(
      slot,
      new DeadlineError(`the ${this.options.name} job did not finish within ${job.timeoutMs} ms`),
    );
  }

  private abort(job: Job<J, R>, reason: unknown): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.reject(reason);
      return;
    }
    const slot = this.slots.find((s) => s.job === job);
    if (slot !== undefined) this.lose(slot, reason);
  }

  /** Fails the slot's job with `err`, terminates its worker and starts a replacement. */
  private lose(slot: Slot<J, R>, err: unknown): void {
    const job = this.settle(slot);
    this.retire(slot);
    this.replacedCount++;
    job?.reject(err);
    if (this.isClosed) return;
    // terminate() stops even a worker stuck in a loop; the replacement keeps the pool at strength.
    this.spawn();
    this.pump();
  }

  /** A worker that fails before it is ready would fail again: fail what waits instead. */
  private startFailed(slot: Slot<J, R>, cause: unknown): void {
    this.retire(slot);
    const failure = () =>
      new WorkerStartError(`the ${this.options.name} worker could not start: ${describeError(cause)}`, {
        cause,
      });
    slot.startedReject(failure());
    for (const job of this.queue.splice(0)) job.reject(failure());
  }

  private retire(slot: Slot<J, R>): void {
    slot.gone = true;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    void slot.worker.terminate().catch(() => undefined);
  }
}
