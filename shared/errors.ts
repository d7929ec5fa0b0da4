/**
 * Named errors and their closed vocabulary. Every error lanemap throws on purpose is a `LanemapError`
 * whose `code` is a key of `ERROR_CODES`: one table says, per code, the HTTP status serving answers,
 * whether retrying the same input could ever help, the CLI's exit code and what the code means. The
 * serving problem+json mapping, the CLI and the speed lane's retry policy read this table and nothing
 * else, so a new code is one line here (pattern: nats.js `jetstream/src/jserrors.ts`, titiler's
 * `errors.py` status table).
 *
 * Errors cross worker threads and processes (dead letters) as one plain record, `encodeError` /
 * `decodeError`: structured clone keeps only `message` of an Error, and a code outlives a class.
 */

/** One row of the table. */
export interface ErrorSpec {
  /** HTTP status of a problem+json answer carrying this code (RFC 9110 §15). */
  readonly status: number;
  /** True when retrying the same input can never succeed (dead-letter it, don't retry). */
  readonly permanent: boolean;
  /** Exit code of the `lanemap` CLI when a command ends with this error. */
  readonly exit: number;
  /** One line: what the code means. Also the problem `title` when no route gives one. */
  readonly meaning: string;
}

/**
 * The closed vocabulary, one line per code: [HTTP status, permanent or transient, CLI exit code,
 * meaning]. "permanent": the same input fails the same way, so retrying cannot help (the speed lane
 * dead-letters it); "transient": a later try may succeed. Problem `type` slugs are the codes in
 * kebab case. Keep it grouped by where the code arises.
 */
