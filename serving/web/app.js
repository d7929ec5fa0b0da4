/**
 * lanemap's web map. Plain browser ESM over the serving API, no bundler:
 *
 * - every cell's class raster as an image overlay at the cell's WGS84 bounds, for the merged view
 *   or one lane (`/v1/tiles?lane=…&f=geojson`, paged by cursor; `/v1/tiles/{tileId}/classes.png`);
 * - the legend from the model's classes (the STAC collection's `lanemap:classes` summary);
 * - a panel with one cell's provenance, class shares and candidates (`/v1/tiles/{cell}`);
 * - live updates from server-sent events (`/v1/events`): a changed cell is refetched, a batch view
 *   switch reloads everything;
 * - how fresh the views are (`/v1/views`), refreshed periodically and on events.
 *
 * The page runs under a strict CSP ('self' only): no inline script or style, and DOM built with
 * textContent, never innerHTML, since class names and ids come from data.
 */
/* global URLSearchParams, history, location */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";

const LANES = ["merged", "batch", "live"];
/** Cells per listing page; the API allows up to 10 000. */
const PAGE_SIZE = 1000;
/** Class PNGs fetched at once (a browser opens about six connections per host anyway). */
const IMAGE_CONCURRENCY = 6;
/** Cell refreshes fetched at once after live changes. */
const REFRESH_CONCURRENCY = 4;
/** More changed cells than this at once (a replay, a reconnect) reloads the listing instead. */
const BULK_CHANGES = 50;
/** How long live changes are gathered before they are fetched, so a burst costs one fetch per cell. */
const CHANGE_GATHER_MS = 100;
const VIEWS_REFRESH_MS = 10_000;
/** Event-triggered /v1/views refreshes are at most this frequent. */
const VIEWS_MIN_GAP_MS = 1000;
/** An event stream the server refused (too many streams) is retried after this long. */
const EVENTS_RETRY_MS = 30_000;
const HEX_COLOUR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;

const OUTLINE = {
  batch: { color: "#33404d", weight: 1, opacity: 0.35, dashArray: null },
  live: { color: "#d1127a", weight: 2, opacity: 0.95, dashArray: null },
  selected: { color: "#111111", weight: 3, opacity: 1, dashArray: "6 4" },
};

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page lacks #${id}`);
  return el;
};

/** Creates an element with attributes, properties (`text` is textContent) and children. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "text") el.textContent = String(v);
    else if (k === "className") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** "2024-01-15 16:41:03 UTC" from an ISO time. */
function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, " UTC");
}

/** A duration in seconds as people say it: "0.4 s", "12 s", "5 min", "3.2 h", "14 d", "2.1 y". */
function formatAge(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "—";
  const a = Math.max(0, s);
  if (a < 10) return `${a.toFixed(1)} s`;
  if (a < 90) return `${Math.round(a)} s`;
  if (a < 90 * 60) return `${Math.round(a / 60)} min`;
  if (a < 36 * 3600) return `${(a / 3600).toFixed(1)} h`;
  if (a < 365 * 86400) return `${Math.round(a / 86400)} d`;
  return `${(a / (365.25 * 86400)).toFixed(1)} y`;
}

function formatPercent(x) {
  if (!Number.isFinite(x)) return "—";
  return x >= 0.1 || x === 0 ? `${(x * 100).toFixed(1)} %` : `${(x * 100).toFixed(2)} %`;
}

function formatArea(m2) {
  if (!Number.isFinite(m2)) return "—";
  return m2 >= 1e6 ? `${(m2 / 1e6).toFixed(2)} km²` : `${(m2 / 1e4).toFixed(2)} ha`;
}

function formatCount(n) {
  return Number.isFinite(n) ? n.toLocaleString("en") : "—";
}

