export { DEFAULT_MAX_PIXELS, decodeGeoTiff, readGeoTiffInfo, type DecodeOptions } from "./decode.js";
export { registerFastDecoders } from "./decoders.js";
export { MAX_PAM_BYTES, applyPam, pamSchema, parsePam, type Pam } from "./pam.js";
export {
  DEFAULT_DECODE_TIMEOUT_MS,
  DecoderPool,
  decodeGeoTiffIsolated,
  type DecoderPoolOptions,
  type IsolatedDecodeOptions,
} from "./pool.js";
export { parseDateTime, parseGdalMetadata, parseNodata, type GdalMetadataItem } from "./metadata.js";
export * from "./encode.js";
