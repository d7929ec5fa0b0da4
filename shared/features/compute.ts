/**
 * Per-pixel descriptors. Pure functions over a decoded raster's typed arrays.
 *
 * Arithmetic follows the peer exactly (float64, `stored * scale + offset`, then `(n - r) / (n + r)`),
 * operation for operation, so the same tile gives bit-identical features here and in numpy: the
 * classifier comparison with scikit-learn is pixel by pixel, and distance ties must tie in both.
 */
import { TileInvalidError } from "../errors.js";
import type { BandArray, Raster } from "../raster/types.js";
import { applyQualityMask } from "./quality.js";
import { featureDim, type FeatureSpec } from "./spec.js";

/** Descriptors of a block of pixels. */
export interface FeatureMatrix {
  /** Pixel-major rows, `dim` values per pixel; rows of invalid pixels are all zeros. */
  readonly data: Float64Array;
  readonly dim: number;
  /** 1 where the pixel is valid (no band at its nodata value, no band NaN, not masked by quality). */
  readonly valid: Uint8Array;
  readonly validCount: number;
  /** Of the pixels with data, those the spec's quality band masked (cloud, shadow, ...): the reason. */
  readonly maskedCount: number;
}

/**
 * Checks that a raster fits a spec: same band count, every referenced band present.
 * @throws TileInvalidError naming the band and the count.
 */
export function checkRasterForSpec(
  raster: Pick<Raster, "bands" | "width" | "height">,
  spec: FeatureSpec,
): void {
  const count = raster.bands.length;
  for (const key of ["red", "nir", "green"] as const) {
    const b = spec[key];
    if (b !== null && (b < 1 || b > count))
      throw new TileInvalidError(
        `${key} band ${b} does not exist: the raster has ${count} band${count === 1 ? "" : "s"}`,
      );
  }
  if (count !== spec.bands)
    throw new TileInvalidError(`the raster has ${count} bands, the feature spec expects ${spec.bands}`);
  if (spec.quality) {
    const q = spec.quality.band;
    const qa = raster.bands[q - 1];
    // QA_PIXEL (uint16) and SCL (uint8) are integer codes: a float band's values would be truncated
    // into codes they are not (22280.7 -> 22280, a cloud) or overflow them (1e9), so it is refused.
    if (qa instanceof Float32Array || qa instanceof Float64Array)
      throw new TileInvalidError(
        `quality band ${q} (${spec.quality.kind}) holds ${qa instanceof Float32Array ? "float32" : "float64"} samples; a quality band must hold integer codes (QA_PIXEL is uint16, SCL uint8): when every band holds whole numbers (Collection 2 Level-2 and L2A bands do), convert the tile to an integer type that holds every value and the nodata value (a GeoTIFF's bands share one sample type): gdal_translate -ot UInt16 IN.tif OUT.tif when all are 0..65535, -ot Int16 or Int32 when the nodata or a value is negative (UInt16 would clamp a nodata of -9999 to 0); else rebuild the stack from the original integer bands`,
      );
  }
  const n = raster.width * raster.height;
  for (const [i, band] of raster.bands.entries())
    if (band.length !== n)
      throw new TileInvalidError(`band ${i + 1} has ${band.length} samples, expected ${n}`);
}

/**
 * Descriptors of every pixel of `raster` as defined by `spec`.
 * @throws TileInvalidError when the raster does not fit the spec.
 */
export function computeFeatures(raster: Raster, spec: FeatureSpec): FeatureMatrix {
  return computeFeatureRows(raster, spec, 0, raster.height);
}

/**
 * z-scores for `computeFeatureRows` to write instead of the descriptors: `(x - mean[j]) / std[j]`
 * for descriptor j, one value per descriptor (`featureDim(spec)` each).
 */
export interface Standardisation {
  readonly mean: Float64Array;
  readonly std: Float64Array;
}

/**
 * Descriptors of rows `[rowStart, rowEnd)` of `raster`, for callers that classify large tiles in
 * blocks to bound memory. Window extras read the rows just outside the block, so blocks give exactly
 * the rows a whole-tile computation gives.
 * @param standardise when given, each valid pixel's descriptors are written z-scored,
 *   `(x - mean[j]) / std[j]` (the value, operation for operation, that z-scoring the returned rows
 *   afterwards gives): a classifier's per-pixel pass over the matrix fewer. Invalid rows stay zeros.
 * @throws TileInvalidError when the raster does not fit the spec, the rows are out of range or
 *   `standardise` does not hold one mean and one std per descriptor.
 */
