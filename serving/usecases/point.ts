/**
 * The class at a point: among the merged view's winners whose WGS84 box holds the point, those
 * whose pixel grid really contains it after reprojection into the tile's CRS; if several do
 * (overlapping footprints of neighbouring cells), the newest by the merge rule's order answers.
 * With a lane (`batch` or `live`), each cell answers with what that lane's listing gives for it
 * (MergedIndex.inLane: the batch view's composite or tile, the newest live tile), so the web map's
 * Pixel card describes the image the lane draws.
 */
import { compareCandidates } from "../../shared/index.js";
import { NotFoundError } from "../errors.js";
import type { PointBody } from "../api/schemas.js";
import { pixelAt } from "../geo/pixels.js";
import { sourceAt } from "../view/pixel-composite.js";
import type { ServedResult } from "../view/served-result.js";
import type { LaneSelector } from "../view/merged-index.js";
import type { SnapshotLease } from "../view/snapshot.js";
import { className, pixelSourceBody, provenance, snapshotInfo } from "./present.js";

/**
 * Finds the winner (or, with `lane` batch/live, that lane's result, found by its own box) covering
 * a lon/lat and the pixel it falls in, or undefined.
 */
export function coveringWinner(
  lease: SnapshotLease,
  lon: number,
  lat: number,
  lane: LaneSelector = "merged",
): { result: ServedResult; pixel: { col: number; row: number; x: number; y: number } } | undefined {
  let best: { result: ServedResult; pixel: { col: number; row: number; x: number; y: number } } | undefined;
  const consider = (r: ServedResult | undefined) => {
    if (!r?.crs) return;
    const pixel = pixelAt(
      { width: r.summary.width, height: r.summary.height, geoTransform: r.summary.geoTransform, crs: r.crs },
      lon,
      lat,
    );
    if (pixel && (!best || compareCandidates(r, best.result) < 0)) best = { result: r, pixel };
  };
  const at = { minX: lon, minY: lat, maxX: lon, maxY: lat };
  const index = lease.snapshot.index;
  if (lane === "merged") index.winners().search(at, (cell) => consider(cell.winner));
  else index.laneResults(lane).search(at, consider);
  return best;
}

/**
 * The class and confidence at a point in the merged view, or in one lane's.
 * @throws NotFoundError (404 no-coverage) when no tile of that view covers it.
 */
export async function pointQuery(
  lease: SnapshotLease,
  lon: number,
  lat: number,
  lane: LaneSelector = "merged",
): Promise<PointBody> {
  const hit = coveringWinner(lease, lon, lat, lane);
  if (!hit)
    throw new NotFoundError(`no tile of the ${lane} view covers lon ${lon}, lat ${lat}`, "no-coverage");
  const { result: r, pixel } = hit;
  const i = pixel.row * r.summary.width + pixel.col;
  // The pixel's own source: a composite names it per pixel; a plain winner is its valid pixels' source.
  const composed = r.composite ? await r.composite.compose() : undefined;
  const raster = composed ? composed.raster : await r.raster();
  const cls = raster.classes[i] ?? 0;
  const src = composed ? sourceAt(composed, i) : cls === 0 ? null : r;
  const shown = src ?? r;
  const votes = cls === 0 ? 0 : (raster.votes[i] ?? 0);
  const source = src ? pixelSourceBody(src, lease.now) : null;
  return {
    lon,
    lat,
    cell: r.cell,
    tileId: shown.tileId,
    class: { id: cls, name: className(lease.snapshot.classes, cls) },
    confidence: raster.k > 0 ? votes / raster.k : 0,
    votes,
    k: raster.k,
    pixel: { col: pixel.col, row: pixel.row },
    crs: { epsg: r.summary.epsg, x: pixel.x, y: pixel.y },
    source,
    ageDays: source ? source.ageDays : null,
    provenance: provenance(shown, lease.snapshot, lease.now),
    snapshot: snapshotInfo(lease),
  };
}
