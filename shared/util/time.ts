/**
 * The one timestamp format lanemap writes and answers with: RFC 3339 in UTC with `Z`
 * (`2026-01-31T10:00:00Z`, optionally with fractional seconds), which is what `toISOString` gives.
 * Records written by older versions, or by other tools, may hold any form `Date.parse` reads
 * (`+00:00`, other offsets, a space for `T`); readers accept those and answer in the one format.
 */

/** RFC 3339 date-time in UTC with an upper-case `Z` and `T`. */
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/**
 * `value` as RFC 3339 UTC with `Z`: unchanged when it already is (so `...:00Z` keeps its precision),
 * else the same instant through `toISOString` (`2026-01-31T11:00:00+01:00` -> `2026-01-31T10:00:00.000Z`).
 * A value `Date.parse` cannot read is returned unchanged: readers of old records never throw on it.
 */
export function utcTimestamp(value: string): string {
  if (RFC3339_UTC.test(value)) return value;
  const t = Date.parse(value);
  return Number.isFinite(t) ? new Date(t).toISOString() : value;
}
