/**
 * The serving layer's public surface: build a server over a config and injected dependencies, and
 * the interface a batch runner is wired in through. See serving/README.md for the endpoints.
 */
export {
  createServer,
  type LanemapServer,
  type Listening,
  type ServerDeps,
  type ServerOptions,
} from "./server.js";
export type { BatchTrigger, InterimRequest, RunStatus } from "./batch-trigger.js";
export type { ModelTrainer, TrainAccuracy, TrainOutcome, TrainProgress } from "./model-trainer.js";
export { BatchRunActiveError, ProblemError, type InvalidParam } from "./errors.js";
