/** One deadline-bounded worker pool (main side) and its worker side. */
export { WorkerPool, type RunOptions, type WorkerPoolOptions } from "./worker-pool.js";
export {
  serveJobs,
  transferableBuffers,
  type JobHandler,
  type JobReply,
  type ServeJobsOptions,
} from "./serve-jobs.js";
