/** Accuracy assessment: seeded splits, confusion matrix, overall accuracy, kappa, per-class figures. */
export {
  addConfusion,
  assessAccuracy,
  confusionMatrix,
  kFoldSplits,
  stratifiedSplit,
  type AccuracyReport,
  type ClassAccuracy,
  type ConfusionMatrix,
  type Split,
} from "./accuracy.js";
