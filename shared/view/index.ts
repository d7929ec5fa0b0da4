export * from "./types.js";
export * from "./merge.js";
export * from "./paths.js";
export * from "./raster-codec.js";
export * from "./batch-schema.js";
export * from "./composite.js";
export * from "./resample.js";
export * from "./ingest-clock.js";
