export { DEFAULT_MAX_PIXELS, decodeGeoTiff, readGeoTiffInfo, type DecodeOptions } from "./decode.js";
export { DEFAULT_DECODE_TIMEOUT_MS, DecoderPool, type DecoderPoolOptions } from "./pool.js";
export * from "./encode.js";
