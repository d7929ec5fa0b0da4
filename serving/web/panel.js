/**
 * Cell choice and the tile panel: one cell's provenance, class shares and candidates.
 */
import { HEX_COLOUR } from "./constants.js";
import { $, h } from "./dom.js";
import { formatAge, formatArea, formatCount, formatPercent, formatTime } from "./format.js";
import { ApiError, api, tilePath } from "./api.js";
import { state } from "./state.js";
import { map } from "./map.js";
import { outlineStyle, pickForLane } from "./cells.js";
import { classInfo } from "./loading.js";
import { reportError } from "./status.js";

export function updateCellChoices() {
  const select = $("cell-select");
  const cells = [...state.cells.keys()].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.length === cells.length && have.every((c, i) => c === cells[i])) return;
  select.replaceChildren(h("option", { value: "", text: "Choose a cell…" }));
  for (const cell of cells) select.append(h("option", { value: cell, text: cell }));
  select.value = state.selected && state.cells.has(state.selected) ? state.selected : "";
}

export async function selectCell(cell, { pan }) {
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
export async function refreshPanel() {
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

export function renderPanel(detail) {
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
    ...lowConfidenceRow(detail, shown),
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

/**
 * The share of pixels without a majority of their k neighbours (`detail.confidence`, computed for the
 * cell's winner): where the confidence layer is red and more labels would help. Empty for another result.
 */
function lowConfidenceRow(detail, shown) {
  const c = detail.confidence;
  if (!c || c.lowShare === null || detail.winner?.tileId !== shown.tileId) return [];
  return row(
    "Low confidence",
    `${formatPercent(c.lowShare)} of pixels won by at most ${Math.floor(c.k * c.lowThreshold + 1e-9)} of ${c.k} votes`,
    {
      "data-field": "low-confidence",
    },
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