export function computeFeatureRows(
  raster: Raster,
  spec: FeatureSpec,
  rowStart: number,
  rowEnd: number,
  standardise: Standardisation | null = null,
): FeatureMatrix {
  checkRasterForSpec(raster, spec);
  const { width, height } = raster;
  if (
    !Number.isInteger(rowStart) ||
    !Number.isInteger(rowEnd) ||
    rowStart < 0 ||
    rowEnd > height ||
    rowStart > rowEnd
  )
    throw new TileInvalidError(`rows ${rowStart}..${rowEnd} are outside the raster's 0..${height}`);
  const windowed = spec.extras.some((e) => e.kind !== "ndwi");
  // Window extras need one row of context on each side (cut at the tile's edges).
  const ctxStart = windowed ? Math.max(0, rowStart - 1) : rowStart;
  const ctxEnd = windowed ? Math.min(height, rowEnd + 1) : rowEnd;
  const ctxOffset = ctxStart * width;
  const ctxN = (ctxEnd - ctxStart) * width;

  const bandCount = spec.bands;
  const baseCount = bandCount + 1 + (spec.extras.some((e) => e.kind === "ndwi") ? 1 : 0);
  // Base planes (bands, ndvi, ndwi) over the context rows, one Float64Array each: plane-major so
  // the window extras read one plane, and every inner loop sees a single array type.
  const planes: Float64Array[] = [];
  const validCtx = new Uint8Array(ctxN).fill(1);
  const qualityIndex = spec.quality ? spec.quality.band - 1 : -1;
  for (let b = 0; b < bandCount; b++) {
    // The quality band is never a feature; its codes (not its nodata value) say what it masks.
    if (b === qualityIndex) {
      planes.push(new Float64Array(0));
      continue;
    }
    const src = raster.bands[b] as BandArray;
    const nodata = raster.nodata[b] ?? null;
    const scale = raster.scale[b] ?? 1;
    const offset = raster.offset[b] ?? 0;
    const plane = new Float64Array(ctxN);
    scaleBand(src, ctxOffset, plane, validCtx, scale, offset, nodata);
    planes.push(plane);
  }
  planes.push(
    normalisedDifference(planes[spec.nir - 1] as Float64Array, planes[spec.red - 1] as Float64Array),
  );
  if (baseCount > bandCount + 1 && spec.green !== null)
    planes.push(
      normalisedDifference(planes[spec.green - 1] as Float64Array, planes[spec.nir - 1] as Float64Array),
    );

  const dim = featureDim(spec);
  if (standardise !== null && (standardise.mean.length !== dim || standardise.std.length !== dim))
    throw new TileInvalidError(
      `${standardise.mean.length} means and ${standardise.std.length} stds do not standardise ${dim} features`,
    );
  const rows = rowEnd - rowStart;
  const n = rows * width;
  const skip = (rowStart - ctxStart) * width;
  const data = new Float64Array(n * dim);
  // Masked after nodata, so that the count says how many pixels with data the quality band removed.
  const maskedCount = spec.quality
    ? applyQualityMask(spec.quality, raster.bands[qualityIndex] as BandArray, ctxOffset, validCtx)
    : 0;
  const valid = validCtx.subarray(skip, skip + n);
  let validCount = 0;
  for (let p = 0; p < n; p++) if (valid[p] === 1) validCount++;

  // Bands and NDVI fill the first columns; each extra then takes the next column in declared order.
  let column = 0;
  for (let j = 0; j <= bandCount; j++)
    if (j !== qualityIndex) {
      copyColumn(planes[j] as Float64Array, skip, valid, data, dim, column, standardise);
      column++;
    }
  const planeOf = basePlaneIndex(spec);
  for (const e of spec.extras) {
    if (e.kind === "ndwi")
      copyColumn(planes[bandCount + 1] as Float64Array, skip, valid, data, dim, column, standardise);
    else {
      const plane = planes[planeOf(e.of)] as Float64Array;
      windowStat(
        e.kind,
        plane,
        validCtx,
        width,
        ctxEnd - ctxStart,
        rowStart - ctxStart,
        rows,
        data,
        dim,
        column,
      );
      if (standardise !== null) standardiseColumn(data, valid, dim, column, standardise);
    }
    column++;
  }
  return { data, dim, valid: valid.slice(), validCount, maskedCount };
}

/** The base plane a window extra reads: bands are 0..N-1, ndvi N, ndwi N+1. */
function basePlaneIndex(spec: FeatureSpec): (name: string) => number {
  const hasNdwi = spec.extras.some((e) => e.kind === "ndwi");
  return (name) => {
    if (name === "ndvi") return spec.bands;
    if (name === "ndwi" && hasNdwi) return spec.bands + 1;
    const m = /^b(\d+)$/.exec(name);
    const b = m ? Number(m[1]) : NaN;
    if (!(b >= 1 && b <= spec.bands))
      throw new TileInvalidError(`feature "${name}" does not exist in a spec of ${spec.bands} bands`);
    return b - 1;
  };
}

