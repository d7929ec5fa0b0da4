/**
 * Accuracy of k-NN models on labelled samples: a given model against reference samples, a seeded
 * stratified hold-out (train on one part, test on the other) or a stratified k-fold
 * cross-validation. Classes are matched by name, so a model and a reference numbered differently
 * (polygons named "forest" vs a label raster's 1) compare correctly once their names agree.
 */
import {
  addConfusion,
  assessAccuracy,
  confusionMatrix,
  kFoldSplits,
  stratifiedGroupKFoldSplits,
  stratifiedSplit,
} from "../accuracy/accuracy.js";
import type { AccuracyReport, ConfusionMatrix } from "../accuracy/index.js";
import { TrainingDataError } from "../errors.js";
import type { FeatureSpec } from "../features/index.js";
import { createClassifier } from "./classify.js";
import type { Model } from "./model.js";
import { modelFromSamples, subsetSamples, type TrainingSamples } from "./training.js";

/** An accuracy report with how it was obtained. */
export interface Evaluation extends AccuracyReport {
  /**
   * "group-folds": stratified group k-fold, every label feature wholly in one fold; "folds": the
   * samples (pixels) themselves dealt to folds, optimistic when pixels of one feature are alike.
   */
  readonly method: "model" | "holdout" | "folds" | "group-folds";
  /** Group k-fold: label features (groups) per class name. */
  readonly groupsPerClass?: Readonly<Record<string, number>>;
  /** Class names, in the order of the confusion matrix's labels. */
  readonly classNames: readonly string[];
  /** Samples the models were trained on (hold-out and folds; the given model's otherwise). */
  readonly trainSamples: number;
  /** Per fold, for cross-validation. */
  readonly folds?: readonly {
    readonly oa: number | null;
    readonly kappa: number | null;
    readonly n: number;
  }[];
}

/** The samples at `indices`: their class ids, and the model's predictions in the samples' numbering. */
function predictAs(
  model: Model,
  samples: TrainingSamples,
  indices: Int32Array,
): { reference: Int32Array; predicted: Int32Array } {
  const sub = subsetSamples(samples, indices);
  const { classes } = createClassifier(model).classifyFeatures(sub.x, indices.length);
  // The model was trained on a subset of these samples, so its classes are among theirs.
  const sampleId = new Map(samples.classNames.map((n, i) => [n, i + 1]));
  // By class id, not position: a model's ids are catalogue ids and may have gaps.
  const predictedId = new Map(model.classes.map((c) => [c.id, sampleId.get(c.name) as number]));
  const predicted = Int32Array.from(classes, (c) => (c === 0 ? 0 : (predictedId.get(c) as number)));
  return { reference: sub.y, predicted };
}

function labelsOf(samples: TrainingSamples): number[] {
  return samples.classNames.map((_, i) => i + 1);
}

/**
 * Accuracy of `model` on reference samples (collected with the model's feature spec).
 * @throws TrainingDataError when a reference class is not one of the model's classes.
 */
export function evaluateModel(model: Model, reference: TrainingSamples): Evaluation {
  const known = new Set(model.classes.map((c) => c.name));
  const unknown = reference.classNames.filter((n) => !known.has(n));
  if (unknown.length > 0)
    throw new TrainingDataError(
      `reference class${unknown.length > 1 ? "es" : ""} ${unknown.map((n) => `"${n}"`).join(", ")} ` +
        `${unknown.length > 1 ? "are" : "is"} not in the model (${model.classes.map((c) => c.name).join(", ")}); ` +
        "name label raster values with --label-names",
    );
  // Model classes absent from the reference get columns too, so every prediction is counted.
  const extra = model.classes.filter((c) => !reference.classNames.includes(c.name));
  const names = [...reference.classNames, ...extra.map((c) => c.name)];
  const extraId = new Map(extra.map((c, i) => [c.name, reference.classNames.length + i + 1]));
  // By class id, not position: a model's ids are catalogue ids and may have gaps.
  const modelToCol = new Map(
    model.classes.map((c) => [
      c.id,
      reference.classNames.indexOf(c.name) + 1 || (extraId.get(c.name) as number),
    ]),
  );
  const { classes } = createClassifier(model).classifyFeatures(reference.x, reference.y.length);
  const predicted = Int32Array.from(classes, (c) => (c === 0 ? 0 : (modelToCol.get(c) as number)));
  const cm = confusionMatrix(
    reference.y,
    predicted,
    names.map((_, i) => i + 1),
  );
  return {
    ...assessAccuracy(cm, names),
    method: "model",
    classNames: names,
    trainSamples: model.samples.y.length,
  };
}

