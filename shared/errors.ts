/**
 * Named errors. Every error lanemap throws on purpose is a `LanemapError` with a stable `code`
 * (for problem bodies, dead-letter reasons and CLI messages) and keeps its `cause`.
 */
export class LanemapError extends Error {
  /** Stable machine-readable code, e.g. "TILE_DECODE". */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The bytes are not a GeoTIFF we can decode: corrupt, truncated, unsupported or too slow to decode. */
export class TileDecodeError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TILE_DECODE", message, options);
  }
}

/** The image is larger than the configured pixel budget; refused before any pixel is decoded. */
export class PixelBudgetError extends LanemapError {
  readonly pixels: number;
  readonly budget: number;
  constructor(pixels: number, budget: number) {
    super("PIXEL_BUDGET", `image has ${pixels} pixels, over the budget of ${budget}`);
    this.pixels = pixels;
    this.budget = budget;
  }
}

/** A decoded tile cannot be used as asked (no CRS, wrong band count for the model, ...). */
export class TileInvalidError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TILE_INVALID", message, options);
  }
}

/** Training data (polygons, points, label raster) is unusable. */
export class TrainingDataError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TRAINING_DATA", message, options);
  }
}

/** A model artifact is malformed or does not fit the data it is applied to. */
export class ModelError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("MODEL", message, options);
  }
}

/** Configuration (environment, flags, files) failed validation. */
export class ConfigError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("CONFIG", message, options);
  }
}

/** A deadline passed before an operation finished. */
export class DeadlineError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("DEADLINE", message, options);
  }
}

/** Returns a one-line human message for any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split("\n")[0] ?? err.name;
  return String(err);
}

/** A worker thread could not start (its entry module or its setup failed): it would fail again. */
export class WorkerStartError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("WORKER_START", message, options);
  }
}

/** A worker thread died (crashed or exited) while it held a job; the pool replaces it. */
export class WorkerCrashError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("WORKER_CRASHED", message, options);
  }
}

/** A worker pool was closed before the job finished (or the job came after the close). */
export class PoolClosedError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("POOL_CLOSED", message, options);
  }
}
