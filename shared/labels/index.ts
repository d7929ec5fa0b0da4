/** Labels as data: validated labelled geometries and versioned label sets (storage: adapters/archive). */
export {
  LABEL_LIMITS,
  labelFeature,
  labelSetGeoJson,
  labelsPerClass,
  parseLabelFeatures,
  type Label,
  type LabelDraft,
  type LabelGeometry,
  type LabelSet,
  type ParseLabelOptions,
} from "./labels.js";
export { labelInputCrs } from "./crs.js";
