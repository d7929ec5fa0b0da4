/**
 * A small live result and its class raster, as the live view's tests put them: a 2×2 tile of one
 * cell, 3 pixels of class 1 and 1 of class 2, k = 5.
 */
import { encodeClassRaster, type TileResult } from "../../shared/index.js";

/** A live result of `tileId` in `cell` at ingest sequence `ingestSeq`. */
export function liveResult(tileId: string, cell: string, ingestSeq: number): TileResult {
  return {
    lane: "live",
    tileId,
    cell,
    acquired: "2026-11-01T10:00:00Z",
    ingestSeq,
    contentHash: "a".repeat(64),
    modelVersion: "m1",
    width: 2,
    height: 2,
    geoTransform: [0, 30, 0, 0, 0, -30],
    epsg: 32615,
    proj4: null,
    boundsWgs84: null,
    validPixels: 4,
    counts: [0, 3, 1],
    areasM2: [0, 2700, 900],
    dominantClass: 1,
    meanConfidence: 0.8,
    processedAt: "2026-11-01T10:00:01Z",
  };
}

/** The encoded class raster of {@link liveResult}'s tile. */
export const liveRaster = encodeClassRaster({
  width: 2,
  height: 2,
  k: 5,
  classes: new Uint8Array([1, 1, 1, 2]),
  votes: new Uint8Array([5, 4, 3, 5]),
});
