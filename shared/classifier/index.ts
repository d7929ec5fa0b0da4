/** The k-nearest-neighbour classifier: training, the model artifact, prediction and class summaries. */
export { MAX_CLASSES } from "./engine.js";
export { defaultColours, parseColour } from "./colours.js";
export { invertGeoTransform, toPixel } from "./rasterize.js";
export {
  MODEL_FORMAT,
  canonicalJson,
  loadModelFile,
  modelVersion,
  parseModel,
  saveModelFile,
  sealModel,
  serializeModel,
  type Model,
  type ModelClass,
  type ModelContent,
} from "./model.js";
export {
  DEFAULT_MAX_SAMPLES_PER_FEATURE,
  DOMINANCE_SHARE,
  balanceSamples,
  collectSamples,
  labelsFromGeoJson,
  labelsFromRaster,
  trainModel,
  type BalancedSamples,
  type CollectOptions,
  type CollectedSamples,
  type GeoJsonLabels,
  type LabelCoverage,
  type LabelledGeometry,
  type LabelledPixels,
  type RasterLabels,
  type TrainOptions,
  type TrainingLabels,
  type TrainingSamples,
} from "./training.js";
export { pixelArea, type PixelArea } from "./area.js";
export {
  classSummary,
  classifyFeatures,
  createClassifier,
  type ClassArea,
  type ClassSummary,
  type Classification,
  type ClassifyOptions,
  type Classifier,
} from "./classify.js";
export {
  crossValidation,
  evaluateModel,
  groupsPerClass,
  holdoutEvaluation,
  type Evaluation,
  type ValidationOptions,
} from "./evaluate.js";
