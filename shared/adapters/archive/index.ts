/** File-system adapters: the master archive, the catalogue and the published batch views. */
export { ArchiveStore, TileConflictError, contentHash } from "./archive-store.js";
export {
  listBatchVersions,
  readBatchVersion,
  readCurrentBatch,
  readCurrentPointer,
  readCurrentRevision,
  setCurrentBatch,
  FilePublishedViews,
  type BatchVersion,
} from "./batch-views.js";
export { createFileDurable, writeFileDurable, fsyncPath } from "./durable.js";
export { FileModelRegistry, type ModelMigration } from "./file-model-registry.js";
export { LabelStore, LabelNotFoundError, LabelStoreError } from "./label-store.js";
