/**
 * Schemas of the training-job endpoints (POST /v1/models, GET /v1/jobs/{id}), registered in the
 * API's schema registry like the others in schemas.ts; kept in a module of their own.
 */
import { z } from "zod";
import { apiRegistry } from "./schemas.js";

function component<S extends z.ZodType>(id: string, schema: S): S {
  apiRegistry.add(schema, { id });
  return schema;
}

const ratio = z.number().min(0).max(1).nullable();

export const TrainRequestBody = component(
  "TrainRequestBody",
  z.strictObject({
    k: z
      .number()
      .int()
      .min(1)
      .max(50)
      .optional()
      .meta({ description: "neighbours (default: the active model's k, else 5)" }),
    maxSamplesPerFeature: z.number().int().min(1).max(1_000_000).optional().meta({
      description: "cap of samples drawn from one label feature, by a seeded random subsample (default 2000)",
    }),
  }),
);

export const TrainAccuracySchema = component(
  "TrainAccuracy",
  z.object({
    method: z.enum(["group-folds", "folds", "holdout"]).meta({
      description:
        "group-folds: stratified group k-fold, each label feature wholly in one fold; folds/holdout: by pixel (optimistic), see note",
    }),
    folds: z.number().int().optional(),
    groupsPerClass: z.record(z.string(), z.number().int().min(0)).optional(),
    note: z.string().optional(),
    n: z.number().int().min(0),
    oa: ratio,
    kappa: z.number().nullable(),
    perClass: z.array(z.object({ name: z.string(), f1: ratio, producers: ratio, users: ratio })),
  }),
);

export const TrainOutcomeSchema = component(
  "TrainOutcome",
  z.object({
    version: z.string(),
    created: z.boolean(),
    labelSetVersion: z.number().int().min(1),
    classes: z.array(z.object({ id: z.number().int(), name: z.string(), colour: z.string() })),
    samples: z.number().int().min(0),
    tiles: z.number().int().min(0),
    k: z.number().int().min(1),
    accuracy: TrainAccuracySchema.nullable(),
    accuracyNote: z.string().optional(),
    warnings: z.array(z.string()).meta({
      description: "label features capped, or a class or one feature holding over half the samples",
    }),
    timings: z.record(z.string(), z.number()),
  }),
);

export const TrainJobSchema = component(
  "TrainJob",
  z.object({
    jobId: z.string(),
    state: z.enum(["running", "succeeded", "failed"]),
    phase: z.enum(["selecting", "training", "storing", "done"]),
    message: z.string(),
    startedAt: z.string().meta({ format: "date-time" }),
    finishedAt: z.string().meta({ format: "date-time" }).optional(),
    elapsedMs: z.number().min(0).optional(),
    result: TrainOutcomeSchema.optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  }),
);

export const TrainAccepted = component(
  "TrainAccepted",
  z.object({
    jobId: z.string(),
    status: z.string().meta({ description: "URL of the job's status" }),
    events: z.string().meta({ description: "URL of the event stream that carries `train-job` events" }),
  }),
);

export const ActivateRequestBody = component(
  "ActivateRequestBody",
  z.strictObject({
    around: z
      .strictObject({ lon: z.number().min(-180).max(180), lat: z.number().min(-90).max(90) })
      .optional()
      .meta({
        description:
          "the analyst's viewport centre (WGS 84): a batch run starts at once and reclassifies the tiles nearest it first",
      }),
    bbox: z
      .tuple([
        z.number().min(-180).max(180),
        z.number().min(-90).max(90),
        z.number().min(-180).max(180),
        z.number().min(-90).max(90),
      ])
      .refine((b) => b[0] < b[2] && b[1] < b[3], "must be [minLon, minLat, maxLon, maxLat] with min < max")
      .optional()
      .meta({
        description:
          "the analyst's viewport [minLon, minLat, maxLon, maxLat] (WGS 84): the batch run publishes an interim view as soon as the tiles it shows carry the new model (the rest keep the current view's rows), then the final view; `around` defaults to its centre",
      }),
  }),
);

export const BatchRunAfterActivation = component(
  "BatchRunAfterActivation",
  z.object({
    runId: z.string().nullable(),
    status: z.string().nullable().meta({ description: "URL of the run's status" }),
    skipped: z.string().optional().meta({ description: "why no run was started (one is active, no runner)" }),
  }),
);
