/**
 * Quality masks: a tile's quality band (Landsat Collection 2 QA_PIXEL, Sentinel-2 L2A SCL) says which
 * pixels saw clouds, shadows or fill. A model's feature spec declares the band and what it masks; the
 * band is read for the mask and never becomes a feature. A masked pixel is invalid exactly like a
 * nodata pixel: it gets class 0 ("not classified"), so the per-pixel composite
 * (shared/view/composite.ts) takes that pixel from an older acquisition.
 *
 * Sources of the codes:
 * - QA_PIXEL bits: USGS, "Landsat 8-9 Collection 2 (C2) Level 2 Science Product (L2SP) Guide",
 *   LSDS-1619, Table 6-3 (the same bits in the Landsat 4-7 guide, LSDS-1618): bit 0 fill, 1 dilated
 *   cloud, 2 cirrus (Landsat 8-9 only), 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water; bits 8-15
 *   are two-bit confidences, which a mask of flags does not need.
 * - SCL classes: ESA, "Sentinel-2 Products Specification Document" (S2-PDGS-TAS-DI-PSD), Level-2A
 *   Scene Classification: 0 no data, 1 saturated or defective, 2 dark area pixels / topographic
 *   shadow, 3 cloud shadows, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium
 *   probability, 9 cloud high probability, 10 thin cirrus, 11 snow or ice.
 */
import { z } from "zod";
import type { BandArray } from "../raster/types.js";

/** QA_PIXEL flags by bit position (LSDS-1619 Table 6-3). */
export const LANDSAT_QA_PIXEL_BITS = {
  fill: 0,
  "dilated-cloud": 1,
  cirrus: 2,
  cloud: 3,
  "cloud-shadow": 4,
  snow: 5,
  clear: 6,
  water: 7,
} as const;
/** A QA_PIXEL flag name. */
export type LandsatQaFlag = keyof typeof LANDSAT_QA_PIXEL_BITS;

/** The usual cloud mask: fill, dilated cloud, cirrus, cloud and cloud shadow (snow is kept). */
export const LANDSAT_DEFAULT_MASK: readonly LandsatQaFlag[] = [
  "fill",
  "dilated-cloud",
  "cirrus",
  "cloud",
  "cloud-shadow",
];
/** The usual SCL mask: no data, defective, cloud shadow, cloud medium/high probability, thin cirrus. */
export const SENTINEL2_DEFAULT_MASK: readonly number[] = [0, 1, 3, 8, 9, 10];

const band = z.number().int().min(1).max(65535);
const qaFlag = z.enum(Object.keys(LANDSAT_QA_PIXEL_BITS) as [LandsatQaFlag, ...LandsatQaFlag[]]);

/** Zod schema of a quality band declaration (part of FeatureSpecSchema). */
export const QualitySpecSchema = z.discriminatedUnion("kind", [
  z
    .object({
      /** 1-based band holding Landsat Collection 2 QA_PIXEL bit flags. */
      band,
      kind: z.literal("landsat-c2-qa-pixel"),
      /** Flags that make a pixel invalid. */
      mask: z.array(qaFlag).min(1),
    })
    .strict(),
  z
    .object({
      /** 1-based band holding Sentinel-2 L2A scene classification codes. */
      band,
      kind: z.literal("sentinel2-scl"),
      /** SCL classes that make a pixel invalid. */
      classes: z.array(z.number().int().min(0).max(11)).min(1),
    })
    .strict(),
]);
/** Which band is the quality band and what it masks. */
export type QualitySpec = z.infer<typeof QualitySpecSchema>;

/** The 16-bit AND mask of a QA_PIXEL flag list. */
export function qaPixelBits(flags: readonly LandsatQaFlag[]): number {
  let bits = 0;
  for (const f of flags) bits |= 1 << LANDSAT_QA_PIXEL_BITS[f];
  return bits;
}

/** Highest Sen2Cor scene class (11 snow or ice); SCL codes are 0..11. */
export const SENTINEL2_SCL_MAX = 11;

/**
 * Clears `valid[p]` for every pixel `p` of `qa[start + p]` that the quality spec masks, and returns
 * how many valid pixels it cleared. A NaN quality value masks too (it says nothing). An SCL value
 * outside Sen2Cor's codes 0..11 (255, -1, 12: a nodata fill of a warped or mosaicked product, or not
 * an SCL band at all) masks as well: L2A's own nodata is class 0, which the default mask lists, and
 * a code that names no scene class cannot vouch for the pixel.
 */
export function applyQualityMask(spec: QualitySpec, qa: BandArray, start: number, valid: Uint8Array): number {
  const n = valid.length;
  let masked = 0;
  if (spec.kind === "landsat-c2-qa-pixel") {
    const bits = qaPixelBits(spec.mask);
    for (let p = 0; p < n; p++) {
      const v = qa[start + p] as number;
      if (valid[p] === 1 && (v !== v || (v & bits) !== 0)) {
        valid[p] = 0;
        masked++;
      }
    }
  } else {
    const set = new Uint8Array(256);
    for (const c of spec.classes) set[c] = 1;
    for (let p = 0; p < n; p++) {
      const v = qa[start + p] as number;
      // `!(v >= 0 && v <= 11)` is true for NaN too; integer arrays hold whole numbers only.
      if (valid[p] === 1 && (!(v >= 0 && v <= SENTINEL2_SCL_MAX) || set[v] === 1)) {
        valid[p] = 0;
        masked++;
      }
    }
  }
  return masked;
}

/**
 * Parses the CLI form of a quality band: `BAND:landsat-c2-qa-pixel[:flag+flag...]` or
 * `BAND:sentinel2-scl[:3+8+9+10]`; without a list the default mask of the kind applies.
 * @throws Error naming the part that does not parse (the caller wraps it in its usage error).
 */
export function parseQualityOption(text: string): QualitySpec {
  const [b, kind, list] = text.split(":", 3).map((s) => s.trim());
  const bandNo = Number(b);
  const items = list ? list.split("+").map((s) => s.trim()) : [];
  const value =
    kind === "landsat-c2-qa-pixel"
      ? { band: bandNo, kind, mask: items.length ? items : [...LANDSAT_DEFAULT_MASK] }
      : kind === "sentinel2-scl"
        ? { band: bandNo, kind, classes: items.length ? items.map(Number) : [...SENTINEL2_DEFAULT_MASK] }
        : null;
  if (value === null)
    throw new Error(`quality kind "${kind ?? ""}" is not one of landsat-c2-qa-pixel, sentinel2-scl`);
  const r = QualitySpecSchema.safeParse(value);
  if (!r.success) throw new Error(`quality "${text}": ${r.error.issues[0]?.message ?? "invalid"}`);
  return r.data;
}