export const ERROR_TABLE = {
  // Tiles and rasters: properties of the input, so permanent.
  TILE_DECODE: [422, "permanent", 1, "the bytes are not a GeoTIFF lanemap can decode"],
  TILE_ENCODE: [500, "permanent", 1, "a raster cannot be written as a GeoTIFF"],
  TILE_INVALID: [422, "permanent", 1, "a decoded tile cannot be used as asked"],
  TILE_CONFLICT: [409, "permanent", 1, "the tile id is archived with other content"],
  PIXEL_BUDGET: [422, "permanent", 1, "the image has more pixels than the budget"],
  DEADLINE: [504, "permanent", 1, "the work did not finish within its deadline"],
  // Transient: a catalogued object the store cannot find is storage that lost sight of it (a
  // diverged replica after node restarts, issue 14), not a bad tile; a later read may find it.
  OBJECT_MISSING: [404, "transient", 1, "a referenced tile object is not in the store"],
  SIDECAR: [422, "permanent", 1, "a tile's JSON sidecar is not valid"],
  CELL: [400, "permanent", 1, "grid cell indices are out of range"],
  RASTER: [500, "transient", 1, "a stored class raster is corrupt"],
  // Models and training.
  MODEL: [422, "permanent", 1, "a model is malformed or does not fit the data"],
  MODEL_NOT_FOUND: [404, "transient", 1, "no model, or not the version asked for"],
  MODEL_CONFLICT: [409, "permanent", 1, "the model version exists with other content"],
  MODEL_REGISTRY: [500, "transient", 1, "the model registry holds a bad entry"],
  TRAINING_DATA: [422, "permanent", 1, "training polygons, points or labels are unusable"],
  // Labels as data and training jobs.
  LABEL_INVALID: [422, "permanent", 1, "a submitted label is not a valid labelled GeoJSON Feature"],
  LABEL_NOT_FOUND: [404, "permanent", 1, "no label with that id in the current label set"],
  LABEL_STORE: [500, "transient", 1, "the label store cannot be read or written"],
  TRAIN_JOB_ACTIVE: [409, "transient", 1, "a training job is already running"],
  TRAIN_JOB_NOT_FOUND: [404, "permanent", 1, "no training job with that id"],
  TRAINING_UNAVAILABLE: [503, "permanent", 1, "this server has no model trainer wired"],
  // Configuration and the command line.
  CONFIG: [500, "permanent", 1, "configuration failed validation"],
  USAGE: [400, "permanent", 2, "bad command-line usage"],
  UNREADABLE: [500, "permanent", 1, "a file or folder cannot be read"],
  INGEST_REFUSED: [422, "permanent", 1, "some files were refused for ingest"],
  INGEST_PUBLISH: [503, "transient", 1, "a tile could not be stored in the ingest stream"],
  // The master archive and its catalogue.
  ARCHIVE_EMPTY: [422, "permanent", 1, "there are no tiles to work on"],
  ARCHIVE_UNREADABLE: [422, "permanent", 1, "no file of the folder could be archived"],
  ARCHIVE_EXISTS: [409, "permanent", 1, "the output folder is not empty"],
  CATALOGUE: [500, "transient", 1, "a catalogue entry is unreadable"],
  // The batch lane.
  BATCH_RUN_ACTIVE: [409, "transient", 1, "a batch run is already active"],
  BATCH_FAILED: [500, "transient", 1, "a batch run failed"],
  BATCH_LEASE_LOST: [
    409,
    "transient",
    1,
    "a batch coordinator lost its lease (not refreshed within its TTL) and stopped before publishing; its checkpoint is kept",
  ],
  BATCH_TILES_FAILED: [500, "transient", 1, "a batch view was published without some tiles"],
  ARCHIVE_OBJECTS_UNREADABLE: [
    503,
    "transient",
    1,
    "catalogued tiles' archive objects cannot be read; the batch run published nothing",
  ],
  BATCH_STALLED: [
    503,
    "transient",
    1,
    "no worker took a task of a stream batch run within LANEMAP_BATCH_STALL_S, or workers held its tasks past their deadline with no result",
  ],
  ORDERING: [400, "permanent", 1, "the processing order cannot be built"],
  WATERMARK: [500, "transient", 1, "the watermark provider gave no usable value"],
  WATERMARK_BACK: [409, "transient", 1, "the published watermark moved back"],
  PUBLISH: [500, "transient", 1, "a batch view could not be published"],
  LOCK: [500, "transient", 1, "the batch lock file cannot be written"],
  ARROW_EXPORT: [500, "permanent", 1, "a view column has no Arrow type"],
  // Views.
  VIEW_NOT_FOUND: [404, "permanent", 1, "no batch view, or not the version asked for"],
  BATCH_VIEW: [500, "transient", 1, "a batch view cannot be opened or is malformed"],
  LIVE_VIEW: [500, "transient", 1, "a live view entry is malformed"],
  DUCKDB: [500, "transient", 1, "DuckDB failed"],
  VIEW_POINTER_CONFLICT: [
    409,
    "transient",
    1,
    "CURRENT moved since it was read (another publish or rollback)",
  ],
  VIEW_IN_USE: [409, "permanent", 1, "the batch view is the current one and cannot be removed"],
  // Shared storage (files or JetStream object store + KV).
  STORAGE: [503, "transient", 1, "shared storage failed (a file system or a JetStream bucket)"],
  // The serving layer's own socket.
  LISTEN: [500, "transient", 1, "the HTTP server cannot listen on its address (in use, not allowed)"],
  // Worker threads and pools.
  WORKER_START: [500, "transient", 1, "a worker thread failed to start"],
  WORKER_CRASHED: [500, "transient", 1, "a worker thread crashed or exited"],
  POOL_CLOSED: [503, "transient", 1, "the worker pool is closed"],
  CANCELLED: [503, "transient", 1, "the work was stopped on purpose"],
  // NATS, JetStream and dead letters.
  NATS_CONNECT: [503, "transient", 1, "NATS is unreachable"],
  NATS_SETUP: [503, "transient", 1, "JetStream streams, buckets or consumers failed"],
  NATS_SERVER: [500, "transient", 1, "the nats-server child process failed"],
  NATS_SERVER_MISSING: [500, "permanent", 1, "nats-server is not installed"],
  MAX_DELIVER: [500, "permanent", 1, "a tile failed on every allowed delivery"],
  DLQ: [500, "transient", 1, "a dead letter cannot be written or read"],
  DLQ_NOT_FOUND: [404, "permanent", 1, "the dead letter does not exist"],
  DLQ_RETRY: [500, "transient", 1, "some dead letters could not be retried"],
  REPLAY_RANGE: [400, "permanent", 1, "the replay range is not in the stream"],
  REPLAY_INCOMPLETE: [409, "permanent", 1, "the ingest stream lacks tiles the catalogue has"],
  // Permanent: the stream stays behind until an operator advances it (`lanemap ops advance-ingest-stream`).
  INGEST_STREAM_BEHIND: [
    409,
    "permanent",
    1,
    "the ingest stream's last sequence is below one lanemap recorded (it was deleted and recreated)",
  ],
  // HTTP answers of serving (problem types).
  BAD_REQUEST: [400, "permanent", 1, "Bad request"],
  INVALID_PARAMETERS: [400, "permanent", 1, "Invalid request parameters"],
  UNAUTHORIZED: [401, "permanent", 1, "Unauthorized"],
  FORBIDDEN: [403, "permanent", 1, "Forbidden"],
  NOT_FOUND: [404, "permanent", 1, "Not found"],
  ROUTE_NOT_FOUND: [404, "permanent", 1, "Not found: no such route"],
  TILE_NOT_FOUND: [404, "permanent", 1, "Not found: no such tile"],
  COLLECTION_NOT_FOUND: [404, "permanent", 1, "Not found: no such STAC collection"],
  RUN_NOT_FOUND: [404, "permanent", 1, "Not found: no such batch run"],
  NO_COVERAGE: [404, "permanent", 1, "Not found: no tile covers the point"],
  SOURCE_NOT_ARCHIVED: [404, "permanent", 1, "Not found: the source tile is not archived"],
  METHOD_NOT_ALLOWED: [405, "permanent", 1, "Method not allowed"],
  NOT_ACCEPTABLE: [406, "permanent", 1, "Not acceptable"],
  CURSOR_EXPIRED: [410, "permanent", 1, "Cursor expired"],
  BODY_TOO_LARGE: [413, "permanent", 1, "Request body too large"],
  UNSUPPORTED_MEDIA_TYPE: [415, "permanent", 1, "Unsupported media type"],
  AREA_TOO_LARGE: [422, "permanent", 1, "Area too large"],
  GEOMETRY_TOO_COMPLEX: [422, "permanent", 1, "Geometry too complex"],
  OPERATOR_DISABLED: [503, "permanent", 1, "Operator endpoints disabled"],
  BATCH_UNAVAILABLE: [503, "permanent", 1, "Batch runs unavailable"],
  TOO_MANY_STREAMS: [503, "transient", 1, "Too many event streams"],
  RENDER_BUSY: [503, "transient", 1, "Too many source images being decoded"],
  // Anything not thrown on purpose: a bug or an unexpected failure; retrying may help.
  INTERNAL: [500, "transient", 1, "an unexpected failure"],
} as const satisfies Record<string, readonly [number, "permanent" | "transient", number, string]>;

