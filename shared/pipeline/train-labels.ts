/**
 * Training as a use case both `lanemap train` and the training job (POST /v1/models) call: labels on
 * rasters -> samples -> a model, and the model's accuracy assessment on the same samples.
 *
 * Assessment, for samples that carry their label feature (GeoJSON labels): a seeded stratified group
 * k-fold — every feature wholly in one fold, since a polygon's neighbouring pixels are near-duplicates
 * and a pixel split overstates accuracy — with 5 folds, or as many as the class with the fewest
 * features has when that is 2..4 (the report's `note` says so). When a class has a single feature,
 * or for a label raster (no features), it falls back to the pixel rule, and the note says the figures
 * are optimistic: a seeded stratified k-fold (5 folds) when every class has at least 5 samples and
 * every training part keeps at least k samples; else a seeded stratified hold-out (30 % test) when
 * every class has 2; else none, and the reason says why (one labelled point per class cannot be
 * assessed). Sources: Congalton & Green, "Assessing the Accuracy of Remotely Sensed Data" (stratified
 * reference samples, confusion matrix, OA, kappa); scikit-learn's StratifiedKFold and
 * StratifiedGroupKFold for the fold rules.
 */
import type { Raster } from "../raster/types.js";
import type { FeatureSpec } from "../features/index.js";
import {
  balanceSamples,
  collectSamples,
  crossValidation,
  groupsPerClass,
  holdoutEvaluation,
  type CollectedSamples,
  type Evaluation,
  type Model,
  type TrainingLabels,
  type TrainingSamples,
} from "../classifier/index.js";
import { modelFromSamples } from "../classifier/training.js";
import type { ClassCatalogue } from "../models/index.js";

/** Options of `trainFromRasters`. */
export interface TrainFromRastersOptions {
  readonly features: FeatureSpec;
  /** Neighbours (default 5). */
  readonly k?: number;
  /** Where the labels came from, recorded in the model. */
  readonly source: string;
  /** Tile names for messages (default "tile N"). */
  readonly tileNames?: readonly string[];
  /** Refuse labels outside every tile or classes without samples (see `collectSamples`). */
  readonly strict?: boolean;
  /** Creation time recorded in the model (default now). */
  readonly createdAt?: Date | string;
  /** The deployment's class catalogue: known names keep their ids and colours, new names get new ids. */
  readonly catalogue?: ClassCatalogue;
  /** Cap of samples per label feature (default `DEFAULT_MAX_SAMPLES_PER_FEATURE`), see `balanceSamples`. */
  readonly maxPerFeature?: number;
  /** Seed of the capping subsample (default 1). */
  readonly seed?: number | string;
}

/**
 * Samples and a model from rasters and labels: samples are collected, each label feature capped at
 * `maxPerFeature` (seeded subsample), and `warnings` says what was capped or still dominates.
 * @throws TrainingDataError (no usable sample, fewer samples than k, strict refusals);
 *   TileInvalidError (a tile that does not fit the feature spec).
 */
export function trainFromRasters(
  rasters: readonly Raster[],
  labels: TrainingLabels,
  options: TrainFromRastersOptions,
): { model: Model; samples: CollectedSamples; warnings: readonly string[] } {
  const balanced = balanceSamples(
    collectSamples(rasters, labels, options.features, options.tileNames, {
      strict: options.strict === true,
    }),
    {
      ...(options.maxPerFeature === undefined ? {} : { maxPerFeature: options.maxPerFeature }),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
    },
  );
  const samples = balanced.samples;
  const model = modelFromSamples(samples, {
    features: options.features,
    k: options.k ?? 5,
    source: options.source,
    ...(options.createdAt === undefined ? {} : { createdAt: options.createdAt }),
    ...(options.catalogue === undefined ? {} : { catalogue: options.catalogue }),
  });
  // Labels under clouds or nodata of the scene trained on lose samples silently otherwise (issue 12).
  const lost = (samples.coverage.lostToNodata ?? []).map((l) => {
    const why = [
      ...(l.onNodata > 0 ? [`${l.onNodata} are nodata (scene edge)`] : []),
      ...((l.maskedByQuality ?? 0) > 0 ? [`${l.maskedByQuality} masked by the quality band (clouds)`] : []),
    ];
    return (
      `feature ${l.feature + 1} (class "${l.name}"): of ${l.labelled} labelled pixels, ${why.join(" and ")} ` +
      "on the tiles trained on and gave no sample"
    );
  });
  return { model, samples, warnings: [...lost, ...balanced.warnings] };
}

