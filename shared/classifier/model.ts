/**
 * The model artifact: everything needed to classify a tile later, anywhere — the classes and their
 * colours, how features are made, the scaling, k and the raw training samples — as one JSON file
 * whose `version` is a hash of its content, so two workers holding the same version classify alike.
 */
import { createHash } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { z } from "zod";
import { ModelError } from "../errors.js";
import { FeatureSpecSchema, featureDim, type FeatureSpec } from "../features/index.js";
import { MAX_CLASSES } from "./engine.js";

/** The artifact's format tag; a new tag for any incompatible change. */
export const MODEL_FORMAT = "lanemap.model/1";

/**
 * One thematic class: id 1..255 (0 is "not classified" in a class raster). The id is the data
 * directory's class catalogue id (shared/models/catalogue.ts), stable for the name.
 */
export interface ModelClass {
  readonly id: number;
  readonly name: string;
  /** "#rrggbb" */
  readonly colour: string;
}

/** A trained k-NN model. Plain data: it crosses worker and process boundaries as is. */
export interface Model {
  readonly format: typeof MODEL_FORMAT;
  /** First 16 hex digits of the SHA-256 of the canonical JSON of every other field but createdAt. */
  readonly version: string;
  /** ISO 8601. */
  readonly createdAt: string;
  /**
   * Sorted by id; ids are distinct but not necessarily contiguous (catalogue ids; a model trained
   * without a catalogue numbers its sorted class names from 1).
   */
  readonly classes: readonly ModelClass[];
  readonly features: FeatureSpec;
  /** z-score of each feature: (x - mean) / std, std 0 replaced by 1. */
  readonly scaling: { readonly mean: readonly number[]; readonly std: readonly number[] };
  readonly k: number;
  /** Raw (unscaled) training features, `features` dims per sample, and each sample's class id. */
  readonly samples: { readonly x: readonly number[]; readonly y: readonly number[] };
  readonly training: {
    /** Where the labels came from (a file name, "label raster", ...). */
    readonly source: string;
    /** Samples per class name. */
    readonly samplesPerClass: Readonly<Record<string, number>>;
  };
}

/** The model without its version and creation time: what the version hashes. */
export type ModelContent = Omit<Model, "version" | "createdAt">;

const finite = z.number().finite();

/**
 * An array of numbers passing `ok`, checked in one loop: a model's sample arrays hold thousands to
 * hundreds of thousands of numbers, and a zod schema per element (`z.array(finite)`) cost ~40 ms of a
 * Chiapas `lanemap classify` (6,462 values) in a fresh process. The issue names the first bad
 * element's index, as the per-element form did.
 */
function numberArray(ok: (v: number) => boolean, expected: string) {
  // Both issues abort, as a type error does, so the model's cross-field checks never see a bad array.
  return z
    .custom<number[]>((v) => Array.isArray(v), { message: `must be an array of ${expected}`, abort: true })
    .superRefine((v, ctx) => {
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        if (typeof x !== "number" || !ok(x)) {
          ctx.addIssue({
            code: "custom",
            path: [i],
            message: `must hold ${expected}, got ${typeof x === "number" ? String(x) : JSON.stringify(x)}`,
            continue: false,
          });
          return;
        }
      }
    });
}

