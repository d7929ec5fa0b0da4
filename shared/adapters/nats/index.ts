/**
 * NATS adapters: the names of the ingest contract and shared buckets, connecting, the JetStream
 * resources of the speed lane (streams, consumer, tile objects) and their status, the live view,
 * the model registry, the dead-letter queue, the published batch views, and the replicas of all
 * of them (replicas.ts); what a JetStream failure means (jetstream-errors.ts: not found, storage
 * full, transient).
 */
export * from "./names.js";
export {
  connectNats,
  serverMaxPayload,
  NatsConnectError,
  JetStreamMissingError,
  requireJetStream,
  DEFAULT_MAX_PAYLOAD,
  DRAIN_TIMEOUT_MS,
  drainWithin,
  redactNatsUrl,
  splitUrlCredentials,
  type ConnectNatsOptions,
  type NatsUrlCredentials,
} from "./connection.js";
export {
  ensureStreams,
  ensureSpeedConsumer,
  ensureTileObjects,
  ensureSpeedResources,
  speedLaneStatus,
  advanceIngestStream,
  StreamSetupError,
  type StreamLimits,
  type ConsumerSettings,
  type SpeedLaneStatus,
} from "./streams.js";
export {
  isStreamNotFound,
  isConsumerNotFound,
  isStorageFull,
  isTransientBrokerError,
  isLeaderlessAnswer,
} from "./jetstream-errors.js";
export {
  NatsModelRegistry,
  ModelConflictError,
  ModelNotFoundError,
  type ModelRecord,
  type CurrentModel,
} from "./model-registry.js";
export {
  DeadLetterQueue,
  DeadLetterNotFoundError,
  type DeadLetter,
  type DeadLetterInput,
} from "./dead-letters.js";
export {
  ensureReplicas,
  checkReplicas,
  atReplicas,
  replicasRefusal,
  ReplicasRefusedError,
  PEER_SILENT_OFFLINE_S,
  kvStreamName,
  objectStoreStreamName,
  placementOf,
  lanemapStreamPlacements,
  mergeStreamPages,
  LANEMAP_STREAMS,
  LANEMAP_STREAM_PREFIXES,
  expectedLanemapStreams,
  isViewStream,
  isArchiveStream,
  type MergedStreamListing,
  type StreamListPage,
  type StreamPlacement,
  checkReplicaAgreement,
  copyDisagreement,
  nodeReport,
  replaceReplica,
  prunable,
  pruneToLeader,
  PRUNE_MAX_DELETES,
  placeReplicas,
  replicaShortfall,
  type ReplicaShortfall,
  replicaDivergences,
  type NodeCopies,
  type NodeReport,
  type ReplicaAgreement,
  type ReplicaCopy,
  type ReplicaDivergence,
} from "./replicas.js";
export {
  LiveView,
  LiveFollower,
  liveKey,
  RASTER_PERIOD_GRACE_MS,
  type LiveEntry,
  type LiveSnapshot,
  type RasterReclaim,
} from "./live-view.js";
export {
  deadLetterSeqs,
  ingestStreamRange,
  readIngestMessages,
  tileObjectsReader,
  type IngestStreamRange,
  type ReadIngestOptions,
  type StoredIngestMessage,
} from "./ingest-reader.js";
export {
  NatsTileArchive,
  kvKey,
  archiveUsage,
  COMPACT_GRACE_MS,
  type ArchiveUsage,
  type ArchiveGenerationUsage,
  type CompactionReport,
  type CompactionStep,
} from "./nats-archive.js";
export {
  ensureBatchQueue,
  ensureBatchTaskConsumer,
  BATCH_RESULT_MAX_AGE_S,
  type BatchQueueSettings,
} from "./batch-queue.js";
export {
  RunRecordCache,
  openRunRecords,
  readRunRecord,
  recordRunOver,
  storedBeforeRunOver,
  type ClosedRun,
  type RunEnd,
} from "./batch-runs.js";
export {
  consumerPresence,
  consumerRecovery,
  recoverVanishedConsumer,
  StreamMissingError,
  type ConsumerPresence,
  type ConsumerRecovery,
  type RecoveryHandlers,
  type VanishedConsumer,
} from "./vanished-consumer.js";
export { PullSlot, parseAckSubject, type PulledMsg, type PulledInfo, type PullOptions } from "./pull-slot.js";
export { NatsPublishedViews, type DamagedVersion } from "./nats-views.js";
export {
  BatchLeases,
  HeldBatchLease,
  BatchLeaseHeldError,
  BatchLeaseLostError,
  describeHolder,
  leaseHolderSchema,
  leaseStillHeld,
  refreshPeriodMs,
  type LeaseHolder,
  type LeaseState,
} from "./batch-lease.js";
export {
  retryTransient,
  brokerError,
  DEFAULT_TRANSIENT_RETRY_MS,
  type RetryTransientOptions,
} from "./transient.js";
export {
  boundedObjects,
  CorruptObjectError,
  OBJECT_READ_IDLE_MS,
  putObjectOnce,
  readObjectBytes,
  type ReadObjectOptions,
} from "./object-reads.js";
