/**
 * The page's state: the lane shown, the classes, the cells on the map, the selection, the newest
 * snapshot seen; and how answers' snapshots compare.
 */
/* global URLSearchParams, location */
import { LANES } from "./constants.js";

/**
 * One cell on the map.
 * @typedef {object} CellEntry
 * @property {string} cell
 * @property {any} summary        the TileSummary the map shows for this cell in the current lane
 * @property {{batch: number, live: number}} seen  the snapshot the summary was read from
 * @property {L.LatLngBounds} bounds
 * @property {L.Rectangle} outline
 * @property {L.ImageOverlay | null} overlay
 * @property {{key: string, url: string} | null} shown  the image the overlay shows (a blob URL)
 * @property {{key: string, url: string, tileId: string, lane: string} | null} pending  set, not yet decoded
 * @property {string | null} loadingKey  image key being fetched
 * @property {string | null} missingKey  image key the server answered 404 for (refreshed once)
 * @property {boolean} queued            waiting in the image queue
 * @property {string[]} discarded        blob URLs replaced before they were shown, freed on the next load
 */

export const state = {
  lane: initialLane(),
  /** @type {{id: number, name: string, colour: string}[]} */
  classes: [],
  /** @type {Map<string, CellEntry>} */
  cells: new Map(),
  /** @type {string | null} */
  selected: null,
  fitted: false,
  /** The newest snapshot any answer came from, for the status line. */
  snapshot: null,
  /** Bumped by every full listing; slower answers of an older one are dropped. */
  generation: 0,
};

function initialLane() {
  const lane = new URLSearchParams(location.search).get("lane");
  return LANES.includes(lane) ? lane : "merged";
}

/**
 * What the overlay image depends on. A tile id names one acquisition, but the same tile can be
 * classified again (a batch run with a new model), so the processing time and model are part of it;
 * and one tile is drawn differently per lane and view (alone, or as the newest source of a per-pixel
 * composite on the cell's union grid), so the lane, the batch view's version and the grid the
 * listing gives (pixel size, bbox) are too: an image is never reused on another grid.
 */
export const imageKey = (s, lane = state.lane) =>
  [
    lane,
    `${s.tileId}@${s.processedAt}@${s.modelVersion}`,
    `v${s.provenance?.batchVersion ?? "-"}`,
    `${s.width}x${s.height}`,
    (s.bbox ?? []).join(","),
  ].join("|");

/** The snapshot an answer was read from, comparable between answers. */
export const snapshotOrder = (snapshot) => ({
  batch: snapshot?.batch?.version ?? 0,
  live: snapshot?.live?.position ?? 0,
});

/** True when an answer from `b` is older than what `a` already showed. */
export const olderThan = (b, a) => b.batch < a.batch || (b.batch === a.batch && b.live < a.live);
