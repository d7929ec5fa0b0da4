/**
 * How serving trains a model without owning the work: infra implements this interface over the
 * label store, the archive, a training worker thread and the model registry, and injects it (as the
 * batch runner comes in through BatchTrigger). A serving process without one answers 503 on
 * POST /v1/models.
 */

/** One step of a training job, for progress events. */
export interface TrainProgress {
  readonly phase: "selecting" | "training" | "storing";
  /** One line for a person: what is being done. */
  readonly message: string;
}

/** The accuracy of a trained model as the job reports it (names, not positions). */
export interface TrainAccuracy {
  /**
   * How it was assessed on the label set's samples: "group-folds" (stratified group k-fold, every
   * label feature wholly in one fold; the default), or — when a class has a single label feature —
   * by pixel: "folds" (stratified k-fold) or "holdout"; `note` says why it is not the default.
   */
  readonly method: "group-folds" | "folds" | "holdout";
  /** Folds (k-fold). */
  readonly folds?: number;
  /** Group k-fold: label features per class name. */
  readonly groupsPerClass?: Readonly<Record<string, number>>;
  /** Why the method is not a group 5-fold (fewer folds, or by pixel and so optimistic). */
  readonly note?: string;
  readonly n: number;
  readonly oa: number | null;
  readonly kappa: number | null;
  readonly perClass: readonly {
    readonly name: string;
    readonly f1: number | null;
    readonly producers: number | null;
    readonly users: number | null;
  }[];
}

/** What a finished training job produced. */
export interface TrainOutcome {
  /** The model version (content hash) now in the registry. */
  readonly version: string;
  /** False when the registry already held this exact model (same labels, same tiles). */
  readonly created: boolean;
  readonly labelSetVersion: number;
  readonly classes: readonly { readonly id: number; readonly name: string; readonly colour: string }[];
  readonly samples: number;
  readonly tiles: number;
  readonly k: number;
  /** Null when the samples were too few to assess; `accuracyNote` says why. */
  readonly accuracy: TrainAccuracy | null;
  readonly accuracyNote?: string;
  /** Label features capped, a class or one feature dominating the samples (empty when none). */
  readonly warnings: readonly string[];
  /** Milliseconds per phase: selecting, decode, train, assess, storing. */
  readonly timings: Readonly<Record<string, number>>;
}

/** Trains a model from the current label set. */
export interface ModelTrainer {
  /**
   * Trains from the current label set on the archive's tiles, stores the model (not activated) and
   * resolves with what was stored.
   * @throws TrainingDataError (empty label set, no tile under the labels, too few samples), and the
   * registry's and decoder's errors.
   */
  train(
    options: { readonly k?: number; readonly maxSamplesPerFeature?: number },
    onProgress: (p: TrainProgress) => void,
    signal: AbortSignal,
  ): Promise<TrainOutcome>;
}
