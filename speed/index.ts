/**
 * The speed lane: JetStream consumers that classify fresh tiles within moments and write them to
 * the live view, dead letters for tiles that cannot be classified, and the producer side of the
 * ingest contract. See speed/README.md.
 */
export {
  publishTile,
  checkTileMeta,
  type PublishTileMeta,
  type PublishTileOptions,
  type PublishedTile,
} from "./publish.js";
export { startSpeedWorker, type SpeedWorker, type SpeedWorkerDeps } from "./worker.js";
export { type SpeedWorkerHooks, type ClassifiedEvent } from "./pipeline.js";
export { ActiveModel, type LoadedModel, type ModelPreparer } from "./active-model.js";
export { createSpeedMetrics, type SpeedMetrics } from "./metrics.js";
export { EventHub, type SpeedEvent } from "./events.js";
export type {
  TileClassifiedEvent,
  TileDuplicateEvent,
  TileRemovedEvent,
  TileFailedEvent,
  TileRetryEvent,
  ModelActivatedEvent,
  ModelFailedEvent,
  WaitingForModelEvent,
  ConsumerErrorEvent,
  ConsumerRecreatedEvent,
  StreamLostEvent,
  StoppedEvent,
} from "./events.js";
