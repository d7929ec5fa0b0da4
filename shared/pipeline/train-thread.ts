/** The worker entry of the training pool (TrainPool, train-pool.ts): serves training jobs. */
import { serveJobs } from "../workers/index.js";
import { runTrainJob, type TrainJob, type TrainJobResult } from "./train-job.js";

serveJobs<TrainJob, TrainJobResult>((job) => runTrainJob(job));
