/**
 * The model registry: the one owner of "which models exist and which one is active" that both lanes
 * and serving read. The batch lane applies `active()` on its next run, the speed lane follows
 * `watch()`, serving answers legends and `GET /v1/models` from `list()`/`get()`.
 *
 * Two adapters implement it behind this one interface (pattern: nats.js's transports behind
 * `core/src/transport.ts`): the NATS KV bucket + object store (shared/adapters/nats) when NATS is
 * configured, and files under the data directory (shared/adapters/archive) when it is not. Both keep
 * the same rules:
 * - a version is the model's content hash, so `put` is idempotent and a version never changes;
 * - the artifact is stored before its entry, and the entry before any pointer names it, so the
 *   active pointer never names a model that is not fully stored;
 * - the active pointer carries a revision that grows with every activation (the KV revision, or a
 *   counter in the pointer file), so watchers apply activations in order and skip stale ones.
 */
import { createHash } from "node:crypto";
import type { AccuracyReport } from "../accuracy/index.js";
import { LanemapError } from "../errors.js";
import type { FeatureSpec } from "../features/index.js";
import type { Model, ModelClass } from "../classifier/index.js";
import type { ClassCatalogue } from "./catalogue.js";

/** What the trainer knows about a model beyond its content: who, from which labels, how good. */
export interface ModelMeta {
  /** Who trained it: an operator name, "lanemap train", "lanemap start", a job id ... */
  readonly trainedBy?: string;
  /** Version of the training set / label set it was trained from (opaque to the registry). */
  readonly labelSet?: string;
  /** The accuracy assessment of the model (hold-out or k-fold), when one was made. */
  readonly accuracy?: AccuracyReport;
}

/** What the registry holds about one stored version (small: no samples). */
export interface ModelEntry {
  /** The model's content hash (16 hex digits), see `modelVersion`. */
  readonly version: string;
  /** The model's classes with their catalogue ids and colours, sorted by id. */
  readonly classes: readonly ModelClass[];
  readonly features: FeatureSpec;
  readonly k: number;
  /** Training samples in the model. */
  readonly samples: number;
  /** Samples per class name. */
  readonly samplesPerClass: Readonly<Record<string, number>>;
  /** Where the labels came from (file name, "label raster", ...), from the model. */
  readonly source: string;
  readonly labelSet?: string;
  readonly accuracy?: AccuracyReport;
  /** Who trained it ("unknown" for models stored before the registry recorded it). */
  readonly trainedBy: string;
  /** When the model was trained (ISO 8601, the model's own createdAt). */
  readonly createdAt: string;
  /** When this registry stored it (ISO 8601). */
  readonly storedAt: string;
  /** SHA-256 (hex) and length of the stored artifact bytes (`serializeModel`). */
  readonly sha256: string;
  readonly bytes: number;
}

/** The active model as the pointer says. */
export interface ActiveModelPointer {
  readonly version: string;
  /** ISO 8601. */
  readonly activatedAt: string;
  /** Grows with every activation (never reused), so activations are ordered. */
  readonly revision: number;
}

/** A running watch; `stop()` ends it. */
export interface RegistryWatch {
  stop(): void;
}

/** Which backend holds the registry: for operators' output and logs. */
export type ModelRegistryBackend = "nats" | "files";

/**
 * The model registry. Every method that reads or writes storage is async; none returns a model
 * "newest by file time" — the active pointer is the only answer to "which model".
 */
