/**
 * Live changes: server-sent events; changed cells gathered and refetched, a batch switch reloads.
 */
/* global URLSearchParams */
import { BULK_CHANGES, CHANGE_GATHER_MS, EVENTS_RETRY_MS, REFRESH_CONCURRENCY } from "./constants.js";
import { ApiError, api, tilePath } from "./api.js";
import { state } from "./state.js";
import { pickForLane, removeCell, upsertCell } from "./cells.js";
import { fitOnce, loadTiles, noteSnapshot, reloadAll, renderStatus } from "./loading.js";
import { refreshPanel, renderPanel, updateCellChoices } from "./panel.js";
import { refreshViewsSoon, setStream } from "./freshness.js";
import { reportError } from "./status.js";

const changed = new Set();
let gatherTimer = null;

export function cellChanged(cell) {
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
  if (!shown) removeCell(cell);
  else {
    const listed = await listedSummary(cell, shown);
    if (generation !== state.generation) return;
    if (listed) upsertCell(listed.summary, listed.snapshot);
    else upsertCell(shown, detail.snapshot);
  }
  if (state.selected === cell) renderPanel(detail);
}

/**
 * The cell as the current lane's listing gives it: a per-pixel composite there lies on the cell's
 * union grid (its width, height and bbox), where the detail's `winner` and `batch` are the newest
 * tile's own. Asked by the bbox of one of the cell's results, which the union holds.
 */
async function listedSummary(cell, shown) {
  if (!Array.isArray(shown.bbox) || shown.bbox.length !== 4) return null;
  const q = new URLSearchParams({ lane: state.lane, bbox: shown.bbox.join(","), limit: "1000" });
  const page = await api(`/v1/tiles?${q}`);
  const summary = page.items.find((s) => s.cell === cell);
  return summary ? { summary, snapshot: page.snapshot } : null;
}

export function connectEvents() {
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
