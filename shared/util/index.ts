export { startWorker } from "./worker.js";
export { workerPayload } from "./worker-data.js";
