/**
 * Operator scripts (`lanemap ops ...`): reconciliation of the two lanes, as functions the CLI calls
 * and tests call directly. Each takes what it touches (data directory, NATS connection, live view)
 * and a pino logger, and returns a report; none of them prints or exits.
 */
export {
  IngestStreamNotEmptyError,
  advanceIngest,
  formatAdvanceIngest,
  type AdvanceIngestOptions,
  type AdvanceIngestReport,
} from "./advance-ingest.js";
export { readBatchCells, type BatchCellResult, type ViewClass } from "./batch-cells.js";
export {
  batchRunsStatus,
  collectBatchRuns,
  describeBatchRuns,
  type AbandonedPart,
  type ActiveRun,
  type BatchRunsInput,
  type BatchRunsStatus,
} from "./batch-runs.js";
export {
  NoBatchViewError,
  classShares,
  compareLanes,
  diffLanes,
  formatDiffCsv,
  type CellDiff,
  type CompareOptions,
  type DiffOptions,
  type DiffReport,
} from "./diff.js";
export {
  WatermarkMovedBackError,
  expireAbsorbed,
  type ExpireOptions,
  type ExpireReport,
  type ExpiredResult,
} from "./expire.js";
export { OPS_EXIT, OPS_EXIT_HELP } from "./exit-codes.js";
export { formatAge, formatDiff, formatExpire, formatReplay, formatStatus } from "./format.js";
export {
  previewDlqRetry,
  previewModelActivate,
  previewRollback,
  type DlqRetryPreview,
  type ModelActivatePreview,
  type RollbackPreview,
} from "./previews.js";
export {
  REPLAY_OF_HEADER,
  ReplayRangeError,
  replayIngest,
  type ReplayOptions,
  type ReplayReport,
  type ReplayedMessage,
} from "./replay.js";
export {
  formatRepairReplicas,
  repairExitCode,
  repairFailures,
  repairReplicas,
  type RepairReplicasOptions,
  type RepairReplicasReport,
  type ReplicaPlacement,
  type ReplicaRepair,
} from "./repair-replicas.js";
export {
  collectStatus,
  degradedReasons,
  divergenceReasons,
  type CurrentBatchStatus,
  type LiveStatus,
  type NatsAccess,
  type OpsStatus,
  type StatusOptions,
} from "./status.js";