/** "1 cell", "9 cells". */
function counted(n, noun) {
  return `${formatCount(n)} ${noun}${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------------------------------------
// The API

/** An answer that was not 2xx, with the problem's detail when the body is a problem document. */
class ApiError extends Error {
  constructor(path, status, detail) {
    super(`${path}: ${status} ${detail}`);
    this.name = "ApiError";
    this.status = status;
  }
}

async function api(path) {
  const res = await fetch(path, { headers: { Accept: "application/json, application/geo+json" } });
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const p = await res.json();
      detail = p.detail ?? p.title ?? detail;
    } catch {
      // Not a problem document: the status text says enough.
    }
    throw new ApiError(path, res.status, detail);
  }
  return res.json();
}

const tilePath = (id) => `/v1/tiles/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------------
// State

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

const state = {
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
 * classified again (a batch run with a new model), so the processing time and model are part of it.
 */
const imageKey = (s) => `${s.tileId}@${s.processedAt}@${s.modelVersion}`;

/** The snapshot an answer was read from, comparable between answers. */
const snapshotOrder = (snapshot) => ({
  batch: snapshot?.batch?.version ?? 0,
  live: snapshot?.live?.position ?? 0,
});

/** True when an answer from `b` is older than what `a` already showed. */
const olderThan = (b, a) => b.batch < a.batch || (b.batch === a.batch && b.live < a.live);

// ---------------------------------------------------------------------------------------------
// The map

const map = L.map("map", {
  zoomSnap: 0.25,
  zoomDelta: 0.5,
  minZoom: 2,
  maxZoom: 18,
  worldCopyJump: false,
  attributionControl: true,
});
map.attributionControl.setPrefix(false);
map.attributionControl.addAttribution("lanemap classes · Leaflet");
L.control.scale({ metric: true, imperial: false }).addTo(map);
// Class images sit below the outlines (overlayPane, 400), so clicks reach the outlines; the
// graticule is drawn over both but takes no clicks. z-indexes are in style.css.
map.createPane("classes");
map.createPane("graticule");
map.setView([0, 0], 2);

/** Shows the pointer's coordinates, the only geography a map without a basemap can give. */
const CoordinatesControl = L.Control.extend({
  options: { position: "bottomleft" },
  onAdd(m) {
    const el = h("div", { className: "leaflet-control coords", "aria-hidden": "true" });
    m.on("mousemove", (e) => {
      const { lat, lng } = e.latlng;
      el.textContent = `${Math.abs(lat).toFixed(4)}° ${lat >= 0 ? "N" : "S"}  ${Math.abs(lng).toFixed(4)}° ${lng >= 0 ? "E" : "W"}`;
    });
    m.on("mouseout", () => (el.textContent = ""));
    return el;
  },
});
new CoordinatesControl().addTo(map);

let graticule = L.layerGroup().addTo(map);

/** The step of a graticule with a handful of lines over `span` degrees: 1, 2 or 5 × 10^k. */
function graticuleStep(span) {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Lines of latitude and longitude over the view, redrawn after every move. */
function drawGraticule() {
  const b = map.getBounds();
  const south = Math.max(-85, b.getSouth());
  const north = Math.min(85, b.getNorth());
  const west = Math.max(-180, b.getWest());
  const east = Math.min(180, b.getEast());
  if (!(north > south && east > west)) return;
  const step = graticuleStep(Math.max(north - south, east - west));
  const layer = L.layerGroup();
  const style = { pane: "graticule", interactive: false, color: "#7b8794", weight: 1, opacity: 0.45 };
  for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step)
    L.polyline(
      [
        [lat, west],
        [lat, east],
      ],
      style,
    ).addTo(layer);
  for (let lng = Math.ceil(west / step) * step; lng <= east; lng += step)
    L.polyline(
      [
        [south, lng],
        [north, lng],
      ],
      style,
    ).addTo(layer);
  graticule.remove();
  graticule = layer.addTo(map);
}

map.on("moveend", () => {
  drawGraticule();
  requestVisibleImages();
});

// ---------------------------------------------------------------------------------------------
// Class images: fetched as blobs, so a re-classified tile (same tile id, new model) is never
// served from the browser's image cache, and shown once decoded.

/** Cells waiting for their image, each at most once (`entry.queued`). @type {CellEntry[]} */
const imageQueue = [];
let imagesInFlight = 0;

function inView(entry) {
  return map.getBounds().pad(0.5).intersects(entry.bounds);
}

/** Fetches the cell's image unless it shows or fetches that very image already, or is off screen. */
function requestImage(entry) {
  const key = imageKey(entry.summary);
  if (key === entry.shown?.key || key === entry.loadingKey || !inView(entry)) return;
  entry.loadingKey = key;
  if (!entry.queued) {
    entry.queued = true;
    imageQueue.push(entry);
  }
  pumpImages();
}

function requestVisibleImages() {
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
  const path = `${tilePath(tileId)}/classes.png`;
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

// ---------------------------------------------------------------------------------------------
// Cells

function boundsOf(summary) {
  const b = summary.bbox;
  if (!Array.isArray(b) || b.length !== 4) return null;
  // west > east: the cell crosses the antimeridian (RFC 7946); Leaflet draws it whole past 180°.
  const east = b[2] < b[0] ? b[2] + 360 : b[2];
  return L.latLngBounds([b[1], b[0]], [b[3], east]);
}

function outlineStyle(entry) {
  return entry.cell === state.selected ? OUTLINE.selected : OUTLINE[entry.summary.lane];
}

/** A tooltip body built as DOM (class names come from data). */
function tooltipFor(entry) {
  const s = entry.summary;
  return h("span", {}, h("strong", { text: entry.cell }), ` · ${s.dominantClassName} · ${s.lane}`);
}

/**
 * Shows `summary` for its cell, read from `snapshot`. An answer older than what the cell already
 * shows (a slow listing page after a live change) is ignored, so the map never steps back.
 */
function upsertCell(summary, snapshot) {
  const bounds = boundsOf(summary);
  if (!bounds) return;
  const seen = snapshotOrder(snapshot);
  let entry = state.cells.get(summary.cell);
  if (entry && olderThan(seen, entry.seen)) return;
  if (!entry) {
    const outline = L.rectangle(bounds, {
      fill: true,
      fillOpacity: 0,
      interactive: true,
      className: "lm-outline",
      ...OUTLINE[summary.lane],
    });
    entry = {
      cell: summary.cell,
      summary,
      seen,
      bounds,
      outline,
      overlay: null,
      shown: null,
      pending: null,
      loadingKey: null,
      missingKey: null,
      queued: false,
      discarded: [],
    };
    const e = entry;
    outline.on("click", () => selectCell(e.cell, { pan: false }));
    outline.bindTooltip(() => tooltipFor(e), { sticky: true, direction: "top", opacity: 0.95 });
    outline.addTo(map);
    state.cells.set(summary.cell, entry);
  } else {
    entry.summary = summary;
    entry.seen = seen;
    if (!entry.bounds.equals(bounds)) {
      entry.bounds = bounds;
      entry.outline.setBounds(bounds);
    }
  }
  entry.outline.setStyle(outlineStyle(entry));
  entry.outline.getElement()?.setAttribute("data-cell", entry.cell);
  entry.outline.getElement()?.setAttribute("data-lane", summary.lane);
  requestImage(entry);
}

function removeCell(cell) {
  const entry = state.cells.get(cell);
  if (!entry) return;
  state.cells.delete(cell);
  entry.outline.remove();
  entry.overlay?.remove();
  if (entry.shown) URL.revokeObjectURL(entry.shown.url);
  if (entry.pending) URL.revokeObjectURL(entry.pending.url);
  for (const url of entry.discarded.splice(0)) URL.revokeObjectURL(url);
}

/** The result a lane shows for a cell, from its detail. */
function pickForLane(detail, lane) {
  if (lane === "merged") return detail.winner;
  if (lane === "batch") return detail.batch;
  const live = [...detail.candidates, ...detail.absorbed].filter((r) => r.lane === "live");
  live.sort((a, b) => Date.parse(b.acquired) - Date.parse(a.acquired) || b.ingestSeq - a.ingestSeq);
  return live[0] ?? null;
}

// ---------------------------------------------------------------------------------------------
// Loading

/**
 * Lists every cell of the current lane, page by page from one snapshot (the cursor pins it), and
 * makes the map show exactly those. A cursor whose snapshot expired (410) starts over.
 */
async function loadTiles() {
  const generation = ++state.generation;
  const lane = state.lane;
  const seen = new Set();
  let cursor = null;
  let restarts = 0;
  let snapshot;
  for (;;) {
    const q = new URLSearchParams({ lane, f: "geojson", limit: String(PAGE_SIZE) });
    if (cursor) q.set("cursor", cursor);
    let page;
    try {
      page = await api(`/v1/tiles?${q}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 410 && restarts++ < 3) {
        cursor = null;
        seen.clear();
        continue;
      }
      throw err;
    }
    if (generation !== state.generation) return false;
    snapshot = page.snapshot;
    for (const f of page.features) {
      seen.add(f.properties.cell);
      upsertCell(f.properties, page.snapshot);
    }
    cursor = page.cursor;
    if (!cursor) break;
  }
  for (const cell of [...state.cells.keys()]) if (!seen.has(cell)) removeCell(cell);
  state.snapshot = snapshot;
  updateCellChoices();
  fitOnce();
  renderStatus();
  return true;
}

/** Keeps the newest snapshot seen, for the status line. */
function noteSnapshot(snapshot) {
  if (!state.snapshot || !olderThan(snapshotOrder(snapshot), snapshotOrder(state.snapshot)))
    state.snapshot = snapshot;
}

function renderStatus() {
  const s = state.snapshot;
  if (!state.cells.size) {
    setStatus(`No ${state.lane === "merged" ? "" : `${state.lane} `}results yet`);
    return;
  }
  const batch = s?.batch ? `batch ${s.batch.name} (watermark ${s.batch.watermark})` : "no batch view";
  const live = s?.live ? `live position ${s.live.position}` : "no live view";
  setStatus(`${counted(state.cells.size, "cell")} · ${state.lane} view · ${batch} + ${live}`);
}

function fitOnce() {
  if (state.fitted || state.cells.size === 0) return;
  let all = null;
  for (const e of state.cells.values())
    all = all ? all.extend(e.bounds) : L.latLngBounds(e.bounds.getSouthWest(), e.bounds.getNorthEast());
  map.fitBounds(all, { padding: [24, 24] });
  state.fitted = true;
}

async function loadClasses() {
  const c = await api("/stac/collections/lanemap-tiles");
  const classes = c.summaries?.["lanemap:classes"];
  state.classes = Array.isArray(classes) ? classes : [];
  renderLegend();
}

function renderLegend() {
  const ul = $("legend");
  ul.replaceChildren();
  if (!state.classes.length) {
    ul.append(h("li", { className: "hint", text: "No classes yet: no batch view has been published." }));
    return;
  }
  for (const c of state.classes) {
    const swatch = h("span", { className: "swatch", "aria-hidden": "true" });
    if (HEX_COLOUR.test(c.colour)) swatch.style.backgroundColor = c.colour;
    ul.append(h("li", { dataset: { classId: String(c.id) } }, swatch, h("span", { text: c.name })));
  }
}

function classInfo(id) {
  return state.classes.find((c) => c.id === id) ?? null;
}

/** Reloads everything: after a batch switch (new model, new results) or a reconnected stream. */
async function reloadAll() {
  try {
    await Promise.all([loadClasses(), loadTiles()]);
    if (state.selected) await refreshPanel();
    refreshViewsSoon();
  } catch (err) {
    reportError("Could not reload the map", err);
  }
}

// ---------------------------------------------------------------------------------------------
// Cell choice and the tile panel

function updateCellChoices() {
  const select = $("cell-select");
  const cells = [...state.cells.keys()].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.length === cells.length && have.every((c, i) => c === cells[i])) return;
  select.replaceChildren(h("option", { value: "", text: "Choose a cell…" }));
  for (const cell of cells) select.append(h("option", { value: cell, text: cell }));
  select.value = state.selected && state.cells.has(state.selected) ? state.selected : "";
}

async function selectCell(cell, { pan }) {
  const previous = state.selected;
  state.selected = cell || null;
  for (const c of [previous, state.selected]) {
    const e = c ? state.cells.get(c) : undefined;
    if (e) e.outline.setStyle(outlineStyle(e));
  }
  state.cells.get(cell)?.outline.bringToFront();
  $("cell-select").value = state.selected ?? "";
  if (!state.selected) {
    renderPanelHint();
    return;
  }
  const entry = state.cells.get(state.selected);
  if (pan && entry) map.panTo(entry.bounds.getCenter());
  await refreshPanel();
}

let panelRequest = 0;
async function refreshPanel() {
  const cell = state.selected;
  if (!cell) return;
  const request = ++panelRequest;
  try {
    const detail = await api(tilePath(cell));
    if (request === panelRequest && state.selected === cell) renderPanel(detail);
  } catch (err) {
    if (request !== panelRequest) return;
    if (err instanceof ApiError && err.status === 404) renderPanelMessage(`Cell ${cell} has no result now.`);
    else reportError(`Could not load cell ${cell}`, err);
  }
}

function renderPanelHint() {
  const panel = $("tile-panel");
  panel.replaceChildren(
    h("p", {
      className: "hint",
      text: "Click a tile on the map, or choose a cell, to see where its classes came from.",
    }),
  );
  delete panel.dataset.cell;
  delete panel.dataset.lane;
  delete panel.dataset.tileId;
}

function renderPanelMessage(text) {
  $("tile-panel").replaceChildren(h("p", { className: "hint", text }));
}

function row(term, value, extra = {}) {
  return [h("dt", { text: term }), h("dd", extra, value)];
}

function renderPanel(detail) {
  const panel = $("tile-panel");
  const shown = pickForLane(detail, state.lane);
  panel.dataset.cell = detail.cell;
  if (!shown) {
    delete panel.dataset.lane;
    delete panel.dataset.tileId;
    panel.replaceChildren(
      h("h3", { text: detail.cell }),
      h("p", { className: "hint", text: `This cell has no ${state.lane} result.` }),
      candidatesList(detail),
    );
    return;
  }
  panel.dataset.lane = shown.lane;
  panel.dataset.tileId = shown.tileId;
  const p = shown.provenance;
  const snap = detail.snapshot;
  const laneBadge = h("span", { className: `badge badge-${shown.lane}`, text: shown.lane });
  const staleness = [`acquired ${formatAge(p.staleness.sinceAcquiredS)} ago`];
  if (p.staleness.viewAgeS !== null) staleness.push(`batch view ${formatAge(p.staleness.viewAgeS)} old`);
  const dominant = classInfo(shown.dominantClass);
  const dl = h(
    "dl",
    { className: "facts" },
    ...row("Lane", laneBadge, { "data-field": "lane" }),
    ...row("Tile", shown.tileId, { "data-field": "tile-id", className: "mono" }),
    ...row("Batch version", snap.batch ? `${snap.batch.name} (${snap.batch.version})` : "none", {
      "data-field": "batch-version",
    }),
    ...row("Watermark", p.watermark === null ? "—" : `ingest seq ${p.watermark}`, {
      "data-field": "watermark",
    }),
    ...row("Ingest seq", String(p.ingestSeq), { "data-field": "ingest-seq" }),
    ...row("Model", p.modelVersion, { "data-field": "model-version", className: "mono" }),
    ...row("Acquired", formatTime(p.acquired), { "data-field": "acquired" }),
    ...row("Processed", formatTime(p.processedAt), { "data-field": "processed" }),
    ...row("Staleness", staleness.join("; "), { "data-field": "staleness" }),
    ...row(
      "Dominant",
      `${dominant?.name ?? shown.dominantClassName} · confidence ${formatPercent(shown.meanConfidence)}`,
      { "data-field": "dominant" },
    ),
  );
  const links = detail.links
    ? h(
        "p",
        { className: "links" },
        h("a", { href: `${tilePath(shown.tileId)}/classes.tif`, text: "classes.tif" }),
        " · ",
        h("a", { href: `${tilePath(shown.tileId)}/source.tif`, text: "source.tif" }),
      )
    : null;
  panel.replaceChildren(
    h("h3", { text: detail.cell }),
    dl,
    sharesTable(shown),
    candidatesList(detail),
    links,
  );
}

/** Class shares of the valid (classified) pixels, with areas. */
function sharesTable(r) {
  const valid = r.validPixels;
  const total = r.width * r.height;
  const table = h(
    "table",
    { className: "shares" },
    h("caption", {
      text: `Class shares of ${formatCount(valid)} classified pixels${
        total > valid ? ` (${formatPercent((total - valid) / total)} no data)` : ""
      }`,
    }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col", text: "Class" }),
        h("th", { scope: "col", text: "Share" }),
        h("th", { scope: "col", text: "Area" }),
      ),
    ),
  );
  const body = h("tbody");
  const rows = [];
  for (let id = 1; id < r.counts.length; id++) {
    const n = r.counts[id] ?? 0;
    if (n > 0) rows.push({ id, n, area: r.areasM2[id] ?? 0 });
  }
  rows.sort((a, b) => b.n - a.n);
  for (const { id, n, area } of rows) {
    const c = classInfo(id);
    const share = valid > 0 ? n / valid : 0;
    const swatch = h("span", { className: "swatch", "aria-hidden": "true" });
    const bar = h("span", { className: "share-bar", "aria-hidden": "true" });
    if (c && HEX_COLOUR.test(c.colour)) {
      swatch.style.backgroundColor = c.colour;
      bar.style.backgroundColor = c.colour;
    }
    bar.style.width = `${(share * 100).toFixed(1)}%`;
    body.append(
      h(
        "tr",
        { dataset: { classId: String(id) } },
        h("th", { scope: "row" }, swatch, c?.name ?? `class ${id}`),
        h(
          "td",
          {},
          h("span", { className: "share-text", text: formatPercent(share) }),
          h("span", { className: "share-track" }, bar),
        ),
        h("td", { text: formatArea(area) }),
      ),
    );
  }
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: "3", text: "No classified pixels." })));
  table.append(body);
  return table;
}

/** Both lanes' candidates, newest first, marking the merged winner. */
function candidatesList(detail) {
  const all = detail.candidates;
  if (!all.length && !detail.absorbed.length) return null;
  const ol = h("ol", { className: "candidates" });
  for (const c of all) {
    const won = detail.winner && detail.winner.tileId === c.tileId && detail.winner.lane === c.lane;
    ol.append(
      h(
        "li",
        { dataset: { lane: c.lane } },
        h("span", { className: `badge badge-${c.lane}`, text: c.lane }),
        " ",
        h("span", { className: "mono", text: c.tileId }),
        ` · acquired ${formatTime(c.acquired)}`,
        won ? h("strong", { text: " · shown in the merged view" }) : null,
      ),
    );
  }
  const section = h("div", {}, h("h4", { text: "Candidates, newest first" }), ol);
  if (detail.absorbed.length)
    section.append(
      h("p", {
        className: "hint",
        text: `${detail.absorbed.length} live result(s) already absorbed by the batch view.`,
      }),
    );
  return section;
}

// ---------------------------------------------------------------------------------------------
// Live changes

const changed = new Set();
let gatherTimer = null;

function cellChanged(cell) {
  changed.add(cell);
  gatherTimer ??= setTimeout(flushChanges, CHANGE_GATHER_MS);
}

async function flushChanges() {
  gatherTimer = null;
  const cells = [...changed];
  changed.clear();
  if (cells.length > BULK_CHANGES) {
    await loadTiles().catch((err) => reportError("Could not reload the map", err));
    if (state.selected) await refreshPanel();
    return;
  }
  const generation = state.generation;
  const work = [...cells];
  const worker = async () => {
    for (let cell = work.shift(); cell !== undefined; cell = work.shift()) {
      await refreshCell(cell, generation).catch((err) => reportError(`Could not refresh cell ${cell}`, err));
    }
  };
  await Promise.all(Array.from({ length: Math.min(REFRESH_CONCURRENCY, work.length) }, worker));
  updateCellChoices();
  fitOnce();
  if (generation === state.generation) renderStatus();
}

/** Refetches one cell and shows what the current lane now says about it. */
async function refreshCell(cell, generation) {
  let detail;
  try {
    detail = await api(tilePath(cell));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      if (generation === state.generation) removeCell(cell);
      return;
    }
    throw err;
  }
  // A full listing started meanwhile (lane switch, batch switch) is the newer truth.
  if (generation !== state.generation) return;
  noteSnapshot(detail.snapshot);
  const shown = pickForLane(detail, state.lane);
  if (shown) upsertCell(shown, detail.snapshot);
  else removeCell(cell);
  if (state.selected === cell) renderPanel(detail);
}

function connectEvents() {
  const es = new EventSource("/v1/events");
  let hellos = 0;
  setStream("connecting", "Updates: connecting…");
  es.addEventListener("hello", () => {
    setStream("ok", "Updates: live");
    // A second hello means the stream reconnected: changes in between were missed.
    if (hellos++ > 0) void reloadAll();
  });
  es.addEventListener("live-change", (e) => {
    const change = JSON.parse(e.data);
    if (typeof change.cell === "string") cellChanged(change.cell);
    refreshViewsSoon();
  });
  es.addEventListener("batch-switch", () => void reloadAll());
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (e.g. too many streams): EventSource gives up, so try again later ourselves.
      setStream("warn", "Updates: unavailable, retrying");
      setTimeout(connectEvents, EVENTS_RETRY_MS);
    } else setStream("warn", "Updates: reconnecting…");
  });
}

// ---------------------------------------------------------------------------------------------
// View freshness

/** The last /v1/views answer and when it arrived, so ages can tick between refreshes. */
let views = null;
let viewsAt = 0;
let viewsTimer = null;
let viewsLast = 0;

async function refreshViews() {
  viewsLast = performance.now();
  try {
    views = await api("/v1/views");
    viewsAt = performance.now();
    renderLag();
  } catch (err) {
    reportError("Could not read the views' state", err);
  }
}

/** Refreshes /v1/views after an event, at most once per VIEWS_MIN_GAP_MS. */
function refreshViewsSoon() {
  if (viewsTimer) return;
  const wait = Math.max(0, viewsLast + VIEWS_MIN_GAP_MS - performance.now());
  viewsTimer = setTimeout(() => {
    viewsTimer = null;
    void refreshViews();
  }, wait);
}

function renderLag() {
  if (!views) return;
  const elapsed = (performance.now() - viewsAt) / 1000;
  const b = views.batch;
  const current = b.versions.find((v) => v.current);
  const batchEl = $("lag-batch");
  if (current) {
    // Tiles the run could not classify (e.g. a band layout the model does not fit) are not on the map.
    const failed = current.tiles.failed;
    batchEl.textContent =
      `Batch ${current.name} · watermark ${current.watermark} · ${formatAge(current.ageS + elapsed)} old` +
      (failed > 0 ? ` · ${failed} tile${failed === 1 ? "" : "s"} failed` : "");
    batchEl.dataset.state = b.error || failed > 0 ? "warn" : "ok";
    batchEl.title = b.error
      ? `The newest version could not be opened: ${b.error}`
      : `model ${current.modelVersion}` +
        (failed > 0
          ? `; ${failed} of ${current.tiles.total} tiles failed (lanemap ops status, /v1/views)`
          : "");
  } else {
    batchEl.textContent = b.state === "none-yet" ? "Batch: none published yet" : `Batch: ${b.state}`;
    batchEl.dataset.state = b.state === "none-yet" ? "off" : "warn";
    batchEl.title = b.error ?? "";
  }
  const l = views.live;
  const liveEl = $("lag-live");
  if (!l.configured) {
    liveEl.textContent = "Live: not configured";
    liveEl.dataset.state = "off";
  } else {
    const parts = [`Live ${l.state}`, counted(l.size ?? 0, "result")];
    if (l.sinceNewestResultS !== null) parts.push(`newest ${formatAge(l.sinceNewestResultS + elapsed)} ago`);
    if (l.consumerPendingMessages !== null) parts.push(`${formatCount(l.consumerPendingMessages)} queued`);
    liveEl.textContent = parts.join(" · ");
    liveEl.dataset.state = l.state === "following" ? "ok" : "warn";
  }
}

function setStream(level, text) {
  const el = $("lag-stream");
  el.dataset.state = level;
  el.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Status and errors

function setStatus(text, level = "info") {
  const el = $("status");
  el.textContent = text;
  el.dataset.level = level;
}

function reportError(what, err) {
  const message = err instanceof Error ? err.message : String(err);
  setStatus(`${what}: ${message}`, "error");
  console.error(what, err);
}

// ---------------------------------------------------------------------------------------------
// Controls and start

function renderLaneControls() {
  for (const input of document.querySelectorAll('input[name="lane"]')) {
    input.checked = input.value === state.lane;
    input.addEventListener("change", () => {
      if (!input.checked || input.value === state.lane) return;
      void switchLane(input.value);
    });
  }
}

async function switchLane(lane) {
  state.lane = lane;
  const q = new URLSearchParams(location.search);
  if (lane === "merged") q.delete("lane");
  else q.set("lane", lane);
  const search = q.toString();
  history.replaceState(null, "", `${location.pathname}${search ? `?${search}` : ""}${location.hash}`);
  // Every cell shows another lane's result now: the snapshot guard compares within a lane only.
  for (const e of state.cells.values()) e.seen = { batch: -1, live: -1 };
  document.body.dataset.lane = lane;
  try {
    await loadTiles();
    if (state.selected) await refreshPanel();
  } catch (err) {
    reportError(`Could not show the ${lane} view`, err);
  }
}

$("cell-select").addEventListener("change", (e) => void selectCell(e.target.value, { pan: true }));

async function start() {
  document.body.dataset.lane = state.lane;
  document.body.dataset.state = "loading";
  renderLaneControls();
  // Listen first, so no change between the listing and the stream's start is missed.
  connectEvents();
  try {
    await Promise.all([loadClasses(), loadTiles(), refreshViews()]);
    drawGraticule();
    document.body.dataset.state = "ready";
  } catch (err) {
    document.body.dataset.state = "error";
    reportError("Could not load the map", err);
  }
  setInterval(() => void refreshViews(), VIEWS_REFRESH_MS);
  // Ages tick between refreshes.
  setInterval(renderLag, 1000);
}

void start();
