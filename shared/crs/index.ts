export {
  CrsError,
  WGS84,
  crsFromEpsg,
  fromWgs84,
  projectPoint,
  proj4NeedsGrid,
  sameCrs,
  toWgs84,
  transformBounds,
} from "./crs.js";
export { lookupEpsg, type EpsgEntry } from "./epsg.js";
export {
  loadProjEngine,
  loadedProjEngine,
  type GdalCrsReading,
  type PointsTransform,
  type ProjEngine,
} from "./proj.js";
export { readGeoTiffCrsOnce, transformPointsOnce } from "./proj-memo.js";
