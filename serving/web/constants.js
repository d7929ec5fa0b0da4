/**
 * The web map's tunables and the outline styles of the lanes.
 */

export const LANES = ["merged", "batch", "live"];
/** Cells per listing page; the API allows up to 10 000. */
export const PAGE_SIZE = 1000;
/** Class PNGs fetched at once (a browser opens about six connections per host anyway). */
export const IMAGE_CONCURRENCY = 6;
/** Source and confidence layer PNGs fetched at once (images.js fetches the class PNGs). */
export const LAYER_CONCURRENCY = 4;
/** Cell refreshes fetched at once after live changes. */
export const REFRESH_CONCURRENCY = 4;
/** More changed cells than this at once (a replay, a reconnect) reloads the listing instead. */
export const BULK_CHANGES = 50;
/** How long live changes are gathered before they are fetched, so a burst costs one fetch per cell. */
export const CHANGE_GATHER_MS = 100;
export const VIEWS_REFRESH_MS = 10_000;
/** Event-triggered /v1/views refreshes are at most this frequent. */
export const VIEWS_MIN_GAP_MS = 1000;
/** An event stream the server refused (too many streams) is retried after this long. */
export const EVENTS_RETRY_MS = 30_000;
export const HEX_COLOUR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;

export const OUTLINE = {
  batch: { color: "#33404d", weight: 1, opacity: 0.35, dashArray: null },
  live: { color: "#d1127a", weight: 2, opacity: 0.95, dashArray: null },
  selected: { color: "#111111", weight: 3, opacity: 1, dashArray: "6 4" },
};
