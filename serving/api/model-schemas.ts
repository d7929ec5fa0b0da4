/**
 * The model registry's answers (GET /v1/models, GET /v1/models/{version}, POST .../activate), kept
 * beside schemas.ts in a module of their own so the model routes stay one small addition to the API.
 */
import { z } from "zod";
import { apiRegistry } from "./schemas.js";

function component<S extends z.ZodType>(id: string, schema: S, description?: string): S {
  apiRegistry.add(schema, description === undefined ? { id } : { id, description });
  return schema;
}

const isoTime = z.string().meta({ format: "date-time" });
const ratio = z.number().min(-1).max(1).nullable();

/** One legend row: a catalogue class id, its name and colour. */
export const ModelClass = component(
  "ModelClass",
  z.object({
    id: z.number().int().min(1).max(255),
    name: z.string(),
    colour: z.string().meta({ description: "#rrggbb" }),
  }),
);

export const ActiveModelPointer = component(
  "ActiveModelPointer",
  z.object({
    version: z.string(),
    activatedAt: isoTime,
    revision: z.number().int().min(1).meta({ description: "grows with every activation" }),
  }),
);

export const ModelAccuracySummary = component(
  "ModelAccuracySummary",
  z.object({
    n: z.number().int().min(0).meta({ description: "assessed samples" }),
    oa: ratio.meta({ description: "overall accuracy" }),
    kappa: ratio.meta({ description: "Cohen's kappa" }),
    perClass: z.array(
      z.object({
        name: z.string(),
        f1: ratio,
        producers: ratio.meta({ description: "producer's accuracy (recall)" }),
        users: ratio.meta({ description: "user's accuracy (precision)" }),
      }),
    ),
  }),
);

export const ModelSummary = component(
  "ModelSummary",
  z.object({
    version: z.string(),
    active: z.boolean(),
    createdAt: isoTime,
    trainedBy: z.string(),
    labelSet: z.string().nullable(),
    k: z.number().int().min(1),
    samples: z.number().int().min(0),
    features: z.array(z.string()),
    classes: z.array(ModelClass),
    accuracy: ModelAccuracySummary.nullable(),
    links: z.array(z.object({ rel: z.string(), href: z.string() })),
  }),
);

export const ModelList = component(
  "ModelList",
  z.object({
    backend: z.enum(["nats", "files"]),
    active: ActiveModelPointer.nullable(),
    models: z.array(ModelSummary),
  }),
);

export const ModelDetail = component(
  "ModelDetail",
  ModelSummary.extend({
    source: z.string().meta({ description: "where the labels came from" }),
    storedAt: isoTime,
    samplesPerClass: z.record(z.string(), z.number().int().min(0)),
    sha256: z.string(),
    bytes: z.number().int().min(0),
  }),
);

export type ModelSummaryBody = z.infer<typeof ModelSummary>;
export type ModelListBody = z.infer<typeof ModelList>;
export type ModelDetailBody = z.infer<typeof ModelDetail>;
export type ActiveModelPointerBody = z.infer<typeof ActiveModelPointer>;
