/** Per-pixel descriptors: the feature spec a model carries and the pure functions that apply it. */
export {
  FeatureExtraSchema,
  FeatureSpecSchema,
  createFeatureSpec,
  featureDim,
  featureNames,
  parseExtras,
  parseFeatureSpec,
  type FeatureExtra,
  type FeatureSpec,
  type FeatureSpecOptions,
} from "./spec.js";
export { computeFeatures, type FeatureMatrix } from "./compute.js";
export {
  LANDSAT_DEFAULT_MASK,
  LANDSAT_QA_PIXEL_BITS,
  QualitySpecSchema,
  SENTINEL2_DEFAULT_MASK,
  SENTINEL2_SCL_MAX,
  applyQualityMask,
  parseQualityOption,
  qaPixelBits,
  type LandsatQaFlag,
  type QualitySpec,
} from "./quality.js";
