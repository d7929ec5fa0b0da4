/**
 * Applying a model: tile -> features -> scaled -> k-NN votes -> class raster with confidence, and
 * the per-class summary (pixels, areas, dominant class). `createClassifier` scales the samples and
 * builds the kd-tree once, so a long-running worker pays only for the search per tile.
 */
import { ModelError } from "../errors.js";
import { checkRasterForSpec, computeFeatureRows } from "../features/compute.js";
import { featureDim } from "../features/index.js";
import type { Raster, RasterInfo } from "../raster/types.js";
import { pixelArea } from "./area.js";
import { KnnEngine, MAX_CLASSES } from "./engine.js";
import type { Model } from "./model.js";

/** A classified tile. */
export interface Classification {
  readonly width: number;
  readonly height: number;
  /** Class id per pixel, row-major; 0 = not classified (an invalid pixel). */
  readonly classes: Uint8Array;
  /** Vote share of the winning class per pixel (k-ths, in [1/k, 1]); 0 where not classified. */
  readonly confidence: Float32Array;
  /** Pixels per class id, indexes 0..highest id of the model (0: not classified; gaps hold 0). */
  readonly counts: number[];
  /** Pixels that were valid, hence classified. */
  readonly validPixels: number;
}

/** Options of `Classifier.classify`. */
export interface ClassifyOptions {
  /** Checked between blocks of rows; an aborted signal's reason is thrown. */
  readonly signal?: AbortSignal;
  /** Pixels per block (features are computed a block at a time to bound memory); default 2^19. */
  readonly blockPixels?: number;
}

/** A model made ready to classify: scaled samples and a built index. */
export interface Classifier {
  readonly model: Model;
  /** Number of features per pixel. */
  readonly dim: number;
  /**
   * Classifies every pixel of a tile.
   * @throws TileInvalidError when the tile does not fit the model's feature spec.
   */
  classify(raster: Raster, options?: ClassifyOptions): Classification;
  /**
   * Classifies `count` raw (unscaled) feature rows, point-major: the hot path without a raster,
   * for benchmarks and for features computed elsewhere.
   */
  classifyFeatures(features: Float64Array, count?: number): { classes: Uint8Array; confidence: Float32Array };
}

const DEFAULT_BLOCK_PIXELS = 1 << 19;

/**
 * Prepares a model for classification: z-scores its samples and builds the k-NN index.
 * @throws ModelError when the model cannot be used (more classes than a uint8 raster holds, k larger
 *   than the samples).
 */
export function createClassifier(model: Model): Classifier {
  const dim = featureDim(model.features);
  if (model.classes.length > MAX_CLASSES)
    throw new ModelError(
      `model ${model.version} has ${model.classes.length} classes; at most ${MAX_CLASSES} fit a class raster`,
    );
  const { mean, std } = model.scaling;
  const n = model.samples.y.length;
  const x = new Float64Array(n * dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++)
      x[i * dim + j] = ((model.samples.x[i * dim + j] as number) - (mean[j] as number)) / (std[j] as number);
  // The engine votes over dense labels 1..n (its vote arrays are indexed by label); the model's ids
  // are catalogue ids, possibly with gaps, so labels map to ids and back. Classes are sorted by id,
  // so the engine's smallest-label tie-break is the smallest id, as before.
  const denseOf = new Map(model.classes.map((c, i) => [c.id, i + 1]));
  const idOfDense = Uint8Array.from([0, ...model.classes.map((c) => c.id)]);
  const contiguous = model.classes.every((c, i) => c.id === i + 1);
  const denseY = contiguous ? model.samples.y : model.samples.y.map((id) => denseOf.get(id) ?? 0);
  /** Maps engine labels to class ids in place (a no-op for 1..n ids). */
  const toIds = (labels: Uint8Array): Uint8Array => {
    if (!contiguous)
      for (let i = 0; i < labels.length; i++) labels[i] = idOfDense[labels[i] as number] as number;
    return labels;
  };
  const topId = model.classes.reduce((m, c) => Math.max(m, c.id), 0);
  let engine: KnnEngine;
  try {
    engine = new KnnEngine(x, denseY, dim, model.k);
  } catch (err) {
    throw new ModelError(`model ${model.version} cannot be used: ${(err as Error).message}`, { cause: err });
  }
  const meanArr = Float64Array.from(mean);
  const stdArr = Float64Array.from(std);

  const standardise = { mean: meanArr, std: stdArr };

  /** z-scores `count` rows of `raw` into a buffer of their own. */
  const scaleRows = (raw: Float64Array, count: number): Float64Array => {
    const out = new Float64Array(count * dim);
    for (let p = 0, o = 0; p < count; p++) {
      const b = p * dim;
      // (x - mean) / std, the peer's `(x[idx] - mean) / std`, operation for operation.
      for (let j = 0; j < dim; j++)
        out[o++] = ((raw[b + j] as number) - (meanArr[j] as number)) / (stdArr[j] as number);
    }
    return out;
  };

  return {
    model,
    dim,
    classify(raster: Raster, options: ClassifyOptions = {}): Classification {
      checkRasterForSpec(raster, model.features);
      const { width, height } = raster;
      const classes = new Uint8Array(width * height);
      const confidence = new Float32Array(width * height);
      const blockRows = Math.max(
        1,
        Math.floor((options.blockPixels ?? DEFAULT_BLOCK_PIXELS) / Math.max(1, width)),
      );
      let validPixels = 0;
      for (let r0 = 0; r0 < height; r0 += blockRows) {
        options.signal?.throwIfAborted();
        const r1 = Math.min(height, r0 + blockRows);
        // z-scored as computeFeatureRows writes them (the same values as z-scoring its rows after,
        // one per-pixel pass fewer), into a matrix of its own, used once.
        const f = computeFeatureRows(raster, model.features, r0, r1, standardise);
        const rows = (r1 - r0) * width;
        const scaled = f.data;
        if (f.validCount === rows) {
          // Every pixel valid (most tiles): the answers are the block's pixels in order, written
          // straight into the tile's arrays instead of through a per-pixel copy.
          const o = r0 * width;
          const blockClasses = classes.subarray(o, o + rows);
          engine.predict(scaled, rows, blockClasses, confidence.subarray(o, o + rows));
          toIds(blockClasses);
        } else {
          // The valid pixels' rows first, in order (row p moves to row i <= p: nothing is
          // overwritten before it moves).
          for (let p = 0, i = 0; p < rows; p++)
            if (f.valid[p] === 1) {
              if (i !== p) scaled.copyWithin(i * dim, p * dim, (p + 1) * dim);
              i++;
            }
          const blockClasses = new Uint8Array(f.validCount);
          const blockConfidence = new Float32Array(f.validCount);
          engine.predict(scaled, f.validCount, blockClasses, blockConfidence);
          toIds(blockClasses);
          for (let p = 0, i = 0, o = r0 * width; p < rows; p++, o++) {
            if (f.valid[p] !== 1) continue;
            classes[o] = blockClasses[i] as number;
            confidence[o] = blockConfidence[i] as number;
            i++;
          }
        }
        validPixels += f.validCount;
      }
      const counts = new Array<number>(topId + 1).fill(0);
      for (let p = 0; p < classes.length; p++) {
        const c = classes[p] as number;
        counts[c] = (counts[c] as number) + 1;
      }
      return { width, height, classes, confidence, counts, validPixels };
    },
    classifyFeatures(features: Float64Array, count = features.length / dim) {
      if (!Number.isInteger(count) || count < 0 || count * dim > features.length)
        throw new RangeError(`${features.length} values do not hold ${count} rows of ${dim} features`);
      const scaled = scaleRows(features, count);
      const classes = new Uint8Array(count);
      const confidence = new Float32Array(count);
      engine.predict(scaled, count, classes, confidence);
      return { classes: toIds(classes), confidence };
    },
  };
}

