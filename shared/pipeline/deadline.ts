/**
 * How long one tile may take (read + decode + descriptors + classify) before its thread is
 * terminated and the tile failed with DEADLINE. The deadline exists to stop a hostile or broken file
 * from holding a worker for ever, not to reject big valid tiles (issue 14, N2: a valid 1536² × 6
 * tile needs ~10 s on a 2-core machine and was dead-lettered by a flat 10 s deadline). So it scales
 * with the work the tile announces in its header, known before any pixel is decoded:
 *
 *   deadline = LANEMAP_DECODE_TIMEOUT_MS + samples / 10⁶ × LANEMAP_DECODE_MS_PER_MSAMPLE
 *
 * where samples = width × height × samples per pixel. A header cannot buy unbounded time: the header
 * read refuses more than LANEMAP_MAX_PIXELS pixels and more than MAX_DECODED_BYTES of decoded samples
 * (shared/geotiff/layout.ts), and the count is clamped to that here as well. A tile whose header
 * could not be read gets the base alone. Every place that bounds a tile (both lanes' TilePool jobs,
 * a batch task, the source-image decode) takes its deadline from here, and the DEADLINE reason
 * names the deadline and its derivation (`describeTileDeadline`).
 */
import { MAX_DECODED_BYTES } from "../geotiff/index.js";

/** The deadline rule's two settings (a `Config` has both). */
export interface TileDeadlineRule {
  /** The base of every tile's deadline, in ms (LANEMAP_DECODE_TIMEOUT_MS). */
  readonly decodeTimeoutMs: number;
  /** The allowance per million announced samples, in ms (LANEMAP_DECODE_MS_PER_MSAMPLE). */
  readonly decodeMsPerMsample: number;
}

/** A tile's size as its header announces it (a catalogue entry has these fields). */
export interface AnnouncedTileSize {
  readonly width: number;
  readonly height: number;
  /** Samples per pixel. */
  readonly bandCount: number;
}

/** One tile's deadline and how it was derived. */
export interface TileDeadline {
  /** The deadline in ms (an integer, at least the base). */
  readonly ms: number;
  /** The base it started from, in ms. */
  readonly baseMs: number;
  /** Announced samples in millions (width × height × bands / 10⁶), or null when the size is unknown. */
  readonly msamples: number | null;
  /** The allowance per Msample applied, in ms. */
  readonly msPerMsample: number;
}

/** The most samples a header the decoder accepts can announce: one byte each at the least. */
const MAX_SAMPLES = MAX_DECODED_BYTES;

/**
 * The deadline of a tile of announced `size` (null or undefined when its header could not be read:
 * the base alone applies). A size that is not made of positive finite numbers counts as unknown.
 * @example tileDeadline({ decodeTimeoutMs: 10_000, decodeMsPerMsample: 3_000 },
 *   { width: 1536, height: 1536, bandCount: 6 }).ms // 52468 (10 000 + 14.16 Msample × 3 000)
 */
export function tileDeadline(
  rule: TileDeadlineRule,
  size: AnnouncedTileSize | null | undefined,
): TileDeadline {
  const baseMs = rule.decodeTimeoutMs;
  const msPerMsample = rule.decodeMsPerMsample;
  const known =
    size != null && [size.width, size.height, size.bandCount].every((v) => Number.isFinite(v) && v > 0);
  if (!known) return { ms: baseMs, baseMs, msamples: null, msPerMsample };
  const msamples = Math.min(size.width * size.height * size.bandCount, MAX_SAMPLES) / 1e6;
  return { ms: Math.ceil(baseMs + msamples * msPerMsample), baseMs, msamples, msPerMsample };
}

/**
 * The deadline and its derivation, for a DEADLINE reason: `52468 ms (10000 ms base + 14.2 Msample
 * × 3000 ms)`, or `10000 ms (the base; the tile's size is unknown)`.
 */
export function describeTileDeadline(d: TileDeadline): string {
  if (d.msamples === null) return `${d.ms} ms (the base; the tile's size is unknown)`;
  const msamples = d.msamples >= 10 ? d.msamples.toFixed(1) : d.msamples.toPrecision(3);
  return `${d.ms} ms (${d.baseMs} ms base + ${msamples} Msample × ${d.msPerMsample} ms)`;
}
