/**
 * The status line and error reports.
 */
import { $ } from "./dom.js";

export function setStatus(text, level = "info") {
  const el = $("status");
  el.textContent = text;
  el.dataset.level = level;
}

export function reportError(what, err) {
  const message = err instanceof Error ? err.message : String(err);
  setStatus(`${what}: ${message}`, "error");
  console.error(what, err);
}
