/**
 * The one tile job both lanes run in a worker thread: take the tile's bytes (sent inline by the speed
 * lane, read from the master archive by a batch worker so the run's thread never holds pixels),
 * decode them, compute the descriptors and classify them with the model the job names, into the
 * result both views store (classify.ts). Decode and classification happen in the same thread, so the
 * raster is never handed across a thread boundary; only the small summary and the deflated class
 * raster (transferred) come back.
 *
 * A model travels as its JSON artifact in a SharedArrayBuffer, which every job message shares
 * without copying; each thread parses and builds a version's classifier (kd-tree) once and keeps the
 * two newest, so a hot-swap costs one build per thread and tiles in flight keep their model.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ArchiveStore } from "../adapters/archive/index.js";
import { createClassifier, parseModel, type Classifier } from "../classifier/index.js";
import { ModelError } from "../errors.js";
import type { Lane } from "../view/types.js";
import type { JobReply } from "../workers/index.js";
import { transferableBuffers } from "../workers/index.js";
import type { ClassifiedTile } from "../view/types.js";
import { classifyTileBytes, type ResultSource } from "./classify.js";

/** A model as jobs carry it. */
export interface ModelRef {
  /** The model's version; null in a "model" job that asks for the artifact's own version. */
  readonly version: string | null;
  /** The model JSON (serializeModel), best over a SharedArrayBuffer (shared, not copied per job). */
  readonly artifact: Uint8Array;
}

/** Where a tile's bytes come from. */
export type TileBytes =
  | { readonly kind: "inline"; readonly bytes: Uint8Array }
  /** The object `source.contentHash` of the master archive in `dataDir`. */
  | { readonly kind: "archive"; readonly dataDir: string };

/** Classify one tile. */
export interface ClassifyTileJob {
  readonly kind: "tile";
  readonly model: ModelRef & { readonly version: string };
  readonly lane: Lane;
  readonly source: ResultSource;
  readonly bytes: TileBytes;
  /** Pixel budget of the decode (PixelBudgetError above it). */
  readonly maxPixels: number;
  /** Test hook: sleep this long before the tile (batch crash tests). 0 or absent in production. */
  readonly delayMs?: number;
}

/** Parse, validate and build a model's classifier in this thread, ahead of its tiles. */
export interface LoadModelJob {
  readonly kind: "model";
  readonly model: ModelRef;
}

/** A job of the tile thread. */
export type TileJob = ClassifyTileJob | LoadModelJob;

/** Its result. */
export type TileJobResult =
  | { readonly kind: "tile"; readonly outcome: ClassifiedTile }
  | { readonly kind: "model"; readonly version: string; readonly k: number };

/** The classifiers a thread has built, by model version (the `keep` newest). */
export class ClassifierCache {
  private readonly byVersion = new Map<string, Classifier>();

  constructor(private readonly keep = 2) {}

  /**
   * The classifier of `ref`, built from its artifact on first use.
   * @throws ModelError when the artifact is not a valid model or is another version than `ref` says.
   */
  get(ref: ModelRef): Classifier {
    const known = ref.version === null ? undefined : this.byVersion.get(ref.version);
    if (known) return known;
    // Decoded from a private copy: TextDecoder refuses views over a SharedArrayBuffer.
    const model = parseModel(new TextDecoder().decode(new Uint8Array(ref.artifact)));
    if (ref.version !== null && model.version !== ref.version)
      throw new ModelError(`the artifact stored as ${ref.version} is model ${model.version}`);
    const cached = this.byVersion.get(model.version);
    if (cached) return cached;
    const classifier = createClassifier(model);
    this.byVersion.set(model.version, classifier);
    while (this.byVersion.size > this.keep)
      this.byVersion.delete(this.byVersion.keys().next().value as string);
    return classifier;
  }
}

const archives = new Map<string, ArchiveStore>();

/**
 * Runs one tile job (decode + descriptors + classify, or a model load) and returns its result with
 * the class raster's buffer to transfer.
 * @throws TileDecodeError, PixelBudgetError (the bytes), TileInvalidError (a band count the model
 *   cannot use), ModelError (the artifact), the archive's read errors.
 */
export async function runTileJob(job: TileJob, models: ClassifierCache): Promise<JobReply<TileJobResult>> {
  const classifier = models.get(job.model);
  if (job.kind === "model")
    return { result: { kind: "model", version: classifier.model.version, k: classifier.model.k } };
  if (job.delayMs !== undefined && job.delayMs > 0) await sleep(job.delayMs);
  let bytes: Uint8Array;
  if (job.bytes.kind === "inline") bytes = job.bytes.bytes;
  else {
    const { dataDir } = job.bytes;
    let store = archives.get(dataDir);
    if (!store) archives.set(dataDir, (store = new ArchiveStore(dataDir)));
    bytes = await store.readObject(job.source.contentHash);
  }
  const out = await classifyTileBytes(bytes, classifier, job.source, job.lane, { maxPixels: job.maxPixels });
  // A copy of our own when the raster is a view into a larger (pooled) buffer, so it can be moved.
  const raster =
    transferableBuffers(out.raster).length === 1 ? out.raster : Uint8Array.prototype.slice.call(out.raster);
  return {
    result: { kind: "tile", outcome: { ...out, raster } },
    transfer: transferableBuffers(raster),
  };
}