function copyColumn(
  plane: Float64Array,
  skip: number,
  valid: Uint8Array,
  data: Float64Array,
  dim: number,
  column: number,
  standardise: Standardisation | null,
): void {
  if (standardise === null) {
    for (let p = 0, o = column; p < valid.length; p++, o += dim)
      if (valid[p] === 1) data[o] = plane[skip + p] as number;
    return;
  }
  // In the copy's own loop: in a short-lived process such a loop runs mostly in V8's interpreter,
  // so a second pass over the matrix to z-score it cost about as much as the copy (~15 ms of a
  // Chiapas classify).
  const m = standardise.mean[column] as number;
  const sd = standardise.std[column] as number;
  for (let p = 0, o = column; p < valid.length; p++, o += dim)
    if (valid[p] === 1) data[o] = ((plane[skip + p] as number) - m) / sd;
}

/** z-scores column `column` of the valid rows of `data` in place (a window extra's, written raw). */
function standardiseColumn(
  data: Float64Array,
  valid: Uint8Array,
  dim: number,
  column: number,
  standardise: Standardisation,
): void {
  const m = standardise.mean[column] as number;
  const sd = standardise.std[column] as number;
  for (let p = 0, o = column; p < valid.length; p++, o += dim)
    if (valid[p] === 1) data[o] = ((data[o] as number) - m) / sd;
}

/**
 * Physical values of one band for `out.length` pixels from `start`, clearing `valid` where the
 * stored value is NaN or equals the band's nodata value (compared before scaling, as the peer does;
 * a NaN nodata value only means "NaN is invalid", which is checked anyway).
 */
function scaleBand(
  src: BandArray,
  start: number,
  out: Float64Array,
  valid: Uint8Array,
  scale: number,
  offset: number,
  nodata: number | null,
): void {
  const n = out.length;
  if (scale === 1 && offset === 0 && !(src instanceof Float32Array || src instanceof Float64Array)) {
    // Integers, stored as physical values (most tiles): an integer is never NaN and x * 1 + 0 is x,
    // so the copy and the nodata search the loop below would do are the typed-array built-ins'
    // (native code), not a loop a short-lived process runs mostly in V8's interpreter: 3-4 ms
    // instead of 10-18 ms of CPU for Chiapas's 8 bands of 250² in a fresh process. indexOf
    // compares as `===` does.
    const v = src.subarray(start, start + n);
    out.set(v);
    if (nodata !== null) for (let p = v.indexOf(nodata); p !== -1; p = v.indexOf(nodata, p + 1)) valid[p] = 0;
    return;
  }
  // One conversion to float64 up front keeps the loops below monomorphic whatever the band type.
  const v =
    src instanceof Float64Array
      ? src.subarray(start, start + out.length)
      : new Float64Array(src.subarray(start, start + out.length));
  const nd = nodata === null || Number.isNaN(nodata) ? null : nodata;
  for (let p = 0; p < n; p++) {
    const x = v[p] as number;
    if (x !== x || x === nd) valid[p] = 0;
    out[p] = x * scale + offset;
  }
}

/** (a - b) / (a + b), 0 where a + b == 0 (NDVI with a = nir, b = red; NDWI with a = green, b = nir). */
function normalisedDifference(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let p = 0; p < a.length; p++) {
    const x = a[p] as number;
    const y = b[p] as number;
    const denom = x + y;
    // `denom !== 0` mirrors numpy's `np.where(denom != 0, ...)`: NaN denominators divide (to NaN).
    out[p] = denom !== 0 ? (x - y) / denom : 0;
  }
  return out;
}

/**
 * Mean or population std over the valid pixels of each 3x3 window, for `rows` rows starting at
 * context row `first`, written to column `column` of `data`. The centre is always valid when written
 * (invalid pixels' rows stay zero).
 */
function windowStat(
  kind: "mean3x3" | "std3x3",
  plane: Float64Array,
  valid: Uint8Array,
  width: number,
  ctxRows: number,
  first: number,
  rows: number,
  data: Float64Array,
  dim: number,
  column: number,
): void {
  const vals = new Float64Array(9);
  for (let r = 0; r < rows; r++) {
    const cr = first + r;
    const r0 = Math.max(0, cr - 1);
    const r1 = Math.min(ctxRows - 1, cr + 1);
    for (let c = 0; c < width; c++) {
      const centre = cr * width + c;
      if (valid[centre] !== 1) continue;
      const c0 = Math.max(0, c - 1);
      const c1 = Math.min(width - 1, c + 1);
      let count = 0;
      let sum = 0;
      for (let rr = r0; rr <= r1; rr++)
        for (let cc = c0; cc <= c1; cc++) {
          const q = rr * width + cc;
          if (valid[q] !== 1) continue;
          const x = plane[q] as number;
          vals[count++] = x;
          sum += x;
        }
      const mean = sum / count;
      let out = mean;
      if (kind === "std3x3") {
        // Two passes over at most 9 values: exact enough and immune to cancellation.
        let ss = 0;
        for (let i = 0; i < count; i++) {
          const d = (vals[i] as number) - mean;
          ss += d * d;
        }
        out = Math.sqrt(ss / count);
      }
      data[(r * width + c) * dim + column] = out;
    }
  }
}