/** A code of the closed vocabulary. */
export type ErrorCode = keyof typeof ERROR_TABLE;

/** The table as records: `ERROR_CODES[code].status`, `.permanent`, `.exit`, `.meaning`. */
export const ERROR_CODES: Readonly<Record<ErrorCode, ErrorSpec>> = Object.freeze(
  Object.fromEntries(
    Object.entries(ERROR_TABLE).map(([code, [status, kind, exit, meaning]]) => [
      code,
      Object.freeze({ status, permanent: kind === "permanent", exit, meaning }),
    ]),
  ) as Record<ErrorCode, ErrorSpec>,
);

/** `TILE_NOT_FOUND` -> `tile-not-found`, as a type. */
type Kebab<S extends string> = S extends `${infer A}_${infer B}`
  ? `${Lowercase<A>}-${Kebab<B>}`
  : Lowercase<S>;

/** A problem `type` slug (RFC 9457): an error code in kebab case. */
export type ProblemSlug = Kebab<ErrorCode>;

/** True when `s` is a code of the table. */
export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === "string" && Object.hasOwn(ERROR_TABLE, s);
}

/** The table row of a code. */
export function errorSpec(code: ErrorCode): ErrorSpec {
  return ERROR_CODES[code];
}

/** The problem `type` slug of a code: `TILE_NOT_FOUND` -> `tile-not-found`. */
export function problemSlug(code: ErrorCode): ProblemSlug {
  return code.toLowerCase().replaceAll("_", "-") as ProblemSlug;
}

/** The code of a problem slug: `tile-not-found` -> `TILE_NOT_FOUND`. */
export function codeOfSlug(slug: ProblemSlug): ErrorCode {
  return slug.toUpperCase().replaceAll("-", "_") as ErrorCode;
}

/** The code of any thrown value: its own for a LanemapError, `INTERNAL` for anything else. */
export function errorCode(err: unknown): ErrorCode {
  return err instanceof LanemapError ? err.code : "INTERNAL";
}

/** True when retrying the work that threw `err` can never succeed (the table's `permanent`). */
export function isPermanent(err: unknown): boolean {
  return ERROR_CODES[errorCode(err)].permanent;
}

/** The CLI exit code for a command that ended with `err` (the table's `exit`). */
export function exitCodeOf(err: unknown): number {
  return ERROR_CODES[errorCode(err)].exit;
}

