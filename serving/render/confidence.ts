/**
 * The confidence layer: each classified pixel's kNN vote share (winning votes / k, as the class
 * rasters store it — shared/view/raster-codec.ts) drawn on a sequential colour ramp on which low
 * shares stand out, and the per-tile figures the JSON answer gives (mean share, share of pixels
 * without a majority).
 *
 * The ramp is ColorBrewer's 9-class sequential **YlOrRd** (Cynthia Brewer, colorbrewer2.org; the
 * table d3-scale-chromatic's `schemeYlOrRd[9]` also carries), run backwards: a unanimous pixel is
 * pale yellow and the lower the share the deeper the red, so the pixels where more labels would help
 * are the most saturated ones on the map. Shares between the nine stops are interpolated linearly in
 * sRGB. Pixels that are not classified (class 0) are transparent.
 */
import { encode as encodePng } from "fast-png";
import type { ClassRaster, Rgb } from "../../shared/index.js";

/** ColorBrewer YlOrRd, 9 classes, light to dark (colorbrewer2.org, Apache 2.0 licensed scheme). */
export const YLORRD_9: readonly Rgb[] = [
  [0xff, 0xff, 0xcc],
  [0xff, 0xed, 0xa0],
  [0xfe, 0xd9, 0x76],
  [0xfe, 0xb2, 0x4c],
  [0xfd, 0x8d, 0x3c],
  [0xfc, 0x4e, 0x2a],
  [0xe3, 0x1a, 0x1c],
  [0xbd, 0x00, 0x26],
  [0x80, 0x00, 0x26],
];

/**
 * The colour of a vote share `share` (0..1, clamped): YlOrRd read from its dark end at share 0 to its
 * light end at share 1, linear between stops.
 */
export function confidenceColour(share: number): Rgb {
  const s = share > 0 ? (share < 1 ? share : 1) : 0;
  const pos = (1 - s) * (YLORRD_9.length - 1);
  const i = Math.min(Math.floor(pos), YLORRD_9.length - 2);
  const f = pos - i;
  const a = YLORRD_9[i] as Rgb;
  const b = YLORRD_9[i + 1] as Rgb;
  return [
    Math.round(a[0] + (b[0] - a[0]) * f),
    Math.round(a[1] + (b[1] - a[1]) * f),
    Math.round(a[2] + (b[2] - a[2]) * f),
  ];
}

/**
 * A palette PNG of a class raster's vote shares: index 0 transparent (not classified), index v + 1
 * the colour of share v / k for v = 0..k. Votes above k (a corrupt raster) are drawn as k.
 * @throws RangeError when k is not an integer in 1..254 (a palette holds 256 entries).
 */
export function confidencePng(raster: ClassRaster): Uint8Array {
  const { k } = raster;
  if (!(Number.isInteger(k) && k >= 1 && k <= 254))
    throw new RangeError(`k must be an integer in 1..254 for a palette image, got ${k}`);
  const palette: [number, number, number, number][] = [[0, 0, 0, 0]];
  for (let v = 0; v <= k; v++) palette.push([...confidenceColour(v / k), 255]);
  const n = raster.width * raster.height;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (raster.classes[i] === 0) continue;
    const v = raster.votes[i] as number;
    data[i] = (v > k ? k : v) + 1;
  }
  return encodePng({ width: raster.width, height: raster.height, data, depth: 8, channels: 1, palette });
}

/** A pixel is "low confidence" when at most this share of its k neighbours voted for its class. */
export const LOW_CONFIDENCE_SHARE = 0.5;

/** Confidence figures of one class raster, over its classified pixels. */
export interface ConfidenceSummary {
  /** Classified pixels (class > 0). */
  readonly classifiedPixels: number;
  /** Mean vote share (votes / k), 0..1; null without a classified pixel. */
  readonly mean: number | null;
  /** Share of classified pixels whose vote share is at most `lowThreshold` (no majority); null without one. */
  readonly lowShare: number | null;
  readonly lowThreshold: number;
  readonly k: number;
}

/** Mean vote share and the share of pixels without a majority (share <= LOW_CONFIDENCE_SHARE). */
export function confidenceSummary(raster: ClassRaster): ConfidenceSummary {
  const n = raster.width * raster.height;
  // Compared in votes, so that a share of exactly 0.5 (k = 4, 2 votes) counts as low without rounding.
  const lowVotes = Math.floor(raster.k * LOW_CONFIDENCE_SHARE + 1e-9);
  let classified = 0;
  let votes = 0;
  let low = 0;
  for (let i = 0; i < n; i++) {
    if (raster.classes[i] === 0) continue;
    const v = raster.votes[i] as number;
    classified++;
    votes += v;
    if (v <= lowVotes) low++;
  }
  return {
    classifiedPixels: classified,
    mean: classified ? votes / classified / raster.k : null,
    lowShare: classified ? low / classified : null,
    lowThreshold: LOW_CONFIDENCE_SHARE,
    k: raster.k,
  };
}
