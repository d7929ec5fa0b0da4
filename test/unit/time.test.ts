import assert from "node:assert/strict";
import { test } from "node:test";
import { utcTimestamp } from "../../shared/index.js";

test("a timestamp already in RFC 3339 UTC with Z is returned as it is, precision and all", () => {
  assert.equal(utcTimestamp("2026-01-31T10:00:00Z"), "2026-01-31T10:00:00Z");
  assert.equal(utcTimestamp("2026-01-31T10:00:00.123456Z"), "2026-01-31T10:00:00.123456Z");
});

test("offsets, +00:00, a space or a lower-case z are rewritten to the same instant in UTC with Z", () => {
  assert.equal(utcTimestamp("2026-01-31T11:30:00+01:30"), "2026-01-31T10:00:00.000Z");
  assert.equal(utcTimestamp("2026-01-31T10:00:00+00:00"), "2026-01-31T10:00:00.000Z");
  assert.equal(utcTimestamp("2026-01-31T05:00:00-05:00"), "2026-01-31T10:00:00.000Z");
  assert.equal(utcTimestamp("2026-01-31 10:00:00Z"), "2026-01-31T10:00:00.000Z");
  assert.equal(utcTimestamp("2026-01-31T10:00:00z"), "2026-01-31T10:00:00.000Z");
});

test("a value no reader can parse is handed back unchanged rather than thrown on", () => {
  assert.equal(utcTimestamp("not a time"), "not a time");
});
