/**
 * Cells: each cell's outline, tooltip and overlay, added, updated and removed.
 */
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { OUTLINE } from "./constants.js";
import { h } from "./dom.js";
import { olderThan, snapshotOrder, state } from "./state.js";
import { map } from "./map.js";
import { requestImage } from "./images.js";
import { dropCellLayers, syncCellLayers } from "./layers.js";
import { selectCell } from "./panel.js";

function boundsOf(summary) {
  const b = summary.bbox;
  if (!Array.isArray(b) || b.length !== 4) return null;
  // west > east: the cell crosses the antimeridian (RFC 7946); Leaflet draws it whole past 180°.
  const east = b[2] < b[0] ? b[2] + 360 : b[2];
  return L.latLngBounds([b[1], b[0]], [b[3], east]);
}

export function outlineStyle(entry) {
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
export function upsertCell(summary, snapshot) {
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
  syncCellLayers(entry);
}

export function removeCell(cell) {
  const entry = state.cells.get(cell);
  if (!entry) return;
  state.cells.delete(cell);
  dropCellLayers(cell);
  entry.outline.remove();
  entry.overlay?.remove();
  if (entry.shown) URL.revokeObjectURL(entry.shown.url);
  if (entry.pending) URL.revokeObjectURL(entry.pending.url);
  for (const url of entry.discarded.splice(0)) URL.revokeObjectURL(url);
}

/** The result a lane shows for a cell, from its detail. */
export function pickForLane(detail, lane) {
  if (lane === "merged") return detail.winner;
  if (lane === "batch") return detail.batch;
  const live = [...detail.candidates, ...detail.absorbed].filter((r) => r.lane === "live");
  live.sort((a, b) => Date.parse(b.acquired) - Date.parse(a.acquired) || b.ingestSeq - a.ingestSeq);
  return live[0] ?? null;
}
