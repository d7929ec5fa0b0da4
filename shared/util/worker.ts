/**
 * Starting worker threads on TypeScript entry points. The code base runs through tsx's loader,
 * which a worker does not inherit, so every worker starts from a small JS bootstrap that
 * registers the loader and then imports the real entry.
 */
import { Worker, type WorkerOptions } from "node:worker_threads";

const bootstrap = new URL("./worker-bootstrap.js", import.meta.url);

/** Starts a worker on a .ts (or .js) module URL; `workerData` reaches it as usual. */
export function startWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const data = { __entry: entry.href, __data: options.workerData };
  return new Worker(bootstrap, { ...options, workerData: data });
}
