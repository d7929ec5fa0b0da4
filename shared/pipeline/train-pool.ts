/**
 * Training jobs in a worker thread, with a deadline (the house WorkerPool over train-thread.ts): one
 * thread, started on the first job, so a server trains without stalling its requests and an idle
 * server pays nothing. A job past its deadline costs its thread, which is replaced.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { WorkerPool } from "../workers/index.js";
import type { TrainJob, TrainJobResult } from "./train-job.js";

// The entry sits beside this module, with this module's extension (.ts under tsx, .js if built).
const entry = new URL(`./train-thread${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** One training thread. */
export class TrainPool {
  private readonly pool: WorkerPool<TrainJob, TrainJobResult>;

  /** `timeoutMs`: the deadline of one job (decode + train + assess). */
  constructor(options: { timeoutMs: number }) {
    this.pool = new WorkerPool<TrainJob, TrainJobResult>({
      entry,
      name: "train",
      size: 1,
      timeoutMs: options.timeoutMs,
    });
  }

  /** Runs one job; `signal` aborts it (the thread is terminated and replaced). */
  run(job: TrainJob, signal?: AbortSignal): Promise<TrainJobResult> {
    return this.pool.run(job, signal ? { signal } : {});
  }

  /** Starts the thread now, so the first job does not pay its start-up. */
  warm(): Promise<void> {
    return this.pool.warm();
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
