export { MAX_PAM_BYTES, applyPam, pamSchema, parsePam, type Pam } from "./pam.js";
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
export { DEFAULT_DECODE_TIMEOUT_MS, DecoderPool, type DecoderPoolOptions } from "./pool.js";
export { MAX_DECODED_BYTES } from "./layout.js";
export * from "./encode.js";
export { pamCategoryNamesXml } from "./pam-write.js";