export class LanemapError extends Error {
  /** Stable machine-readable code of the closed vocabulary, e.g. "TILE_DECODE". */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
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

/**
 * A submitted label is unusable; `field` names where, as a path into the submitted JSON
 * (`features[2].properties.class`, `geometry.coordinates`), so an answer can point at it.
 */
export class LabelInvalidError extends LanemapError {
  readonly field: string;
  readonly reason: string;
  constructor(field: string, reason: string, options?: { cause?: unknown }) {
    super("LABEL_INVALID", `${field} ${reason}`, options);
    this.field = field;
    this.reason = reason;
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

/**
 * What the CLI prints after "lanemap: " for a thrown value: "<CODE>: <message>" for a LanemapError,
 * the code first, where an operator grepping a journal or the README's table of codes finds it at
 * a fixed place however long the message (a message that starts with its code already is not
 * doubled); describeError's line for anything else.
 */
export function errorLine(err: unknown): string {
  if (!(err instanceof LanemapError)) return describeError(err);
  const prefix = `${err.code}: `;
  return err.message.startsWith(prefix) ? err.message : prefix + err.message;
}

/**
 * An error as plain data, the one encoding for worker-thread messages and other processes.
 * `code` is a string on the wire: a record from a newer process may carry a code this one lacks.
 */
export interface WireError {
  readonly code: string;
  /** The class name where it was thrown (`TileDecodeError`, `TypeError`, ...). */
  readonly name: string;
  readonly message: string;
  /** PixelBudgetError's numbers. */
  readonly pixels?: number;
  readonly budget?: number;
  readonly stack?: string;
  readonly cause?: WireError;
}

/** Causes nested deeper than this are dropped: a cycle or a pathological chain must not hang the send. */
const MAX_CAUSE_DEPTH = 8;

/**
 * Flattens any thrown value (and its `cause` chain) into plain data: a LanemapError keeps its code,
 * anything else is `INTERNAL` under its own name.
 */
export function encodeError(err: unknown, depth = 0): WireError {
  if (!(err instanceof Error)) return { code: "INTERNAL", name: "Error", message: String(err) };
  const wire: {
    code: string;
    name: string;
    message: string;
    pixels?: number;
    budget?: number;
    stack?: string;
    cause?: WireError;
  } = { code: errorCode(err), name: err.name, message: err.message };
  if (err instanceof PixelBudgetError) {
    wire.pixels = err.pixels;
    wire.budget = err.budget;
  }
  if (err.stack !== undefined) wire.stack = err.stack;
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) wire.cause = encodeError(err.cause, depth + 1);
  return wire;
}

/** The classes `decodeError` rebuilds by name, so `instanceof` works on both sides of a boundary. */
const REBUILT: Readonly<Record<string, (w: WireError, options?: { cause?: unknown }) => LanemapError>> = {
  TileDecodeError: (w, o) => new TileDecodeError(w.message, o),
  PixelBudgetError: (w) => new PixelBudgetError(w.pixels ?? NaN, w.budget ?? NaN),
  TileInvalidError: (w, o) => new TileInvalidError(w.message, o),
  TrainingDataError: (w, o) => new TrainingDataError(w.message, o),
  ModelError: (w, o) => new ModelError(w.message, o),
  ConfigError: (w, o) => new ConfigError(w.message, o),
  DeadlineError: (w, o) => new DeadlineError(w.message, o),
  WorkerStartError: (w, o) => new WorkerStartError(w.message, o),
  WorkerCrashError: (w, o) => new WorkerCrashError(w.message, o),
  PoolClosedError: (w, o) => new PoolClosedError(w.message, o),
};

/**
 * Rebuilds an error from `encodeError`'s record: the named class of this module where one applies,
 * else a LanemapError with the record's code (`INTERNAL` for a code this process does not know) and
 * the original class name. The original stack is kept: it is where the error happened.
 */
export function decodeError(wire: WireError): LanemapError {
  const cause = wire.cause !== undefined ? decodeError(wire.cause) : undefined;
  const options = cause !== undefined ? { cause } : undefined;
  const rebuild = REBUILT[wire.name];
  let err: LanemapError;
  if (rebuild && isErrorCode(wire.code) && wire.code !== "INTERNAL") err = rebuild(wire, options);
  else {
    err = new LanemapError(isErrorCode(wire.code) ? wire.code : "INTERNAL", wire.message, options);
    err.name = wire.name;
  }
  if (wire.stack !== undefined) err.stack = wire.stack;
  return err;
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
