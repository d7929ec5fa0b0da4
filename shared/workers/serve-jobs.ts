/**
 * The worker side of WorkerPool: an entry module calls `serveJobs` once with its job handler. The
 * worker runs its setup (load a model, open a store), then says "ready", so the pool's deadlines never
 * count its start-up; a setup that throws is reported as a start failure. Each job's result goes back
 * with its listed buffers transferred, and a job's error as plain data (wire-error.ts): a failing job
 * is a message, never a crashed worker.
 */
import { parentPort, type Transferable } from "node:worker_threads";
import type { FromWorker, ToWorker } from "./protocol.js";
import { toWireError } from "./wire-error.js";

/** A job's result and the buffers to move (not copy) back with it. */
export interface JobReply<R> {
  readonly result: R;
  readonly transfer?: readonly Transferable[];
}

/** What a worker does with one job. */
export type JobHandler<J, R> = (job: J) => JobReply<R> | Promise<JobReply<R>>;

/** Options of serveJobs. */
export interface ServeJobsOptions {
  /** Runs once before the worker says ready; a throw fails the worker's start (WorkerStartError). */
  readonly setup?: () => void | Promise<void>;
}

/**
 * Serves the pool's jobs in this worker thread (one at a time: the pool sends the next only after the
 * result). Call it once, from the entry module.
 * @throws Error when not running in a worker thread.
 */
export function serveJobs<J, R>(handler: JobHandler<J, R>, options: ServeJobsOptions = {}): void {
  const port = parentPort;
  if (port === null) throw new Error("serveJobs must run in a worker thread started by a WorkerPool");
  const post = (msg: FromWorker<R>, transfer: readonly Transferable[] = []) =>
    port.postMessage(msg, transfer);
  void (async () => {
    try {
      await options.setup?.();
    } catch (err) {
      post({ type: "start-failed", error: toWireError(err) });
      return;
    }
    port.on("message", (msg: ToWorker<J>) => {
      void (async () => {
        try {
          const reply = await handler(msg.job);
          post({ type: "done", id: msg.id, result: reply.result }, reply.transfer);
        } catch (err) {
          post({ type: "failed", id: msg.id, error: toWireError(err) });
        }
      })();
    });
    post({ type: "ready" });
  })();
}

/**
 * The buffers of `views` that can be transferred: each view's own ArrayBuffer when the view spans it
 * whole. A view into a larger buffer (a small Node Buffer sits in a shared allocation pool) or over a
 * SharedArrayBuffer is left out: it is copied (or shared) instead, and nothing else is detached.
 */
export function transferableBuffers(...views: readonly ArrayBufferView[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const v of views)
    if (v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength)
      out.add(v.buffer);
  return [...out];
}
