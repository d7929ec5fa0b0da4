/** The k-nearest-neighbour classifier: training, the model artifact, prediction and class summaries. */
export { KnnEngine, MAX_CLASSES } from "./engine.js";
export { DEFAULT_LEAF_SIZE, KdTree, referenceKernel, type SearchKernel } from "./kdtree.js";
export { mortonOrder } from "./order.js";
export { defaultColours, parseColour } from "./colours.js";
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
  fillPolygon,
  invertGeoTransform,
  isClockwise,
  pixelAt,
  pointPixel,
  polygonPixels,
  toPixel,
} from "./rasterize.js";
export {
  collectSamples,
  geoJsonCrs,
  labelledGeometries,
  labelsFromGeoJson,
  labelsFromRaster,
  modelFromSamples,
  scalingOf,
  sortClassNames,
  subsetSamples,
  trainModel,
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
  holdoutEvaluation,
  type Evaluation,
  type ValidationOptions,
} from "./evaluate.js";
