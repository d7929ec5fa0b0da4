/**
 * Per-pixel compositing on the map (issue 13): each cell shows the newest valid pixel of its
 * acquisitions, so the page tells where a pixel came from.
 *
 * - The "Age" toggle lays `/v1/tiles/{cell}/age.png` over the classes: days since each pixel's
 *   acquisition, fresh bright yellow to dark purple at 64 days and beyond (the server's ramp), no
 *   source transparent. Like the classes, it is the chosen lane's answer for the cell (`?lane=`,
 *   api.js `cellImagePath`) on the grid that lane's listing gives, so it lies on the cell's outline;
 *   it is refreshed while on (a fresh acquisition makes its pixels young again) and on a lane switch.
 * - A click on the map asks `/v1/point` (with the chosen lane) and shows, in the Pixel card, the
 *   pixel's class and its source: lane, tile, acquisition time, model and age.
 */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { api, ApiError, cellImagePath } from "./api.js";
import { $, h } from "./dom.js";
import { formatTime } from "./format.js";
import { map } from "./map.js";
import { state } from "./state.js";
import { reportError } from "./status.js";

/** How often the age layer is refetched while it is on. */
const AGE_REFRESH_MS = 20_000;

map.createPane("age");
/** Per cell: its age overlay and the blob URL it shows. */
const ageOverlays = new Map();
let ageTimer = null;

function inView(entry) {
  return map.getBounds().pad(0.5).intersects(entry.bounds);
}

async function loadAge(entry) {
  const path = cellImagePath(entry.cell, "age.png", state.lane);
  const res = await fetch(path, { cache: "no-store" });
  if (res.status === 404) return; // the cell left the view meanwhile
  if (!res.ok) throw new ApiError(path, res.status, res.statusText);
  const url = URL.createObjectURL(await res.blob());
  if (!ageTimer) return URL.revokeObjectURL(url); // switched off while in flight
  const have = ageOverlays.get(entry.cell);
  if (have) {
    have.overlay.setBounds(entry.bounds);
    have.overlay.setUrl(url);
    URL.revokeObjectURL(have.url);
    have.url = url;
    return;
  }
  const overlay = L.imageOverlay(url, entry.bounds, {
    pane: "age",
    className: "lm-age",
    interactive: false,
    alt: `Age of the pixels of cell ${entry.cell}`,
  });
  overlay.on("load", () => {
    const img = overlay.getElement();
    if (img) img.dataset.cell = entry.cell;
  });
  overlay.addTo(map);
  ageOverlays.set(entry.cell, { overlay, url });
}

async function refreshAge() {
  const cells = [...state.cells.values()];
  for (const [cell, o] of ageOverlays)
    if (!state.cells.has(cell)) {
      o.overlay.remove();
      URL.revokeObjectURL(o.url);
      ageOverlays.delete(cell);
    }
  // A few at a time, the cells near the view only.
  const todo = cells.filter(inView);
  const lanes = Array.from({ length: 4 }, async () => {
    for (let e = todo.shift(); e; e = todo.shift()) await loadAge(e);
  });
  await Promise.all(lanes);
}

/** Redraws the age layer (when on) for the chosen lane's cells: called after a lane switch. */
export function refreshAgeLayer() {
  if (ageTimer) void refreshAge().catch((err) => reportError("Could not load ages", err));
}

/** Shows or hides the age layer. */
export function setAgeLayer(on) {
  document.body.dataset.age = on ? "on" : "off";
  if (on && !ageTimer) {
    ageTimer = setInterval(
      () => void refreshAge().catch((err) => reportError("Could not load ages", err)),
      AGE_REFRESH_MS,
    );
    void refreshAge().catch((err) => reportError("Could not load ages", err));
  } else if (!on && ageTimer) {
    clearInterval(ageTimer);
    ageTimer = null;
    for (const o of ageOverlays.values()) {
      o.overlay.remove();
      URL.revokeObjectURL(o.url);
    }
    ageOverlays.clear();
  }
}

/** The Pixel card: the class at a point and the acquisition it came from. */
export function renderPixel(p) {
  const panel = $("pixel-panel");
  const rows = [
    ["Class", `${p.class.name} (${p.class.id})`],
    ["Cell", p.cell],
  ];
  if (p.source)
    rows.push(
      ["Source", `${p.source.lane} · ${p.source.tileId}`],
      ["Acquired", formatTime(p.source.acquired)],
      ["Age", `${p.source.ageDays.toFixed(1)} days`],
      ["Model", p.source.modelVersion],
    );
  else rows.push(["Source", "none: no acquisition has this pixel valid (cloud or nodata everywhere)"]);
  panel.replaceChildren(
    h("dl", { className: "pixel-facts" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
  );
  panel.dataset.lane = p.source?.lane ?? "";
  panel.dataset.tileId = p.source?.tileId ?? "";
}

map.on("click", async (e) => {
  const { lat, lng } = e.latlng;
  try {
    const lane = state.lane === "merged" ? "" : `&lane=${encodeURIComponent(state.lane)}`;
    renderPixel(await api(`/v1/point?lon=${lng.toFixed(7)}&lat=${lat.toFixed(7)}${lane}`));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      $("pixel-panel").replaceChildren(h("p", { className: "hint" }, "No tile covers this point."));
      return;
    }
    reportError("Could not read the pixel", err);
  }
});

$("age-toggle").addEventListener("change", (e) => setAgeLayer(e.target.checked));
