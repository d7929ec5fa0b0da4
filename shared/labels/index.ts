/** Labels as data: validated labelled geometries and versioned label sets (storage: adapters/archive). */
export {
  LABEL_LIMITS,
  labelFeature,
  labelSetGeoJson,
  labelBox,
  labelsOutsideFootprints,
  labelsPerClass,
  parseLabelFeatures,
  ringSelfIntersection,
  type Label,
  type LabelDraft,
  type LabelGeometry,
  type LabelSet,
  type LonLatBox,
  type ParseLabelOptions,
} from "./labels.js";
export { labelInputCrs } from "./crs.js";
