/**
 * View freshness: how old each view is (`/v1/views`), refreshed periodically and on events.
 */
import { VIEWS_MIN_GAP_MS } from "./constants.js";
import { $ } from "./dom.js";
import { counted, formatAge, formatCount } from "./format.js";
import { api } from "./api.js";
import { reportError } from "./status.js";

/** The last /v1/views answer and when it arrived, so ages can tick between refreshes. */
let views = null;
let viewsAt = 0;
let viewsTimer = null;
let viewsLast = 0;

export async function refreshViews() {
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
export function refreshViewsSoon() {
  if (viewsTimer) return;
  const wait = Math.max(0, viewsLast + VIEWS_MIN_GAP_MS - performance.now());
  viewsTimer = setTimeout(() => {
    viewsTimer = null;
    void refreshViews();
  }, wait);
}

export function renderLag() {
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

export function setStream(level, text) {
  const el = $("lag-stream");
  el.dataset.state = level;
  el.textContent = text;
}
