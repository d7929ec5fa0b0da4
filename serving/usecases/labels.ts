/**
 * Labels as data over HTTP: add (any CRS, validated, one new label-set version per request), list
 * and remove. A bad label answers 422 naming the field in `invalid_params`, as the other endpoints
 * name bad parameters.
 */
import { LabelNotFoundError, LabelStore } from "../../shared/adapters/archive/index.js";
import {
  LabelInvalidError,
  labelInputCrs,
  labelSetGeoJson,
  labelsOutsideFootprints,
  parseLabelFeatures,
  type LonLatBox,
} from "../../shared/index.js";
import type { LabelRemovedBody, LabelsAddedBody } from "../api/label-schemas.js";
import { NotFoundError, ProblemError } from "../errors.js";
import type { ServingContext } from "./context.js";

const stores = new WeakMap<ServingContext, LabelStore>();

/** The label store of the server's data directory. */
export function labelStore(ctx: ServingContext): LabelStore {
  let s = stores.get(ctx);
  if (!s) stores.set(ctx, (s = new LabelStore(ctx.config.dataDir)));
  return s;
}

function labelProblem(err: LabelInvalidError): ProblemError {
  return new ProblemError(422, "label-invalid", "Invalid label", err.message, {
    cause: err,
    extensions: { invalid_params: [{ name: err.field, reason: err.reason }] },
  });
}

/**
 * Validates and stores a Feature or FeatureCollection as one change.
 * @throws ProblemError 422 (label-invalid) naming the field.
 */
export async function addLabels(
  ctx: ServingContext,
  body: unknown,
  author: string,
): Promise<LabelsAddedBody> {
  try {
    const crs = await labelInputCrs(body);
    const store = labelStore(ctx);
    const existingClasses = new Set((await store.read()).labels.map((l) => l.class));
    const drafts = parseLabelFeatures(body, { crs, author, now: new Date().toISOString(), existingClasses });
    const footprints: LonLatBox[] = [];
    for await (const e of ctx.archive.entries()) if (e.boundsWgs84 !== null) footprints.push(e.boundsWgs84);
    const single = !(typeof body === "object" && body !== null && "features" in body);
    const warnings = labelsOutsideFootprints(drafts, footprints, single ? ["the feature"] : undefined);
    const { version, ids } = await store.add(drafts);
    ctx.logger.info(
      { labelSetVersion: version, added: ids.length, warnings: warnings.length },
      "labels added",
    );
    return { ids, labelSetVersion: version, count: ids.length, ...(warnings.length > 0 ? { warnings } : {}) };
  } catch (err) {
    if (err instanceof LabelInvalidError) throw labelProblem(err);
    throw err;
  }
}

/** The label set (the newest, or `version`) as a FeatureCollection. */
export async function listLabels(
  ctx: ServingContext,
  version?: number,
): Promise<ReturnType<typeof labelSetGeoJson>> {
  const store = labelStore(ctx);
  if (version !== undefined) {
    const newest = (await store.read()).version;
    if (version > newest)
      throw new NotFoundError(`there is no label-set version ${version} (newest: ${newest})`);
  }
  return labelSetGeoJson(await store.read(version));
}

/** Removes one label as one change; 404 label-not-found for an id not in the current set. */
export async function removeLabel(
  ctx: ServingContext,
  id: string,
  author: string,
): Promise<LabelRemovedBody> {
  try {
    const { version } = await labelStore(ctx).remove(id, author);
    ctx.logger.info({ labelSetVersion: version, removed: id }, "label removed");
    return { id, labelSetVersion: version };
  } catch (err) {
    if (err instanceof LabelNotFoundError) throw new NotFoundError(err.message, "label-not-found");
    throw err;
  }
}