/** An assessment, or why none was made. */
export type Assessment =
  | {
      readonly made: true;
      readonly evaluation: Evaluation;
      /** Why the assessment is not the default group 5-fold (fewer folds, or by pixel), if it is not. */
      readonly note?: string;
    }
  | { readonly made: false; readonly reason: string };

/** Folds of the k-fold assessment. */
export const ASSESSMENT_FOLDS = 5;
/** Test share of the hold-out assessment. */
export const ASSESSMENT_TEST_FRACTION = 0.3;

/**
 * The accuracy assessment of a model trained with `features` and `k` on `samples` (see the module
 * header for the rule). Deterministic for a seed.
 */
export function assessSamples(
  samples: TrainingSamples,
  options: { readonly features: FeatureSpec; readonly k: number; readonly seed?: number | string },
): Assessment {
  const counts = new Map<number, number>();
  for (const c of samples.y) counts.set(c, (counts.get(c) ?? 0) + 1);
  const smallest = Math.min(...counts.values());
  const n = samples.y.length;
  const seed = options.seed ?? 1;
  const base = { features: options.features, k: options.k, seed };
  if (counts.size < 2) return { made: false, reason: "one class only: accuracy needs two or more" };
  const groups = groupsPerClass(samples);
  const fewest = Object.entries(groups).sort((a, b) => a[1] - b[1])[0];
  let note: string | undefined;
  if (fewest !== undefined) {
    const [name, g] = fewest;
    const folds = Math.min(ASSESSMENT_FOLDS, g);
    // Each training part keeps every group but one fold's; the smallest such part must hold k samples.
    if (folds >= 2 && Math.floor((n * (folds - 1)) / folds) >= options.k) {
      const evaluation = crossValidation(samples, { ...base, folds, grouped: true });
      const trainMin = Math.min(...(evaluation.folds ?? []).map((f) => n - f.n));
      if (trainMin >= options.k)
        return folds === ASSESSMENT_FOLDS
          ? { made: true, evaluation }
          : {
              made: true,
              evaluation,
              note: `group ${folds}-fold, not ${ASSESSMENT_FOLDS}: class "${name}" has only ${g} label features`,
            };
    }
    note =
      `by pixel, not by label feature: class "${name}" has ${g} label feature${g === 1 ? "" : "s"}, ` +
      "so pixels of one feature are both trained on and tested, and the figures are optimistic";
  } else note = "by pixel: a label raster has no label features, so the figures may be optimistic";
  // Each training part of k folds holds about (folds - 1) / folds of the samples.
  if (
    smallest >= ASSESSMENT_FOLDS &&
    Math.floor((n * (ASSESSMENT_FOLDS - 1)) / ASSESSMENT_FOLDS) >= options.k
  )
    return { made: true, evaluation: crossValidation(samples, { ...base, folds: ASSESSMENT_FOLDS }), note };
  if (smallest >= 2 && Math.floor(n * (1 - ASSESSMENT_TEST_FRACTION)) >= options.k)
    return {
      made: true,
      evaluation: holdoutEvaluation(samples, { ...base, testFraction: ASSESSMENT_TEST_FRACTION }),
      note,
    };
  return {
    made: false,
    reason: `too few samples to assess: the smallest class has ${smallest} (a hold-out needs 2 per class and ${options.k} to train on)`,
  };
}
