/**
 * Formatting of times, ages, percentages, areas and counts as the page shows them.
 */

/** "2024-01-15 16:41:03 UTC" from an ISO time. */
export function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, " UTC");
}

/** A duration in seconds as people say it: "0.4 s", "12 s", "5 min", "3.2 h", "14 d", "2.1 y". */
export function formatAge(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "—";
  const a = Math.max(0, s);
  if (a < 10) return `${a.toFixed(1)} s`;
  if (a < 90) return `${Math.round(a)} s`;
  if (a < 90 * 60) return `${Math.round(a / 60)} min`;
  if (a < 36 * 3600) return `${(a / 3600).toFixed(1)} h`;
  if (a < 365 * 86400) return `${Math.round(a / 86400)} d`;
  return `${(a / (365.25 * 86400)).toFixed(1)} y`;
}

export function formatPercent(x) {
  if (!Number.isFinite(x)) return "—";
  return x >= 0.1 || x === 0 ? `${(x * 100).toFixed(1)} %` : `${(x * 100).toFixed(2)} %`;
}

export function formatArea(m2) {
  if (!Number.isFinite(m2)) return "—";
  return m2 >= 1e6 ? `${(m2 / 1e6).toFixed(2)} km²` : `${(m2 / 1e4).toFixed(2)} ha`;
}

export function formatCount(n) {
  return Number.isFinite(n) ? n.toLocaleString("en") : "—";
}

/** "1 cell", "9 cells". */
export function counted(n, noun) {
  return `${formatCount(n)} ${noun}${n === 1 ? "" : "s"}`;
}