/**
 * Distinct label features (groups) per class name; empty when the samples carry no groups.
 */
export function groupsPerClass(samples: TrainingSamples): Record<string, number> {
  const out: Record<string, number> = {};
  const group = samples.group;
  if (group === undefined) return out;
  const seen = samples.classNames.map(() => new Set<number>());
  for (let i = 0; i < samples.y.length; i++) seen[(samples.y[i] as number) - 1]?.add(group[i] as number);
  samples.classNames.forEach((name, i) => (out[name] = (seen[i] as Set<number>).size));
  return out;
}

/** Options of hold-out and cross-validation: how the models under test are made. */
export interface ValidationOptions {
  readonly features: FeatureSpec;
  readonly k: number;
  readonly seed: number | string;
}

/**
 * Seeded stratified hold-out: trains on 1 - testFraction of every class, tests on the rest.
 * @throws TrainingDataError when the training part has fewer samples than k.
 */
export function holdoutEvaluation(
  samples: TrainingSamples,
  options: ValidationOptions & { readonly testFraction: number },
): Evaluation {
  const split = stratifiedSplit(samples.y, options.testFraction, options.seed);
  const model = modelFromSamples(subsetSamples(samples, split.train), {
    features: options.features,
    k: options.k,
    source: "hold-out",
    createdAt: new Date(0),
  });
  const { reference, predicted } = predictAs(model, samples, split.test);
  const cm = confusionMatrix(reference, predicted, labelsOf(samples));
  return {
    ...assessAccuracy(cm, samples.classNames),
    method: "holdout",
    classNames: samples.classNames,
    trainSamples: split.train.length,
  };
}

/**
 * Seeded stratified k-fold cross-validation: every sample is tested once, by a model trained on the
 * other folds; the report is of the pooled confusion matrix, with per-fold figures. `grouped` splits
 * by label feature (`samples.group`, scikit-learn's StratifiedGroupKFold rule) instead of by sample.
 * @throws RangeError when the folds do not fit the samples.
 * @throws TrainingDataError when a fold has fewer samples than k, or `grouped` without groups.
 */
export function crossValidation(
  samples: TrainingSamples,
  options: ValidationOptions & { readonly folds: number; readonly grouped?: boolean },
): Evaluation {
  const grouped = options.grouped === true;
  if (grouped && samples.group === undefined)
    throw new TrainingDataError("a grouped cross-validation needs the samples' label features (group)");
  const splits = grouped
    ? stratifiedGroupKFoldSplits(samples.y, samples.group as Int32Array, options.folds, options.seed)
    : kFoldSplits(samples.y, options.folds, options.seed);
  const labels = labelsOf(samples);
  let pooled: ConfusionMatrix | null = null;
  const folds: { oa: number | null; kappa: number | null; n: number }[] = [];
  let trained = 0;
  for (const split of splits) {
    const model = modelFromSamples(subsetSamples(samples, split.train), {
      features: options.features,
      k: options.k,
      source: "cross-validation",
      createdAt: new Date(0),
    });
    const { reference, predicted } = predictAs(model, samples, split.test);
    const cm = confusionMatrix(reference, predicted, labels);
    const r = assessAccuracy(cm);
    folds.push({ oa: r.oa, kappa: r.kappa, n: r.n });
    pooled = pooled === null ? cm : addConfusion(pooled, cm);
    trained += split.train.length;
  }
  return {
    ...assessAccuracy(pooled as ConfusionMatrix, samples.classNames),
    method: grouped ? "group-folds" : "folds",
    classNames: samples.classNames,
    trainSamples: Math.round(trained / splits.length),
    folds,
    ...(grouped ? { groupsPerClass: groupsPerClass(samples) } : {}),
  };
}
