/**
 * The worker entry of TilePool (tile-pool.ts): serves tile jobs (tile-job.ts) with this thread's
 * classifier cache.
 */
import { serveJobs } from "../workers/index.js";
import { ClassifierCache, runTileJob, type TileJob, type TileJobResult } from "./tile-job.js";

const models = new ClassifierCache();

serveJobs<TileJob, TileJobResult>((job) => runTileJob(job, models));