const ModelSchema = z
  .object({
    format: z.literal(MODEL_FORMAT),
    version: z.string().regex(/^[0-9a-f]{16}$/, "must be 16 lowercase hex digits"),
    createdAt: z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO 8601 time"),
    classes: z
      .array(
        z
          .object({
            id: z.number().int().min(1).max(MAX_CLASSES),
            name: z.string().min(1),
            colour: z.string().regex(/^#[0-9a-f]{6}$/i, "must be #rrggbb"),
          })
          .strict(),
      )
      .min(1)
      .max(MAX_CLASSES),
    features: FeatureSpecSchema,
    scaling: z.object({ mean: z.array(finite), std: z.array(finite.positive()) }).strict(),
    k: z.number().int().min(1),
    samples: z
      .object({
        x: numberArray(Number.isFinite, "finite numbers"),
        y: numberArray(Number.isInteger, "integers"),
      })
      .strict(),
    training: z
      .object({ source: z.string(), samplesPerClass: z.record(z.string(), z.number().int().nonnegative()) })
      .strict(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const issue = (path: (string | number)[], message: string): void => {
      ctx.addIssue({ code: "custom", path, message });
    };
    m.classes.forEach((c, i) => {
      const prev = m.classes[i - 1];
      if (prev !== undefined && c.id <= prev.id)
        issue(["classes", i, "id"], `must be greater than ${prev.id}: classes are sorted by distinct id`);
    });
    const byId = new Map(m.classes.map((c) => [c.id, c]));
    const names = new Set(m.classes.map((c) => c.name));
    if (names.size !== m.classes.length) issue(["classes"], "class names must be distinct");
    const dim = featureDim(m.features);
    if (m.scaling.mean.length !== dim)
      issue(["scaling", "mean"], `must have ${dim} values (one per feature)`);
    if (m.scaling.std.length !== dim) issue(["scaling", "std"], `must have ${dim} values (one per feature)`);
    const n = m.samples.y.length;
    if (m.samples.x.length !== n * dim)
      issue(["samples", "x"], `must have ${n * dim} values (${n} samples of ${dim} features)`);
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const id = m.samples.y[i] as number;
      const cls = byId.get(id);
      if (cls === undefined) {
        issue(["samples", "y", i], `class id ${id} is not one of the model's ${m.classes.length} classes`);
        return;
      }
      counts.set(cls.name, (counts.get(cls.name) ?? 0) + 1);
    }
    if (m.k > n) issue(["k"], `must not exceed the number of samples (${n})`);
    for (const c of m.classes) {
      const declared = m.training.samplesPerClass[c.name];
      const actual = counts.get(c.name) ?? 0;
      if (declared !== actual)
        issue(
          ["training", "samplesPerClass", c.name],
          `must be ${actual} (the samples of class "${c.name}")`,
        );
      if (actual === 0) issue(["samples", "y"], `class "${c.name}" has no samples`);
    }
    for (const name of Object.keys(m.training.samplesPerClass))
      if (!names.has(name)) issue(["training", "samplesPerClass", name], "is not a class of the model");
  });

/** A value JSON.stringify writes the same inside an array as alone (not undefined, not an object). */
function isJsonPrimitive(v: unknown): boolean {
  return v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean";
}

/** JSON with object keys sorted at every level and no whitespace: the form the version hashes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    // A model's sample arrays hold tens of thousands of numbers: one JSON.stringify writes them
    // exactly as the element-by-element form would (150 ms -> a few ms per Chiapas-sized model).
    if (value.every(isJsonPrimitive)) return JSON.stringify(value);
    return `[${value.map(canonicalJson).join(",")}]`;
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The content hash of a model: first 16 hex digits of SHA-256 over its canonical JSON. */
export function modelVersion(content: ModelContent): string {
  const { format, classes, features, scaling, k, samples, training } = content;
  const hashed = { format, classes, features, scaling, k, samples, training };
  return createHash("sha256").update(canonicalJson(hashed)).digest("hex").slice(0, 16);
}

/** Adds version and creation time to a model's content. */
export function sealModel(content: ModelContent, createdAt: Date | string = new Date()): Model {
  const at = typeof createdAt === "string" ? createdAt : createdAt.toISOString();
  return { ...content, version: modelVersion(content), createdAt: at };
}

/**
 * The model as JSON text: one top-level field per line, each value compact (the sample arrays
 * would be hundreds of thousands of lines pretty-printed). `parseModel` reads it back exactly.
 */
export function serializeModel(model: Model): string {
  const ordered: [string, unknown][] = [
    ["format", model.format],
    ["version", model.version],
    ["createdAt", model.createdAt],
    ["classes", model.classes],
    ["features", model.features],
    ["scaling", model.scaling],
    ["k", model.k],
    ["training", model.training],
    ["samples", model.samples],
  ];
  return `{\n${ordered.map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(",\n")}\n}\n`;
}

/**
 * Parses and checks a model from JSON text or an already parsed value, and verifies its version.
 * @throws ModelError naming the offending field, or a version that does not match the content.
 */
export function parseModel(json: string | unknown): Model {
  let value: unknown = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new ModelError(`model is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  const r = ModelSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)";
    throw new ModelError(`model field ${field}: ${issue?.message ?? "invalid"}`, { cause: r.error });
  }
  const model = r.data as Model;
  const expected = modelVersion(model);
  if (model.version !== expected)
    throw new ModelError(
      `model field version: ${model.version} does not match the content (${expected}); the file was changed after training`,
    );
  return model;
}

/**
 * Reads and checks a model file.
 * @throws ModelError when the file cannot be read or is not a valid model.
 */
export async function loadModelFile(path: string, signal?: AbortSignal): Promise<Model> {
  let text: string;
  try {
    text = await readFile(path, { encoding: "utf8", signal });
  } catch (err) {
    throw new ModelError(`cannot read model ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return parseModel(text);
  } catch (err) {
    if (err instanceof ModelError) throw new ModelError(`${path}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Writes a model file atomically (temporary file, then rename), so readers never see half a model. */
export async function saveModelFile(path: string, model: Model, signal?: AbortSignal): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, serializeModel(model), { encoding: "utf8", signal });
  await rename(tmp, path);
}
