export { startWorker } from "./worker.js";
export { workerPayload } from "./worker-data.js";
export { pidAlive } from "./process.js";
export { utcTimestamp } from "./time.js";
export { PULL_BACKOFF_MAX_MS, pullBackoff, pullBackoffMs } from "./backoff.js";
