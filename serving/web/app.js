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
 *
 * This entry module holds the lane controls and the start; each other part of the page is a native
 * ES module of its own beside it (serving/web/README.md lists them), fetched by the browser as is.
 */
/* global URLSearchParams, history, location */
import { VIEWS_REFRESH_MS } from "./constants.js";
import { $ } from "./dom.js";
import { state } from "./state.js";
import { drawGraticule } from "./map.js";
import { loadClasses, loadTiles } from "./loading.js";
import { refreshPanel, selectCell } from "./panel.js";
import { connectEvents } from "./live.js";
import { refreshViews, renderLag } from "./freshness.js";
import { reportError } from "./status.js";
import { initLayers } from "./layers.js";
import { refreshAgeLayer } from "./composite.js";
import { startLoop } from "./loop.js";

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
    refreshAgeLayer();
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
  initLayers();
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
  void startLoop();
  setInterval(() => void refreshViews(), VIEWS_REFRESH_MS);
  // Ages tick between refreshes.
  setInterval(renderLag, 1000);
}

void start();
