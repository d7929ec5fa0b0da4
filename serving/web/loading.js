/**
 * Loading: the paged cell listing of the lane, the legend from the model's classes, the status
 * line, and a full reload.
 */
/* global URLSearchParams */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { HEX_COLOUR, PAGE_SIZE } from "./constants.js";
import { $, h } from "./dom.js";
import { counted } from "./format.js";
import { ApiError, api } from "./api.js";
import { olderThan, snapshotOrder, state } from "./state.js";
import { map } from "./map.js";
import { removeCell, upsertCell } from "./cells.js";
import { refreshPanel, updateCellChoices } from "./panel.js";
import { refreshViewsSoon } from "./freshness.js";
import { reportError, setStatus } from "./status.js";

/**
 * Lists every cell of the current lane, page by page from one snapshot (the cursor pins it), and
 * makes the map show exactly those. A cursor whose snapshot expired (410) starts over.
 */
export async function loadTiles() {
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
export function noteSnapshot(snapshot) {
  if (!state.snapshot || !olderThan(snapshotOrder(snapshot), snapshotOrder(state.snapshot)))
    state.snapshot = snapshot;
}

export function renderStatus() {
  const s = state.snapshot;
  if (!state.cells.size) {
    setStatus(`No ${state.lane === "merged" ? "" : `${state.lane} `}results yet`);
    return;
  }
  const batch = s?.batch ? `batch ${s.batch.name} (watermark ${s.batch.watermark})` : "no batch view";
  const live = s?.live ? `live position ${s.live.position}` : "no live view";
  setStatus(`${counted(state.cells.size, "cell")} · ${state.lane} view · ${batch} + ${live}`);
}

export function fitOnce() {
  if (state.fitted || state.cells.size === 0) return;
  let all = null;
  for (const e of state.cells.values())
    all = all ? all.extend(e.bounds) : L.latLngBounds(e.bounds.getSouthWest(), e.bounds.getNorthEast());
  map.fitBounds(all, { padding: [24, 24] });
  state.fitted = true;
}

export async function loadClasses() {
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

export function classInfo(id) {
  return state.classes.find((c) => c.id === id) ?? null;
}

/** Reloads everything: after a batch switch (new model, new results) or a reconnected stream. */
export async function reloadAll() {
  try {
    await Promise.all([loadClasses(), loadTiles()]);
    if (state.selected) await refreshPanel();
    refreshViewsSoon();
  } catch (err) {
    reportError("Could not reload the map", err);
  }
}
