/**
 * The messages between a WorkerPool and its workers (serveJobs). Private to shared/workers: callers
 * see only typed jobs and results.
 */
import type { WireError } from "./wire-error.js";

/** Pool -> worker: run this job. */
export interface ToWorker<J> {
  readonly type: "job";
  readonly id: number;
  readonly job: J;
}

/** Worker -> pool: started (or not), and each job's result or error. */
export type FromWorker<R> =
  | { readonly type: "ready" }
  | { readonly type: "start-failed"; readonly error: WireError }
  | { readonly type: "done"; readonly id: number; readonly result: R }
  | { readonly type: "failed"; readonly id: number; readonly error: WireError };
