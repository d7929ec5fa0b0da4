/** Accuracy assessment: seeded splits, confusion matrix, overall accuracy, kappa, per-class figures. */
export {
  assessAccuracy,
  confusionMatrix,
  type AccuracyReport,
  type ClassAccuracy,
  type ConfusionMatrix,
  type Split,
} from "./accuracy.js";
