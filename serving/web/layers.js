/**
 * Map layers beside the classes, so an analyst can check a class against the scene and see where
 * more labels would help:
 *
 * - source imagery under the class overlay: each cell's archived scene as true colour (bands 3,2,1)
 *   or false colour (4,3,2, vegetation red), `/v1/tiles/{cell}/source.png?preset=…` (per pixel the
 *   acquisition the class composite took it from), stretched 2-98 % per band by the server;
 * - confidence above it: each classified pixel's kNN vote share, `/v1/tiles/{cell}/confidence.png`
 *   (ColorBrewer YlOrRd reversed: the deeper the red, the fewer neighbours agreed);
 * - an opacity per layer, the class overlay's too (the source shows through it).
 *
 * Images are fetched as blobs for the cells near the view only, a few at a time, as the class images
 * are (images.js), by cell key with the lane (`?lane=`, api.js `cellImagePath`), so each lies on the
 * grid the lane's listing gives; a layer image is kept while the cell's class image key stays.
 * Controls: the "Layers" card of index.html. Each overlay
 * `<img class="lm-source">` / `<img class="lm-confidence">` carries `data-cell`, `data-tile-id` and
 * `data-key` once decoded; `body[data-source-layer]` and `body[data-confidence-layer]` say what is on.
 */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { LAYER_CONCURRENCY } from "./constants.js";
import { $ } from "./dom.js";
import { ApiError, cellImagePath } from "./api.js";
import { imageKey, state } from "./state.js";
import { map } from "./map.js";
import { reportError } from "./status.js";

const SOURCE_MODES = ["off", "true-colour", "false-colour"];

const layers = {
  /** "off", "true-colour" or "false-colour". */
  source: "off",
  confidence: false,
};

/**
 * Per cell and layer: the overlay and its image.
 * @type {Map<string, {source: LayerImage, confidence: LayerImage}>}
 * @typedef {{overlay: L.ImageOverlay | null, key: string | null, url: string | null, loading: string | null}} LayerImage
 */
const images = new Map();
const queue = [];
let inFlight = 0;

const blank = () => ({ overlay: null, key: null, url: null, loading: null });

/**
 * The image a layer should show for a cell now, or null when the layer is off. Asked by cell key and
 * lane, as the classes are (images.js): a per-pixel composite's confidence, and its source drawn per
 * pixel from the acquisition each class came from, so imagery, classes and confidence agree pixel for
 * pixel on the lane's grid. A composite follows the classes (a new source or model changes it), so
 * its key is the class image's.
 */
function wanted(kind, entry) {
  const drawn = `cell:${imageKey(entry.summary)}`;
  if (kind === "source")
    return layers.source === "off"
      ? null
      : {
          key: `${drawn}|${layers.source}`,
          path: cellImagePath(entry.cell, `source.png?preset=${layers.source}`, state.lane),
          fresh: true,
        };
  return layers.confidence
    ? { key: drawn, path: cellImagePath(entry.cell, "confidence.png", state.lane), fresh: true }
    : null;
}

function near(entry) {
  return map.getBounds().pad(0.5).intersects(entry.bounds);
}

/** Brings one cell's layer images up to date (called by cells.js whenever a cell is shown or changes). */
export function syncCellLayers(entry) {
  let slot = images.get(entry.cell);
  if (!slot) {
    slot = { source: blank(), confidence: blank() };
    images.set(entry.cell, slot);
  }
  for (const kind of ["source", "confidence"]) {
    const img = slot[kind];
    const want = wanted(kind, entry);
    if (!want) {
      clear(img);
      continue;
    }
    if (img.overlay && !img.overlay.getBounds().equals(entry.bounds)) img.overlay.setBounds(entry.bounds);
    if (want.key === img.key || want.key === img.loading || !near(entry)) continue;
    img.loading = want.key;
    queue.push({ cell: entry.cell, kind, ...want });
  }
  pump();
}

/** Drops a cell's layer images (called by cells.js when a cell leaves the map). */
export function dropCellLayers(cell) {
  const slot = images.get(cell);
  if (!slot) return;
  images.delete(cell);
  clear(slot.source);
  clear(slot.confidence);
}

