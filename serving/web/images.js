/**
 * Class images: fetched as blobs, so a re-classified tile (same tile id, new model) is never
 * served from the browser's image cache, and shown once decoded.
 */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { IMAGE_CONCURRENCY } from "./constants.js";
import { ApiError, cellImagePath } from "./api.js";
import { imageKey, state } from "./state.js";
import { map } from "./map.js";
import { cellChanged } from "./live.js";
import { reportError } from "./status.js";

/** Cells waiting for their image, each at most once (`entry.queued`). @type {import("./state.js").CellEntry[]} */
const imageQueue = [];
let imagesInFlight = 0;

function inView(entry) {
  return map.getBounds().pad(0.5).intersects(entry.bounds);
}

/** Fetches the cell's image unless it shows or fetches that very image already, or is off screen. */
export function requestImage(entry) {
  const key = imageKey(entry.summary);
  if (key === entry.shown?.key || key === entry.loadingKey || !inView(entry)) return;
  entry.loadingKey = key;
  if (!entry.queued) {
    entry.queued = true;
    imageQueue.push(entry);
  }
  pumpImages();
}

export function requestVisibleImages() {
  for (const entry of state.cells.values()) requestImage(entry);
}

function pumpImages() {
  while (imagesInFlight < IMAGE_CONCURRENCY && imageQueue.length) {
    const entry = imageQueue.shift();
    entry.queued = false;
    if (!entry.loadingKey || state.cells.get(entry.cell) !== entry) continue;
    imagesInFlight++;
    loadImage(entry, entry.loadingKey)
      .catch((err) => reportError(`Could not load the classes of ${entry.cell}`, err))
      .finally(() => {
        imagesInFlight--;
        pumpImages();
      });
  }
}

async function loadImage(entry, key) {
  const { tileId, lane } = entry.summary;
  // By cell key in every lane: the merged view's per-pixel composite, or what that lane's listing
  // gave for the cell (its composite or its tile), on the grid the outline was drawn from.
  const path = cellImagePath(entry.cell, "classes.png", state.lane);
  const res = await fetch(path, { cache: "no-store" });
  // Superseded while in flight (a newer result, another lane, the cell gone): drop this one.
  const current = () => state.cells.get(entry.cell) === entry && entry.loadingKey === key;
  if (!current()) return;
  if (res.status === 404 && entry.missingKey !== key) {
    // The tile left the view between the listing and this fetch (its live result expired, say):
    // ask the cell what it shows now, once; a second miss of the same image is an error.
    entry.missingKey = key;
    entry.loadingKey = null;
    cellChanged(entry.cell);
    return;
  }
  if (!res.ok) throw new ApiError(path, res.status, res.statusText);
  const blob = await res.blob();
  if (!current()) return;
  const url = URL.createObjectURL(blob);
  // An image fetched earlier but not shown yet is replaced before it ever appears. Its URL is freed
  // only once the newer image has loaded: revoking a blob the <img> may still be reading would make
  // the browser report a failed load.
  if (entry.pending) entry.discarded.push(entry.pending.url);
  entry.pending = { key, url, tileId, lane };
  const alt = `Classes of cell ${entry.cell} (${lane} result ${tileId})`;
  if (!entry.overlay) {
    entry.overlay = L.imageOverlay(url, entry.bounds, {
      pane: "classes",
      className: "lm-classes",
      interactive: false,
      alt,
    });
    entry.overlay.on("load", () => markShown(entry));
    entry.overlay.on("error", () => {
      if (entry.pending?.url === entry.overlay?.getElement()?.src)
        reportError(`Could not draw the classes of ${entry.cell}`, new Error("the PNG does not decode"));
    });
    entry.overlay.addTo(map);
  } else {
    entry.overlay.setBounds(entry.bounds);
    entry.overlay.setUrl(url);
    entry.overlay.getElement()?.setAttribute("alt", alt);
  }
}

/** Once the new image is decoded and shown: label it for readers and tests, free the old one. */
function markShown(entry) {
  const p = entry.pending;
  const img = entry.overlay?.getElement();
  if (!p || !img || img.src !== p.url) return;
  if (entry.shown) URL.revokeObjectURL(entry.shown.url);
  for (const url of entry.discarded.splice(0)) URL.revokeObjectURL(url);
  entry.shown = { key: p.key, url: p.url };
  entry.pending = null;
  if (entry.loadingKey === p.key) entry.loadingKey = null;
  img.dataset.cell = entry.cell;
  img.dataset.tileId = p.tileId;
  img.dataset.lane = p.lane;
  img.dataset.key = p.key;
}
