/**
 * Messages between a batch run and its tile workers. A worker is told which tile to classify by its
 * catalogue entry and reads the bytes from the archive itself, so the run's thread never holds
 * pixels; only the small summary and the compressed class raster come back (the raster's buffer is
 * transferred, not copied).
 */
import type { CatalogueEntry, ErrorCode, TileResult } from "../shared/index.js";

/** What a worker is started with. */
export interface TileWorkerData {
  readonly dataDir: string;
  readonly modelPath: string;
  readonly maxPixels: number;
  /** Test hook: sleep this long before each tile (see batch/README.md). 0 in production. */
  readonly tileDelayMs: number;
}

/** From the run to a worker: classify this tile. */
export type ToWorker = { readonly type: "tile"; readonly job: number; readonly entry: CatalogueEntry };

/** From a worker to the run: started (or not), and each tile's result or failure. */
export type FromWorker =
  | { readonly type: "ready"; readonly modelVersion: string }
  | { readonly type: "init-failed"; readonly code: ErrorCode; readonly message: string }
  | {
      readonly type: "done";
      readonly job: number;
      readonly result: TileResult;
      /** Neighbours per vote of the class raster. */
      readonly k: number;
      /** encodeClassRaster output. */
      readonly raster: Uint8Array;
    }
  | { readonly type: "failed"; readonly job: number; readonly code: ErrorCode; readonly reason: string };
