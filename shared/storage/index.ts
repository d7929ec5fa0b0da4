/** Storage every machine reaches: the archive and published-view interfaces (backends in shared/adapters). */
export {
  ViewPointerConflictError,
  removalDroppable,
  removedBy,
  validCatalogueEntry,
  type PublishedVersion,
  type PublishedViews,
  type TileArchive,
  type VersionReservation,
  type ViewPointer,
} from "./storage.js";
