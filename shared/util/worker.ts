/**
 * Starting worker threads on TypeScript or compiled entry points. Run from source, the code base
 * goes through tsx's loader, which a worker does not inherit, so a .ts entry starts from a small
 * JS bootstrap that registers the loader and then imports the real entry. Compiled (dist/), the
 * entry is plain JS and starts directly: no loader, no compile in the thread.
 */
import { Worker, type WorkerOptions } from "node:worker_threads";

const bootstrap = new URL("./worker-bootstrap.js", import.meta.url);

/** Starts a worker on a .ts (or .js) module URL; its `workerPayload()` is `options.workerData`. */
export function startWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const data = { __entry: entry.href, __data: options.workerData };
  return new Worker(entry.pathname.endsWith(".ts") ? bootstrap : entry, { ...options, workerData: data });
}
