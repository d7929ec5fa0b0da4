/**
 * The batch lane's public surface: bulk catalogue loads, the batch runner (scheduler, worker pool,
 * view writer, atomic publisher), the cron schedule and view administration. infra and serving import
 * this file only.
 */
export {
  addArchiveFolder,
  quarantines,
  readRunSet,
  resolveWatermark,
  type ArchiveAddOptions,
  type ArchiveAddReport,
  type BadFile,
  type QuarantinedTile,
  type RegisteredFile,
  type RunSet,
  type WatermarkProvider,
  type WatermarkContext,
} from "./catalogue.js";
export {
  createBatchRunner,
  newRunId,
  type BatchRunOptions,
  DEFAULT_INTERIM_TILES,
  type BatchRunner,
  type BatchRunnerDeps,
  type InterimRequest,
  type RunReport,
  type RunState,
  type RunStatus,
} from "./runner.js";
export {
  StreamRangeError,
  readStreamRunSet,
  type StreamRunSet,
  type StreamRunSetOptions,
} from "./stream-run-set.js";
export { scheduleBatchRuns, SCHEDULE_RETRY_DELAYS_MS, type BatchSchedule } from "./cron.js";
export {
  acquireBatchLock,
  batchLockPath,
  liveBatchLockOwner,
  BatchRunningError,
  type BatchLock,
  type LockOptions,
  type LockOwner,
} from "./lock.js";
export { modelLayouts, resolveRunModel, type ModelLayout } from "./models.js";
export {
  ORDER_KINDS,
  centroidOf,
  chooseOrdering,
  orderEntries,
  placeEntries,
  resolveAround,
  type OrderKind,
  type PlacedEntry,
  type Placement,
} from "./ordering.js";
export {
  createProgressSink,
  type ProgressSink,
  type ProgressSinkOptions,
  type RunProgress,
} from "./progress.js";
export {
  applyRetention,
  listViews,
  nextVersionNumber,
  staleLease,
  RESERVE_TRIES,
  publishStagedView,
  rollbackBatchView,
  type ManifestDraft,
  type RetentionReport,
  type ViewListing,
} from "./publisher.js";
export { NO_TEST_HOOKS, type BatchTestHooks } from "./test-hooks.js";
export { listCheckpoints, type CheckpointListing } from "./staging.js";
export { diffBatchViews, type RasterComparison, type ViewDiff } from "./view-diff.js";
export type { TileFailure } from "./view-store.js";
export {
  TileWorkerPool,
  type TileJobOutcome,
  type TileWorkerData,
  type TileWorkerPoolOptions,
} from "./worker-pool.js";
export { openTileExecutor, type ExecutorKind, type TileExecutor, type TileExecutorSpec } from "./executor.js";
export {
  StreamTileExecutor,
  batchQueueSettings,
  DEFAULT_STREAM_WINDOW,
  STREAM_ACK_MARGIN_MS,
  type StreamExecutorOptions,
} from "./stream-executor.js";
export {
  startBatchTaskWorker,
  type BatchTaskEvent,
  type BatchTaskWorker,
  type BatchTaskWorkerDeps,
} from "./task-worker.js";
export { createBatchTaskMetrics, type BatchTaskMetrics, type HandBackReason } from "./task-metrics.js";
