export type { BandArray, Bounds, Crs, DType, GeoTransform, Raster, RasterInfo } from "./types.js";
export { nodataAsCompared } from "./nodata.js";
