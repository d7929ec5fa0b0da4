export {
  DEFAULT_MAX_PIXELS,
  decodeGeoTiff,
  readGeoTiffInfo,
  type CrsReading,
  type DecodeOptions,
} from "./decode.js";
export {
  PROJ4_AGREEMENT_M,
  readCrsWithProj,
  resolveCrs,
  resolveEpsgCrs,
  resolveRasterCrs,
  type ResolvedCrs,
} from "./crs-resolve.js";
export { registerFastDecoders } from "./decoders.js";
export {
  DEFAULT_DECODE_TIMEOUT_MS,
  DecoderPool,
  decodeGeoTiffIsolated,
  type DecoderPoolOptions,
  type IsolatedDecodeOptions,
} from "./pool.js";
export { parseDateTime, parseGdalMetadata, parseNodata, type GdalMetadataItem } from "./metadata.js";
export * from "./encode.js";
export { pamCategoryNamesXml } from "./pam-write.js";
