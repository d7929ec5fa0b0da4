export { startWorker } from "./worker.js";
export { workerPayload } from "./worker-data.js";
export { ownerGone, pidAlive, processStartStamp, thisProcessOwner, type ProcessOwner } from "./process.js";
export { utcTimestamp } from "./time.js";
export { PULL_BACKOFF_MAX_MS, pullBackoff, pullBackoffMs } from "./backoff.js";
