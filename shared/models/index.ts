/** The model registry interface both lanes and serving read, and what its adapters share. */
export {
  ModelConflictError,
  ModelNotFoundError,
  NoActiveModelError,
  artifactDigest,
  modelEntryOf,
  resolveActiveModel,
  type ActiveModelPointer,
  type ModelEntry,
  type ModelMeta,
  type ModelRegistry,
  type ModelRegistryBackend,
  type RegistryWatch,
} from "./registry.js";
export { MirroredModelRegistry, metaOf, reconcileRegistries } from "./mirrored.js";
export { EMPTY_CATALOGUE, assignClasses, mergeClasses, type ClassCatalogue } from "./catalogue.js";
export {
  MIN_CLASS_DELTA_E,
  deltaE2000,
  distinctClassColour,
  hexToLab,
  unusableClassColour,
  type Lab,
} from "./class-colours.js";
