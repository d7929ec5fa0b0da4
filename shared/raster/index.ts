export type { BandArray, Bounds, Crs, DType, GeoTransform, Raster, RasterInfo } from "./types.js";
