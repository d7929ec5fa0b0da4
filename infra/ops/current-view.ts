/**
 * CURRENT and its manifest as the operator scripts read them: through the deployment's
 * `PublishedViews` (shared/storage), the one the composition root opened for the configured
 * backend, so `ops expire` and `ops diff` on a machine of a cluster (LANEMAP_STORAGE=nats, an empty
 * data directory) see the view serving sees, not whatever a local views/batch/ folder holds.
 */
import { VIEW_POINTER_BUCKET, VIEW_POINTER_KEY } from "../../shared/adapters/nats/index.js";
import { dataPaths, type PublishedVersion, type PublishedViews } from "../../shared/index.js";

/** The version CURRENT names, as the store lists it, with the pointer's revision. */
export interface CurrentView extends PublishedVersion {
  readonly revision: number;
}

/**
 * The version CURRENT names with its manifest (watermark, version number), or null when nothing is
 * published or CURRENT names a version the store does not list as complete (as the files backend's
 * readCurrentBatch answers). Reads the pointer, then the listing; no file is downloaded.
 * @throws the store's errors (LanemapError STORAGE when NATS cannot be read).
 */
export async function readCurrentView(
  views: Pick<PublishedViews, "current" | "list">,
): Promise<CurrentView | null> {
  const pointer = await views.current();
  if (!pointer) return null;
  const listed = (await views.list()).find((v) => v.name === pointer.name);
  return listed ? { ...listed, revision: pointer.revision } : null;
}

/**
 * Where the store keeps CURRENT, for error messages: the file of the data directory, or the KV key
 * in NATS (a "views/batch/CURRENT is missing" would send a cluster's operator to the wrong place).
 */
export function currentPlace(views: Pick<PublishedViews, "backend">, dataDir: string): string {
  return views.backend === "files"
    ? dataPaths(dataDir).batchCurrent
    : `NATS (key ${VIEW_POINTER_KEY} of KV bucket ${VIEW_POINTER_BUCKET})`;
}
