/**
 * shared/'s internals, for tests, benchmarks, the sample generator and infra: the kd-tree and its
 * reference kernel, the rasteriser, sampling and split helpers, the Hilbert curve itself, GeoTIFF
 * metadata parsers, the seeded random generator — plus everything of the domain face, so a test
 * imports from one place. The lanes never import this file (lint-enforced): what they need is in
 * shared/index.ts, and an internal can change without touching them (pattern: nats.js `mod.ts` /
 * `internal_mod.ts`).
 */
export * from "./index.js";
export { KnnEngine } from "./classifier/engine.js";
export {
  DEFAULT_LEAF_SIZE,
  KdTree,
  referenceKernel,
  type KernelName,
  type SearchKernel,
} from "./classifier/kdtree.js";
export { simdAvailable } from "./classifier/knn-simd.js";
export { mortonOrder } from "./classifier/order.js";
export { fillPolygon, isClockwise, pixelAt, pointPixel, polygonPixels } from "./classifier/rasterize.js";
export {
  geoJsonCrs,
  labelledGeometries,
  modelFromSamples,
  scalingOf,
  sortClassNames,
  subsetSamples,
  type LabelledGeometry,
} from "./classifier/training.js";
export { checkRasterForSpec, computeFeatureRows } from "./features/compute.js";
export {
  addConfusion,
  kFoldSplits,
  stratifiedGroupKFoldSplits,
  stratifiedSplit,
} from "./accuracy/accuracy.js";
export { registerFastDecoders } from "./geotiff/decoders.js";
export { decodeGeoTiffIsolated, type IsolatedDecodeOptions } from "./geotiff/pool.js";
export { parseDateTime, parseGdalMetadata, parseNodata, type GdalMetadataItem } from "./geotiff/metadata.js";
export { hilbertIndex, hilbertIndexOfPoint, hilbertOrderFor } from "./hilbert/curve.js";
export { aoiCompletion, blockAround, splitRanges, type TileBlock } from "./hilbert/ordering.js";
export { createRandom, hashSeed, type Random } from "./util/random.js";
