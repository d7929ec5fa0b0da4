export {
  ArchiveExistsError,
  generateArchive,
  type ArchiveManifest,
  type ArchiveOptions,
  type ArchiveSummary,
} from "./archive.js";
export { landCover, type Scenario } from "./landcover.js";
export {
  CLASS_ID,
  SAMPLE_BAND_NAMES,
  SAMPLE_BAND_WAVELENGTHS,
  SAMPLE_CLASSES,
  SAMPLE_NIR_BAND,
  SAMPLE_RED_BAND,
  SAMPLE_REFLECTANCE_SCALE,
  SAMPLE_SPECTRA,
  type ClassSpectrum,
  type SampleClass,
  type SampleClassName,
} from "./spectra.js";
export {
  SAMPLE_BASE_TIME,
  SAMPLE_EPSG,
  SAMPLE_NODATA,
  SAMPLE_ORIGIN,
  SAMPLE_PIXEL_SIZE,
  SAMPLE_QA,
  SAMPLE_QA_BAND_NAME,
  SAMPLE_TRUTH_COLORS,
  archiveAcquisition,
  generateTile,
  sampleGeoTransform,
  type GeneratedTile,
  type TileRequest,
} from "./tile.js";
export type { TrainingPolygon } from "./training.js";
