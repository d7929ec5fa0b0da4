/**
 * The model registry as serving answers it: the stored versions with their legends and accuracy,
 * and activation (operator), which switches both lanes — the speed lane at once (its workers watch
 * the pointer), the batch lane on its next run.
 */
import { featureNames, ModelNotFoundError, type ModelEntry, type ModelRegistry } from "../../shared/index.js";
import type {
  ActiveModelPointerBody,
  ModelDetailBody,
  ModelListBody,
  ModelSummaryBody,
} from "../api/model-schemas.js";
import type { ServingContext } from "./context.js";

function summary(e: ModelEntry, activeVersion: string | undefined, base: string): ModelSummaryBody {
  const self = `${base}/v1/models/${e.version}`;
  return {
    version: e.version,
    active: e.version === activeVersion,
    createdAt: e.createdAt,
    trainedBy: e.trainedBy,
    labelSet: e.labelSet ?? null,
    k: e.k,
    samples: e.samples,
    features: featureNames(e.features),
    classes: e.classes.map((c) => ({ id: c.id, name: c.name, colour: c.colour })),
    accuracy: e.accuracy
      ? {
          n: e.accuracy.n,
          oa: e.accuracy.oa,
          kappa: e.accuracy.kappa,
          perClass: e.accuracy.perClass.map((c) => ({
            name: c.name,
            f1: c.f1,
            producers: c.producers,
            users: c.users,
          })),
        }
      : null,
    links: [
      { rel: "self", href: self },
      { rel: "activate", href: `${self}/activate` },
    ],
  };
}

async function registryOf(ctx: ServingContext): Promise<ModelRegistry> {
  return ctx.models();
}

/** GET /v1/models: every stored version, oldest first, with the active pointer. */
export async function listModels(ctx: ServingContext, base: string): Promise<ModelListBody> {
  const registry = await registryOf(ctx);
  const [entries, active] = await Promise.all([registry.list(), registry.active()]);
  return {
    backend: registry.backend,
    active,
    models: entries.map((e) => summary(e, active?.version, base)),
  };
}

/**
 * GET /v1/models/{version}.
 * @throws ModelNotFoundError (404) for a version the registry does not hold.
 */
export async function getModel(ctx: ServingContext, version: string, base: string): Promise<ModelDetailBody> {
  const registry = await registryOf(ctx);
  const [entry, active] = await Promise.all([registry.get(version), registry.active()]);
  if (!entry) throw new ModelNotFoundError(version);
  return {
    ...summary(entry, active?.version, base),
    source: entry.source,
    storedAt: entry.storedAt,
    samplesPerClass: { ...entry.samplesPerClass },
    sha256: entry.sha256,
    bytes: entry.bytes,
  };
}

/**
 * POST /v1/models/{version}/activate (operator).
 * @throws ModelNotFoundError (404) for a version the registry does not hold.
 */
export async function activateModel(ctx: ServingContext, version: string): Promise<ActiveModelPointerBody> {
  const pointer = await (await registryOf(ctx)).activate(version);
  ctx.logger.info({ version, revision: pointer.revision }, "model activated");
  return pointer;
}
