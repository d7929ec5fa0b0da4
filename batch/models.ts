/**
 * Which model a batch run applies: the one the model registry says is active (the same pointer the
 * speed lane follows), or the one named explicitly (`--model VERSION|FILE`). Nothing here picks
 * "the newest file": before the registry, the batch lane took the newest artifact by mtime while the
 * speed lane followed NATS, and the two could apply different models to one archive.
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { FileModelRegistry } from "../shared/adapters/archive/index.js";
import {
  LanemapError,
  loadModelFile,
  resolveActiveModel,
  type Model,
  type ModelRegistry,
} from "../shared/index.js";

/** A model version as the registry names it: 16 lowercase hex digits. */
const VERSION = /^[0-9a-f]{16}$/;

/** A stored model version and the band count its feature spec expects. */
export interface ModelLayout {
  readonly version: string;
  readonly bands: number;
  /** True for the registry's active model (the one a batch run applies). */
  readonly active: boolean;
}

/**
 * The band layout of every model in the data directory's registry: what `archive add` checks new
 * tiles against, since a tile no model fits fails every batch run.
 */
export async function modelLayouts(dataDir: string): Promise<ModelLayout[]> {
  const registry = await FileModelRegistry.open(dataDir);
  const current = await registry.active();
  return (await registry.list()).map((e) => ({
    version: e.version,
    bands: e.features.bands,
    active: e.version === current?.version,
  }));
}

/**
 * The model a run applies: `explicit` — a model file (read and checked) or a stored version — else
 * the registry's active model.
 * @throws NoActiveModelError when nothing is active; ModelNotFoundError for an unknown version;
 * LanemapError MODEL_NOT_FOUND for an unreadable file; ModelError for a malformed one.
 */
export async function resolveRunModel(registry: ModelRegistry, explicit?: string): Promise<Model> {
  if (explicit === undefined) return (await resolveActiveModel(registry)).model;
  if (VERSION.test(explicit)) {
    const isFile = await stat(explicit).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!isFile) return registry.model(explicit);
  }
  const path = resolve(explicit);
  try {
    if (!(await stat(path)).isFile()) throw new Error("not a file");
  } catch (cause) {
    throw new LanemapError(
      "MODEL_NOT_FOUND",
      `model file ${path} cannot be read (give a model file or a stored version)`,
      { cause },
    );
  }
  return loadModelFile(path);
}
