/**
 * NATS adapters: the names of the ingest contract and shared buckets, connecting, the JetStream
 * resources of the speed lane (streams, consumer, tile objects) and their status, the live view,
 * the model registry, the dead-letter queue and the published batch views.
 */
export * from "./names.js";
export {
  connectNats,
  serverMaxPayload,
  NatsConnectError,
  DEFAULT_MAX_PAYLOAD,
  type ConnectNatsOptions,
} from "./connection.js";
export {
  ensureStreams,
  ensureSpeedConsumer,
  ensureTileObjects,
  ensureSpeedResources,
  speedLaneStatus,
  StreamSetupError,
  type StreamLimits,
  type ConsumerSettings,
  type SpeedLaneStatus,
} from "./streams.js";
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
export { LiveView, LiveFollower, liveKey, type LiveEntry, type LiveSnapshot } from "./live-view.js";
export { NatsPublishedViews } from "./nats-views.js";
