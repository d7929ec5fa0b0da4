/** The tile pipeline both lanes share: describe and register a tile, classify it into a result. */
export {
  FUTURE_ACQUISITION_TOLERANCE_MS,
  acquiredFromFileName,
  describeTile,
  futureAcquisition,
  type DescribeOptions,
  type TileMeta,
} from "./describe.js";
export { readPamSidecar, readSidecar, registerTile } from "./register.js";
export {
  cellOfSubject,
  ingestDescribeOptions,
  ingestTileBytes,
  ingestTileMeta,
  originalIngestSeq,
  pamFromHeader,
  type IngestHeaders,
  type IngestMessage,
  type TileObjects,
} from "./ingest-message.js";
export { classifyRaster, classifyTileBytes, prepareClassifier, type ResultSource } from "./classify.js";
export {
  ClassifierCache,
  runTileJob,
  type ClassifyTileJob,
  type LoadModelJob,
  type ModelRef,
  type TileBytes,
  type TileJob,
  type TileJobResult,
} from "./tile-job.js";
export {
  describeTileDeadline,
  tileDeadline,
  type AnnouncedTileSize,
  type TileDeadline,
  type TileDeadlineRule,
} from "./deadline.js";
export { TilePool, type LoadedTileModel, type TileInput, type TilePoolOptions } from "./tile-pool.js";
export {
  ASSESSMENT_FOLDS,
  ASSESSMENT_TEST_FRACTION,
  assessSamples,
  trainFromRasters,
  type Assessment,
  type TrainFromRastersOptions,
} from "./train-labels.js";
export { runTrainJob, type TrainJob, type TrainJobResult, type TrainTileRef } from "./train-job.js";
export { TrainPool } from "./train-pool.js";