function clear(img) {
  img.overlay?.remove();
  if (img.url) URL.revokeObjectURL(img.url);
  Object.assign(img, blank());
}

function syncAll() {
  for (const entry of state.cells.values()) syncCellLayers(entry);
}

function pump() {
  while (inFlight < LAYER_CONCURRENCY && queue.length) {
    const job = queue.shift();
    const img = images.get(job.cell)?.[job.kind];
    if (!img || img.loading !== job.key) continue;
    inFlight++;
    load(job, img)
      .catch((err) => {
        if (img.loading === job.key) img.loading = null;
        reportError(`Could not load the ${job.kind} layer of ${job.cell}`, err);
      })
      .finally(() => {
        inFlight--;
        pump();
      });
  }
}

async function load(job, img) {
  // Confidence and a cell's composite follow the classes (same URL, new model or source): never a
  // cached image for them; a tile's own scene never changes.
  const res = await fetch(job.path, job.fresh ? { cache: "no-store" } : {});
  if (img.loading !== job.key || images.get(job.cell)?.[job.kind] !== img) return;
  if (res.status === 404) {
    // No archived source (a tile registered elsewhere), or the tile just left the view: nothing to draw.
    img.loading = null;
    img.key = job.key;
    img.overlay?.remove();
    img.overlay = null;
    return;
  }
  if (res.status === 503) {
    // The server is decoding many scenes (render-busy): ask again when it says, not as an error.
    img.loading = null;
    const wait = 1000 * (Number(res.headers.get("Retry-After")) || 1);
    setTimeout(() => {
      const entry = state.cells.get(job.cell);
      if (entry) syncCellLayers(entry);
    }, wait);
    return;
  }
  if (!res.ok) throw new ApiError(job.path, res.status, res.statusText);
  const url = URL.createObjectURL(await res.blob());
  if (img.loading !== job.key || images.get(job.cell)?.[job.kind] !== img) {
    URL.revokeObjectURL(url);
    return;
  }
  const entry = state.cells.get(job.cell);
  if (!entry) return URL.revokeObjectURL(url);
  const old = img.url;
  img.url = url;
  img.key = job.key;
  img.loading = null;
  const tileId = entry.summary.tileId;
  if (!img.overlay) {
    img.overlay = L.imageOverlay(url, entry.bounds, {
      pane: job.kind,
      className: `lm-${job.kind}`,
      interactive: false,
      alt: job.kind === "source" ? `Source scene of cell ${job.cell}` : `Confidence of cell ${job.cell}`,
    });
    img.overlay.addTo(map);
  } else img.overlay.setUrl(url);
  const el = img.overlay.getElement();
  el?.addEventListener(
    "load",
    () => {
      if (old) URL.revokeObjectURL(old);
      if (el.src !== url) return;
      el.dataset.cell = job.cell;
      el.dataset.tileId = tileId;
      el.dataset.key = job.key;
    },
    { once: true },
  );
}

function setOpacity(pane, input) {
  const apply = () => {
    map.getPane(pane).style.opacity = String(Number(input.value) / 100);
  };
  input.addEventListener("input", apply);
  apply();
}

/** Creates the panes and wires the "Layers" card; call once the map exists. */
export function initLayers() {
  // Source under the classes (350), confidence over them and under the outlines (overlayPane, 400).
  map.createPane("source");
  map.createPane("confidence");
  for (const input of document.querySelectorAll('input[name="source-layer"]')) {
    input.checked = input.value === layers.source;
    input.addEventListener("change", () => {
      if (!input.checked || !SOURCE_MODES.includes(input.value)) return;
      layers.source = input.value;
      document.body.dataset.sourceLayer = layers.source;
      syncAll();
    });
  }
  const confidence = $("layer-confidence");
  confidence.checked = layers.confidence;
  confidence.addEventListener("change", () => {
    layers.confidence = confidence.checked;
    document.body.dataset.confidenceLayer = layers.confidence ? "on" : "off";
    syncAll();
  });
  document.body.dataset.sourceLayer = layers.source;
  document.body.dataset.confidenceLayer = "off";
  setOpacity("source", $("source-opacity"));
  setOpacity("confidence", $("confidence-opacity"));
  setOpacity("classes", $("classes-opacity"));
  map.on("moveend", syncAll);
}