/** Classifies raw (unscaled) feature rows with a prepared classifier (see `Classifier.classifyFeatures`). */
export function classifyFeatures(
  classifier: Classifier,
  features: Float64Array,
  count?: number,
): { classes: Uint8Array; confidence: Float32Array } {
  return classifier.classifyFeatures(features, count);
}

/** One class of a summary. */
export interface ClassArea {
  readonly id: number;
  readonly name: string;
  readonly colour: string;
  readonly pixels: number;
  /** Ground area in m², or null when the tile's CRS or unit is unknown. */
  readonly areaM2: number | null;
}

/** What a classified tile holds, class by class. */
export interface ClassSummary {
  readonly modelVersion: string;
  readonly width: number;
  readonly height: number;
  readonly validPixels: number;
  readonly classes: readonly ClassArea[];
  /** The class with the most pixels (the smallest id on a tie), or null when nothing was classified. */
  readonly dominant: { readonly id: number; readonly name: string } | null;
  /** Mean vote share over classified pixels, or null when nothing was classified. */
  readonly meanConfidence: number | null;
}

/**
 * Per-class pixel counts and ground areas of a classification, its dominant class and mean
 * confidence. `raster` supplies the grid (geotransform and CRS) for the areas.
 */
export function classSummary(classification: Classification, model: Model, raster: RasterInfo): ClassSummary {
  const { classes, confidence, width, height } = classification;
  const topId = model.classes.reduce((m, c) => Math.max(m, c.id), 0);
  const pixels = new Float64Array(topId + 1);
  const area = new Float64Array(topId + 1);
  const pa = pixelArea(raster);
  let confSum = 0;
  for (let r = 0, p = 0; r < height; r++) {
    const rowArea =
      pa === null ? 0 : pa.kind === "constant" ? pa.m2 : pa.kind === "per-row" ? (pa.m2[r] as number) : 0;
    for (let c = 0; c < width; c++, p++) {
      const id = classes[p] as number;
      if (id === 0) continue;
      pixels[id] = (pixels[id] as number) + 1;
      area[id] = (area[id] as number) + (pa?.kind === "per-pixel" ? pa.m2(c, r) : rowArea);
      confSum += confidence[p] as number;
    }
  }
  const list: ClassArea[] = model.classes.map((c) => ({
    id: c.id,
    name: c.name,
    colour: c.colour,
    pixels: pixels[c.id] as number,
    areaM2: pa === null ? null : (area[c.id] as number),
  }));
  let dominant: ClassArea | null = null;
  for (const c of list) if (c.pixels > 0 && (dominant === null || c.pixels > dominant.pixels)) dominant = c;
  const classified = list.reduce((s, c) => s + c.pixels, 0);
  return {
    modelVersion: model.version,
    width,
    height,
    validPixels: classification.validPixels,
    classes: list,
    dominant: dominant === null ? null : { id: dominant.id, name: dominant.name },
    meanConfidence: classified === 0 ? null : confSum / classified,
  };
}
