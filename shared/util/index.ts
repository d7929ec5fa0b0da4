export { startWorker } from "./worker.js";
export { workerPayload } from "./worker-data.js";
export { createRandom, hashSeed, type Random } from "./random.js";