export interface ModelRegistry {
  readonly backend: ModelRegistryBackend;
  /**
   * Stores a model under its version (idempotent: the same content again is a no-op and keeps the
   * first entry's meta), adding its class names the catalogue lacks. Does not activate it.
   * @throws ModelConflictError when the version is stored with different bytes; ModelError when its
   * class ids disagree with the class catalogue (it was trained against another one).
   */
  put(model: Model, meta?: ModelMeta): Promise<{ readonly entry: ModelEntry; readonly created: boolean }>;
  /**
   * The class catalogue of the deployment: every class name ever stored with its stable id and
   * colour (train with it: `TrainOptions.catalogue`).
   */
  classes(): Promise<ClassCatalogue>;
  /** The entry of a version, or undefined. */
  get(version: string): Promise<ModelEntry | undefined>;
  /**
   * The stored model of a version, its bytes checked against the recorded digest.
   * @throws ModelNotFoundError when the version is not stored; ModelError / LanemapError("MODEL_REGISTRY")
   * when its artifact is corrupt.
   */
  model(version: string): Promise<Model>;
  /**
   * The stored artifact bytes of a version (`serializeModel` text), checked against the digest: what
   * a worker pool hands its threads.
   * @throws ModelNotFoundError when the version is not stored; LanemapError("MODEL_REGISTRY") when
   * the bytes do not match.
   */
  artifact(version: string): Promise<Uint8Array>;
  /** Every stored version, oldest stored first. */
  list(): Promise<ModelEntry[]>;
  /** The active pointer, or null when nothing was activated yet. */
  active(): Promise<ActiveModelPointer | null>;
  /**
   * Points the active pointer at a stored version (a new revision even when it already was active).
   * @throws ModelNotFoundError when the version is not stored.
   */
  activate(version: string): Promise<ActiveModelPointer>;
  /**
   * Calls `onChange` with the active pointer at once (when one exists) and with every later
   * activation, until `stop()`. Callers compare revisions to skip stale ones.
   */
  watch(onChange: (active: ActiveModelPointer | null) => void): Promise<RegistryWatch>;
}

/** The same version was stored before with different bytes; versions are immutable. */
export class ModelConflictError extends LanemapError {
  constructor(version: string) {
    super(
      "MODEL_CONFLICT",
      `model version ${version} is already in the registry with different content; versions are immutable, give the new model a new version`,
    );
  }
}

/** The version is not in the registry (or its artifact is gone). */
export class ModelNotFoundError extends LanemapError {
  constructor(version: string) {
    super("MODEL_NOT_FOUND", `model version ${version} is not in the registry (run \`lanemap model list\`)`);
  }
}

/** Nothing is active yet: no model was activated (train one with --activate, or `lanemap model activate`). */
export class NoActiveModelError extends LanemapError {
  constructor(where: string) {
    super(
      "MODEL_NOT_FOUND",
      `no active model in ${where}: train one (lanemap train ... --activate) or activate a stored version (lanemap model activate VERSION)`,
    );
  }
}

/** SHA-256 (hex) of artifact bytes. */
export function artifactDigest(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The registry entry of a model: its facts (no samples), the trainer's meta and the stored bytes'
 * digest. Pure; both adapters build entries with it so they describe a model alike.
 */
export function modelEntryOf(
  model: Model,
  artifact: Uint8Array,
  meta: ModelMeta = {},
  storedAt = new Date(),
): ModelEntry {
  return {
    version: model.version,
    classes: model.classes,
    features: model.features,
    k: model.k,
    samples: model.samples.y.length,
    samplesPerClass: model.training.samplesPerClass,
    source: model.training.source,
    ...(meta.labelSet === undefined ? {} : { labelSet: meta.labelSet }),
    ...(meta.accuracy === undefined ? {} : { accuracy: meta.accuracy }),
    trainedBy: meta.trainedBy ?? "unknown",
    createdAt: model.createdAt,
    storedAt: storedAt.toISOString(),
    sha256: artifactDigest(artifact),
    bytes: artifact.length,
  };
}

/**
 * The model to apply: `explicit` (a version) when given, else the active one.
 * @throws NoActiveModelError when nothing is active and no version was named; ModelNotFoundError for an
 * unknown version.
 */
export async function resolveActiveModel(
  registry: ModelRegistry,
  explicit?: string,
): Promise<{ readonly model: Model; readonly pointer: ActiveModelPointer | null }> {
  if (explicit !== undefined)
    return { model: await registry.model(explicit), pointer: await registry.active() };
  const pointer = await registry.active();
  if (!pointer) throw new NoActiveModelError(`the ${registry.backend} model registry`);
  return { model: await registry.model(pointer.version), pointer };
}
