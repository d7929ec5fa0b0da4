/**
 * lanemap's domain core: the one public surface of shared/ for the lanes, serving and infra.
 * Pure functions over typed arrays and plain records; technologies live in shared/adapters/<tech>/.
 */
export * from "./errors.js";
export * from "./raster/index.js";
export * from "./geotiff/index.js";
export * from "./crs/index.js";
export * from "./features/index.js";
export * from "./classifier/index.js";
export * from "./accuracy/index.js";
export * from "./hilbert/index.js";
export * from "./util/index.js";
export * from "./workers/index.js";
export * from "./grid.js";
export * from "./config.js";
export * from "./view/index.js";
export * from "./pipeline/index.js";
export * from "./lonlat/index.js";
export * from "./models/index.js";
export * from "./labels/index.js";
export * from "./storage/index.js";
