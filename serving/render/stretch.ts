/**
 * Source imagery for display: a per-band linear contrast stretch of a tile's stored values (DN) to
 * 0..255 and an RGBA image of one or three bands, transparent where any shown band is nodata.
 *
 * The default stretch is the "cumulative count cut" of QGIS's raster renderer (Layer Properties >
 * Symbology > Min/Max value settings, 2 % - 98 % by default): each band's low and high percentiles of
 * its valid pixels become 0 and 255. Percentiles are computed exactly, as numpy's default
 * (`numpy.percentile`, method "linear", Hyndman & Fan type 7) computes them, so rasterio users get
 * the same limits; the scaling itself is GDAL's `gdal_translate -scale min max 0 255 -ot Byte`
 * (linear, clamped, rounded to the nearest byte). Both are checked against those tools in
 * test/integration/serving-layers.test.ts.
 *
 * Pure functions over typed arrays; integer bands of 16 bits or less are counted into a histogram,
 * so a percentile costs O(pixels) rather than a sort.
 */
import type { BandArray } from "../../shared/index.js";

/** A band's stretch limits in stored values: `min` becomes 0, `max` 255. */
export interface StretchRange {
  readonly min: number;
  readonly max: number;
}

/** QGIS's default cumulative count cut, in percent. */
export const DEFAULT_PERCENTILES: readonly [number, number] = [2, 98];

/** True when `v` is a valid sample of a band whose nodata (as compared, see nodataAsCompared) is `nodata`. */
function isValid(v: number, nodata: number | null): boolean {
  // NaN is never a valid sample; a NaN nodata means exactly that and nothing more.
  return v === v && v !== nodata && Number.isFinite(v);
}

/**
 * The `pcts` percentiles (each 0..100) of a band's valid samples, as `numpy.percentile(valid, pcts)`
 * computes them (linear interpolation between the two nearest ranks). Null when no sample is valid.
 * @throws RangeError for a percentile outside 0..100.
 */
export function bandPercentiles(
  band: BandArray,
  nodata: number | null,
  pcts: readonly number[],
): number[] | null {
  for (const p of pcts)
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentiles lie in 0..100, got ${p}`);
  const sorted = sortedValid(band, nodata);
  if (sorted.count === 0) return null;
  return pcts.map((p) => {
    const pos = (p / 100) * (sorted.count - 1);
    const lo = Math.floor(pos);
    const a = sorted.at(lo);
    if (lo + 1 >= sorted.count) return a;
    return a + (sorted.at(lo + 1) - a) * (pos - lo);
  });
}

/** The valid samples in ascending order, read by rank. */
interface Ranked {
  readonly count: number;
  at(rank: number): number;
}

function sortedValid(band: BandArray, nodata: number | null): Ranked {
  if (
    band instanceof Uint8Array ||
    band instanceof Int8Array ||
    band instanceof Uint16Array ||
    band instanceof Int16Array
  ) {
    // A counting sort: exact and linear; the cumulative counts answer "the value of rank r".
    const base = band instanceof Int8Array ? 128 : band instanceof Int16Array ? 32768 : 0;
    const bins = band instanceof Uint8Array || band instanceof Int8Array ? 256 : 65536;
    const hist = new Uint32Array(bins);
    let count = 0;
    for (let i = 0; i < band.length; i++) {
      const v = band[i] as number;
      if (v === nodata) continue;
      hist[v + base] = (hist[v + base] as number) + 1;
      count++;
    }
    const cumulative = new Float64Array(bins);
    let run = 0;
    for (let b = 0; b < bins; b++) {
      run += hist[b] as number;
      cumulative[b] = run;
    }
    return {
      count,
      at(rank) {
        // The first bin whose cumulative count exceeds the rank holds that sample.
        let lo = 0;
        let hi = bins - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((cumulative[mid] as number) > rank) hi = mid;
          else lo = mid + 1;
        }
        return lo - base;
      },
    };
  }
  const values = new Float64Array(band.length);
  let count = 0;
  for (let i = 0; i < band.length; i++) {
    const v = band[i] as number;
    if (isValid(v, nodata)) values[count++] = v;
  }
  const sorted = values.subarray(0, count).sort();
  return { count, at: (rank) => sorted[rank] as number };
}

/**
 * `value` scaled from `range` to 0..255 as `gdal_translate -scale min max 0 255 -ot Byte` does:
 * linear, clamped, rounded to the nearest integer. A degenerate range (max <= min) is widened by 0.1
 * at the top, as gdal_translate widens it, so min and below give 0 and anything above gives 255.
 */
export function scaleToByte(value: number, range: StretchRange): number {
  const max = range.max > range.min ? range.max : range.min + 0.1;
  const v = ((value - range.min) * 255) / (max - range.min);
  if (!(v > 0)) return 0;
  if (v >= 255) return 255;
  return Math.round(v);
}

/** One band to draw: its samples, nodata (as compared) and stretch limits. */
export interface StretchBand {
  readonly samples: BandArray;
  readonly nodata: number | null;
  readonly range: StretchRange;
}

/**
 * An RGBA image (width × height × 4 bytes, row-major) of one band (grey) or three (red, green, blue),
 * each stretched by its range; alpha 0 where any of them is nodata or not finite, 255 elsewhere.
 * @throws RangeError for another number of bands, or bands of different lengths.
 */
export function stretchToRgba(bands: readonly StretchBand[]): Uint8Array {
  if (bands.length !== 1 && bands.length !== 3)
    throw new RangeError(`an image has 1 (grey) or 3 (red, green, blue) bands, got ${bands.length}`);
  const n = (bands[0] as StretchBand).samples.length;
  for (const b of bands)
    if (b.samples.length !== n) throw new RangeError("the bands of an image must have the same length");
  const out = new Uint8Array(n * 4);
  const [r, g, b] = bands.length === 3 ? bands : [bands[0], bands[0], bands[0]];
  const channels = [r, g, b] as StretchBand[];
  for (let c = 0; c < 3; c++) {
    const band = channels[c] as StretchBand;
    const s = band.samples;
    const { range, nodata } = band;
    // The per-pixel scale of scaleToByte, with the division hoisted out of the loop.
    const max = range.max > range.min ? range.max : range.min + 0.1;
    const k = 255 / (max - range.min);
    for (let i = 0; i < n; i++) {
      const v = s[i] as number;
      const o = i * 4;
      if (!isValid(v, nodata)) {
        out[o + 3] = 0;
        out[o + c] = 0;
        continue;
      }
      if (c === 0) out[o + 3] = 255;
      else if (out[o + 3] === 0) continue; // an earlier band is nodata here: the pixel stays clear
      const x = (v - range.min) * k;
      out[o + c] = x > 0 ? (x >= 255 ? 255 : Math.round(x)) : 0;
    }
  }
  // A later band's nodata clears the pixel even where earlier bands were valid.
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    if (out[o + 3] === 0) {
      out[o] = 0;
      out[o + 1] = 0;
      out[o + 2] = 0;
    }
  }
  return out;
}
