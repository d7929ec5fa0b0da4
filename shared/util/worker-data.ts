import { workerData } from "node:worker_threads";

/** The `workerData` a worker was started with through `startWorker`. */
export function workerPayload<T>(): T {
  return (workerData as { __data: T }).__data;
}
