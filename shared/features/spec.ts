/**
 * The feature spec: how a model's per-pixel descriptors are made from a tile's bands. A model carries
 * its spec, so whoever applies it later computes exactly the features it was trained on.
 *
 * The base definition is the peer's (../shared/peer/thematic_map.py): every band as float64
 * (stored * scale + offset), then NDVI. Extras are appended in the order declared.
 */
import { z } from "zod";
import { TileInvalidError } from "../errors.js";
import { QualitySpecSchema, type QualitySpec } from "./quality.js";

/** NDWI (McFeeters 1996): (green - nir) / (green + nir), 0 where green + nir == 0. Needs `green`. */
const NdwiExtra = z.object({ kind: z.literal("ndwi") }).strict();

/**
 * Mean or population standard deviation of one base feature (named as in `featureNames`, e.g.
 * "ndvi" or "b4") over the valid pixels of the 3x3 window centred on a pixel; windows are cut at the
 * tile's edges, so an edge pixel's window has 4 or 6 pixels.
 */
const WindowExtra = z.object({ kind: z.enum(["mean3x3", "std3x3"]), of: z.string().min(1) }).strict();

/** One optional feature appended after the bands and NDVI. */
export const FeatureExtraSchema = z.union([NdwiExtra, WindowExtra]);
/** One optional feature appended after the bands and NDVI. */
export type FeatureExtra = z.infer<typeof FeatureExtraSchema>;

const band = z.number().int().min(1).max(65535);

/** Zod schema of a feature spec, including the cross-field checks (bands exist, extras resolve). */
export const FeatureSpecSchema = z
  .object({
    /** Number of bands a tile must have. */
    bands: band,
    /** 1-based band numbers of red and near-infrared (for NDVI). */
    red: band,
    nir: band,
    /** 1-based green band, needed only by the "ndwi" extra. */
    green: band.nullable(),
    extras: z.array(FeatureExtraSchema),
    /**
     * The quality band (QA_PIXEL, SCL) and what it masks: read for the mask, never a feature
     * (shared/features/quality.ts). Absent: only nodata makes a pixel invalid.
     */
    quality: QualitySpecSchema.optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    for (const key of ["red", "nir", "green"] as const) {
      const b = spec[key];
      if (b !== null && b > spec.bands)
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `${key} band ${b} does not exist: the spec has ${spec.bands} bands`,
        });
      if (b !== null && spec.quality && b === spec.quality.band)
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `${key} band ${b} is the quality band, which is never a feature`,
        });
    }
    if (spec.quality && spec.quality.band > spec.bands)
      ctx.addIssue({
        code: "custom",
        path: ["quality", "band"],
        message: `quality band ${spec.quality.band} does not exist: the spec has ${spec.bands} bands`,
      });
    const problem = extrasProblem(spec);
    if (problem !== null) ctx.addIssue({ code: "custom", path: ["extras"], message: problem });
  });

/** How a model's descriptors are made from a tile's bands. */
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;

/** Names of the features an extra may refer to: the bands, NDVI and (when declared) NDWI. */
function baseNames(spec: Pick<FeatureSpec, "bands" | "extras" | "quality">): string[] {
  const names: string[] = [];
  for (let b = 1; b <= spec.bands; b++) if (b !== spec.quality?.band) names.push(`b${b}`);
  names.push("ndvi");
  if (spec.extras.some((e) => e.kind === "ndwi")) names.push("ndwi");
  return names;
}

function extrasProblem(spec: Pick<FeatureSpec, "bands" | "extras" | "green" | "quality">): string | null {
  const bases = new Set(baseNames(spec));
  const seen = new Set<string>();
  for (const e of spec.extras) {
    const name = extraName(e);
    if (seen.has(name)) return `extra "${name}" is declared twice`;
    seen.add(name);
    if (e.kind === "ndwi" && spec.green === null) return 'the "ndwi" extra needs a green band';
    if (e.kind !== "ndwi" && !bases.has(e.of))
      return `extra "${name}" refers to "${e.of}", which is not one of ${[...bases].join(", ")}`;
  }
  return null;
}

function extraName(e: FeatureExtra): string {
  return e.kind === "ndwi" ? "ndwi" : `${e.kind}(${e.of})`;
}

/**
 * Names of the features in the order they appear in a descriptor row: b1..bN (without the quality
 * band), ndvi, extras.
 */
export function featureNames(spec: FeatureSpec): string[] {
  const names: string[] = [];
  for (let b = 1; b <= spec.bands; b++) if (b !== spec.quality?.band) names.push(`b${b}`);
  names.push("ndvi");
  for (const e of spec.extras) names.push(extraName(e));
  return names;
}

/** Number of features per pixel. */
export function featureDim(spec: FeatureSpec): number {
  return spec.bands - (spec.quality ? 1 : 0) + 1 + spec.extras.length;
}

/** Options for `createFeatureSpec`; band numbers are 1-based. */
export interface FeatureSpecOptions {
  red: number;
  nir: number;
  green?: number | null;
  extras?: readonly FeatureExtra[];
  /** The quality band and its mask (shared/features/quality.ts). */
  quality?: QualitySpec;
}

/**
 * A validated feature spec for tiles of `bandCount` bands.
 * @throws TileInvalidError naming the band and the count when a band does not exist, or naming the
 *   extra that cannot be made.
 */
export function createFeatureSpec(bandCount: number, options: FeatureSpecOptions): FeatureSpec {
  for (const key of ["red", "nir", "green"] as const) {
    const b = options[key];
    if (b === undefined || b === null) continue;
    if (!Number.isInteger(b) || b < 1 || b > bandCount)
      throw new TileInvalidError(
        `${key} band ${b} does not exist: the raster has ${bandCount} band${bandCount === 1 ? "" : "s"}`,
      );
  }
  return parseFeatureSpec({
    bands: bandCount,
    red: options.red,
    nir: options.nir,
    green: options.green ?? null,
    extras: [...(options.extras ?? [])],
    ...(options.quality ? { quality: options.quality } : {}),
  });
}

/**
 * Parses and checks a feature spec from untrusted data (a model file, a flag).
 * @throws TileInvalidError naming the offending field.
 */
export function parseFeatureSpec(value: unknown): FeatureSpec {
  const r = FeatureSpecSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join(".") : "spec";
  throw new TileInvalidError(`invalid feature spec: ${where}: ${issue?.message ?? "invalid"}`, {
    cause: r.error,
  });
}

/**
 * Parses the CLI form of extras: a comma-separated list of "ndwi", "mean3x3", "std3x3", optionally
 * with a source, e.g. "mean3x3:ndvi,std3x3:b4". A window extra without a source applies to NDVI.
 * @throws TileInvalidError naming an unknown extra.
 */
export function parseExtras(text: string): FeatureExtra[] {
  const out: FeatureExtra[] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const [kind, of] = item.split(":", 2).map((s) => s.trim());
    if (kind === "ndwi" && of === undefined) out.push({ kind: "ndwi" });
    else if (kind === "mean3x3" || kind === "std3x3") out.push({ kind, of: of || "ndvi" });
    else
      throw new TileInvalidError(
        `unknown feature extra "${item}" (known: ndwi, mean3x3[:feature], std3x3[:feature])`,
      );
  }
  return out;
}
