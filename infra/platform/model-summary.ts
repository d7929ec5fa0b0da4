import { featureNames, utcTimestamp, type Model } from "../../shared/index.js";

/**
 * What `lanemap model list` shows about a version, kept in its registry record. Every uploader
 * (`lanemap model activate`, `lanemap start`) records the same summary, so the list never shows
 * `k=?` for a model the platform uploaded itself.
 */
export function modelSummary(model: Model): Record<string, unknown> {
  return {
    classes: model.classes.map((c) => c.name),
    samples: model.samples.y.length,
    k: model.k,
    features: featureNames(model.features),
    createdAt: utcTimestamp(model.createdAt),
    source: model.training.source,
  };
}
