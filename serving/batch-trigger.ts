/**
 * How serving starts a batch rebuild without importing the batch lane: infra wraps the batch lane's
 * runner in this interface and injects it (serving/ may not import batch/, and a serving process
 * without a trigger simply answers 503 on the operator endpoint).
 */

/**
 * A progressive publish: the run publishes an interim view once the tiles of `viewport` (WGS 84
 * degrees), or without one the first tiles of its order, carry the new model; every other tile keeps
 * the current view's row (and its model version) until the final view.
 */
export interface InterimRequest {
  readonly viewport?: {
    readonly minLon: number;
    readonly minLat: number;
    readonly maxLon: number;
    readonly maxLat: number;
  };
}

/** The state of a batch run as serving reports it. */
export interface RunStatus {
  readonly runId: string;
  readonly state: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  readonly full?: boolean;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  /** Tiles done and total, while running. */
  readonly progress?: { readonly done: number; readonly total: number };
  /** Tiles that failed to classify so far (while running) or in the end (once finished). */
  readonly failedTiles?: number;
  /** The version the run published, once it succeeded. */
  readonly publishedVersion?: number;
  /** Why the run failed. */
  readonly error?: string;
}

/**
 * Starts and inspects batch runs. `around` is a point of interest (WGS 84): the run processes the
 * tiles nearest it first (hilbert-around order), e.g. the analyst's viewport after a model switch;
 * `interim` asks for a progressive publish (an interim view once the viewport is classified). `trigger` rejects with a BatchRunActiveError (or any error with
 * code "BATCH_RUN_ACTIVE") when a run is active; `status` resolves undefined for an unknown id.
 */
export interface BatchTrigger {
  trigger(opts: {
    full?: boolean;
    around?: { lon: number; lat: number };
    interim?: InterimRequest;
  }): Promise<{ runId: string }>;
  status(runId: string): Promise<RunStatus | undefined>;
}
