/**
 * Classifying one catalogued tile into the result both lanes publish: the summary (a TileResult,
 * the same shape in the batch and the live view) and the deflated class raster with votes.
 * The batch workers and the speed workers call exactly this, so the two lanes cannot drift.
 */
import { createClassifier, classSummary, type Classifier, type Model } from "../classifier/index.js";
import { type Pam, applyPam, decodeGeoTiff } from "../geotiff/index.js";
import type { Raster } from "../raster/types.js";
import { encodeClassRaster, votesFromConfidence } from "../view/raster-codec.js";
import type { CatalogueEntry, ClassifiedTile, Lane, TileResult } from "../view/types.js";

/** The catalogue fields a result carries. */
export type ResultSource = Pick<
  CatalogueEntry,
  "tileId" | "cell" | "acquired" | "ingestSeq" | "contentHash" | "epsg" | "proj4" | "boundsWgs84"
>;

/**
 * Builds a classifier for a model (kd-tree built once; reuse it for every tile).
 * @throws ModelError when the model cannot be used (see createClassifier).
 */
export function prepareClassifier(model: Model): Classifier {
  return createClassifier(model);
}

/**
 * Classifies a decoded raster (pure, synchronous).
 * @throws TileInvalidError when the raster does not fit the model's feature spec.
 * @throws LanemapError RASTER when the class raster cannot be encoded.
 */
export function classifyRaster(
  raster: Raster,
  classifier: Classifier,
  source: ResultSource,
  lane: Lane,
  processedAt: Date = new Date(),
): ClassifiedTile {
  const model = classifier.model;
  const c = classifier.classify(raster);
  // Areas use the CRS the loading thread resolved with PROJ (the catalogue entry's), not the worker's
  // own reading of the GeoKeys.
  const grid =
    source.proj4 !== null
      ? { ...raster, crs: { epsg: source.epsg, proj4: source.proj4, name: null } }
      : raster;
  const s = classSummary(c, model, grid);
  // Indexed by catalogue id: as long as the model's highest id (ids may have gaps, which hold 0).
  const n = model.classes.reduce((m, c) => Math.max(m, c.id), 0);
  const counts = new Array<number>(n + 1).fill(0);
  const areas = new Array<number>(n + 1).fill(0);
  counts[0] = c.width * c.height - c.validPixels;
  for (const cls of s.classes) {
    counts[cls.id] = cls.pixels;
    areas[cls.id] = cls.areaM2 ?? 0;
  }
  const result: TileResult = {
    lane,
    tileId: source.tileId,
    cell: source.cell,
    acquired: source.acquired,
    ingestSeq: source.ingestSeq,
    contentHash: source.contentHash,
    modelVersion: model.version,
    width: c.width,
    height: c.height,
    geoTransform: [...(raster.geoTransform ?? [0, 1, 0, 0, 0, 1])],
    epsg: source.epsg,
    proj4: source.proj4,
    boundsWgs84: source.boundsWgs84,
    validPixels: c.validPixels,
    counts,
    areasM2: areas,
    dominantClass: s.dominant?.id ?? 0,
    meanConfidence: s.meanConfidence ?? 0,
    processedAt: processedAt.toISOString(),
  };
  const raster8 = encodeClassRaster({
    width: c.width,
    height: c.height,
    k: model.k,
    classes: c.classes,
    votes: votesFromConfidence(c.confidence, model.k),
  });
  return { result, k: model.k, raster: raster8 };
}

/**
 * Decodes tile bytes and classifies them. A catalogue entry's `pam` (the file's .aux.xml band values,
 * which the archived bytes do not hold) is applied first, so the batch lane masks what GDAL masks.
 * @throws TileDecodeError or PixelBudgetError from decoding.
 * @throws TileInvalidError when the raster does not fit the model's feature spec.
 */
export async function classifyTileBytes(
  bytes: Uint8Array,
  classifier: Classifier,
  source: ResultSource & { readonly pam?: Pam | undefined },
  lane: Lane,
  options: { maxPixels?: number; signal?: AbortSignal } = {},
): Promise<ClassifiedTile> {
  // Runs in worker threads: the CRS comes from `source` (resolved when the tile was registered).
  const raster = applyPam(await decodeGeoTiff(bytes, { ...options, crs: "keys" }), source.pam);
  return classifyRaster(raster, classifier, source, lane);
}
