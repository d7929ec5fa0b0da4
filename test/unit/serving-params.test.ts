import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import { bboxParam, datetimeParam, limitParam, parseQuery } from "../../serving/api/params.js";
import { InvalidParamsError } from "../../serving/errors.js";

const t = (s: string) => Date.parse(s);

describe("query parameters", () => {
  test("datetime accepts STAC instants and intervals with open ends, and refuses the rest with a reason", () => {
    const ok: [string, { start: number | null; end: number | null }][] = [
      ["2026-01-02T03:04:05Z", { start: t("2026-01-02T03:04:05Z"), end: t("2026-01-02T03:04:05Z") }],
      [
        "2026-01-02T03:04:05.250+02:00",
        { start: t("2026-01-02T01:04:05.250Z"), end: t("2026-01-02T01:04:05.250Z") },
      ],
      [
        "2026-01-01T00:00:00Z/2026-02-01T00:00:00Z",
        { start: t("2026-01-01T00:00:00Z"), end: t("2026-02-01T00:00:00Z") },
      ],
      ["2026-01-01T00:00:00Z/..", { start: t("2026-01-01T00:00:00Z"), end: null }],
      ["../2026-01-01T00:00:00Z", { start: null, end: t("2026-01-01T00:00:00Z") }],
      ["/2026-01-01T00:00:00Z", { start: null, end: t("2026-01-01T00:00:00Z") }],
      // A plain date is its whole UTC day, alone or as either end of an interval.
      ["2026-01-01", { start: t("2026-01-01T00:00:00Z"), end: t("2026-01-01T23:59:59.999Z") }],
      ["2026-01-01/2026-01-31", { start: t("2026-01-01T00:00:00Z"), end: t("2026-01-31T23:59:59.999Z") }],
      ["2026-01-01/..", { start: t("2026-01-01T00:00:00Z"), end: null }],
    ];
    for (const [s, want] of ok) assert.deepEqual(datetimeParam.parse(s), want, s);
    const bad: [string, RegExp][] = [
      ["2026-02-30", /RFC 3339/],
      ["2026-1-01", /RFC 3339/],
      ["2026-01-01T00:00:00", /RFC 3339/],
      ["../..", /closed end/],
      ["a/b/c", /one '\/'/],
      ["2026-02-01T00:00:00Z/2026-01-01T00:00:00Z", /after its end/],
      ["2026-13-01T00:00:00Z", /RFC 3339/],
    ];
    for (const [s, reason] of bad) {
      const r = datetimeParam.safeParse(s);
      assert.equal(r.success, false, s);
      assert.match(r.error?.issues[0]?.message ?? "", reason, s);
    }
  });

  test("bbox takes four finite lon/lat numbers in order and says which rule a bad one breaks", () => {
    assert.deepEqual(bboxParam.parse("-1.5,2,3,4.25"), { minX: -1.5, minY: 2, maxX: 3, maxY: 4.25 });
    // West > east is a box across the antimeridian (RFC 7946 §5.2, STAC API).
    assert.deepEqual(bboxParam.parse("170,0,-170,1"), { minX: 170, minY: 0, maxX: -170, maxY: 1 });
    const bad: [string, RegExp][] = [
      ["1,2,3", /four/],
      ["1,2,3,4,5,6", /four/],
      ["1,,3,4", /finite/],
      ["1,2,Infinity,4", /finite/],
      ["-181,0,0,1", /longitudes/],
      ["0,-91,1,1", /latitudes/],
      ["0,2,1,1", /minLat/],
    ];
    for (const [s, reason] of bad)
      assert.match(bboxParam.safeParse(s).error?.issues[0]?.message ?? "", reason, s);
  });

  test("a strict query schema names unknown, repeated, missing and malformed parameters at once", () => {
    const schema = z.strictObject({ bbox: bboxParam, limit: limitParam(10, 100) });
    try {
      parseQuery(schema, { limit: ["1", "2"], zoom: "3" });
      assert.fail("expected a problem");
    } catch (err) {
      assert.ok(err instanceof InvalidParamsError);
      assert.equal(err.status, 400);
      const byName = Object.fromEntries(err.invalidParams.map((p) => [p.name, p.reason]));
      assert.equal(byName["bbox"], "is required");
      assert.equal(byName["limit"], "must be given once");
      assert.equal(byName["zoom"], "is not a parameter of this endpoint");
    }
    assert.deepEqual(parseQuery(schema, { bbox: "0,0,1,1" }), {
      bbox: { minX: 0, minY: 0, maxX: 1, maxY: 1 },
      limit: 10,
    });
  });
});
