/**
 * Request parameters: one zod schema per parameter kind, with reasons a person can act on, and the
 * one function that turns a zod failure into a 400 problem naming each bad parameter. Query strings
 * are strict: an unknown parameter is refused by name rather than silently ignored (a typo such as
 * `bbx=` would otherwise return the whole world).
 */
import { z } from "zod";
import { CELL_KEY_PATTERN, TILE_ID_PATTERN, type Bounds } from "../../shared/index.js";
import { InvalidParamsError, type InvalidParam } from "../errors.js";

/** RFC 3339 date-time with a time zone (STAC's `datetime` is RFC 3339). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** A half-open or closed time interval in epoch ms; null ends are open. */
export interface TimeInterval {
  readonly start: number | null;
  readonly end: number | null;
}

function parseInstant(s: string): number | null {
  if (!RFC3339.test(s)) return null;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

/** A plain calendar date (RFC 3339 full-date), as people type them: `2026-01-31`. */
const FULL_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 86_400_000;

/**
 * A plain date's UTC day as [first ms, last ms], or null when `s` is not a real calendar date.
 * (Date.parse would roll 2026-02-30 over into March; the round trip refuses it.)
 */
function parseDay(s: string): [number, number] | null {
  if (!FULL_DATE.test(s)) return null;
  const t = Date.parse(`${s}T00:00:00Z`);
  if (!Number.isFinite(t) || new Date(t).toISOString().slice(0, 10) !== s) return null;
  return [t, t + DAY_MS - 1];
}

/** An interval end: an instant, or a plain date standing for the start or the end of its UTC day. */
function parseBound(s: string, side: 0 | 1): number | null {
  return parseInstant(s) ?? parseDay(s)?.[side] ?? null;
}

/** `minLon,minLat,maxLon,maxLat` in WGS84 degrees. */
export const bboxParam = z
  .string()
  .transform((s, ctx): Bounds => {
    const parts = s.split(",");
    const nums = parts.map((p) => (p.trim() === "" ? NaN : Number(p)));
    const fail = (message: string): never => {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    };
    if (parts.length !== 4) return fail("must be four comma-separated numbers: minLon,minLat,maxLon,maxLat");
    if (!nums.every(Number.isFinite)) return fail("must contain only finite numbers");
    const [minX, minY, maxX, maxY] = nums as [number, number, number, number];
    if (minX < -180 || maxX > 180) return fail("longitudes must lie in -180..180");
    if (minY < -90 || maxY > 90) return fail("latitudes must lie in -90..90");
    if (minY > maxY) return fail("minLat must not exceed maxLat");
    // minLon > maxLon is a box across the antimeridian (RFC 7946 §5.2, STAC API item search).
    return { minX, minY, maxX, maxY };
  })
  .meta({
    description:
      "minLon,minLat,maxLon,maxLat (WGS84 degrees); minLon > maxLon means a box across the antimeridian (RFC 7946 §5.2)",
    example: "12.3,45.1,12.6,45.4",
  });

/**
 * STAC `datetime`: an RFC 3339 instant, or an interval `a/b` with `..` (or empty) for an open end.
 * A plain date is accepted too, for the whole UTC day (as a start: its first ms; as an end: its last).
 */
export const datetimeParam = z
  .string()
  .transform((s, ctx): TimeInterval => {
    const fail = (message: string): never => {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    };
    const parts = s.split("/");
    if (parts.length === 1) {
      const t = parseInstant(s);
      if (t !== null) return { start: t, end: t };
      const day = parseDay(s);
      if (day) return { start: day[0], end: day[1] };
      return fail(
        "must be an RFC 3339 date-time with a time zone, a date (a whole UTC day), or an interval a/b",
      );
    }
    if (parts.length !== 2) return fail("an interval has exactly one '/'");
    const [a = "", b = ""] = parts;
    const open = (p: string) => p === ".." || p === "";
    if (open(a) && open(b)) return fail("an interval needs at least one closed end");
    const start = open(a) ? null : parseBound(a, 0);
    const end = open(b) ? null : parseBound(b, 1);
    if (!open(a) && start === null) return fail(`interval start "${a}" is not an RFC 3339 date-time or date`);
    if (!open(b) && end === null) return fail(`interval end "${b}" is not an RFC 3339 date-time or date`);
    if (start !== null && end !== null && start > end) return fail("interval start is after its end");
    return { start, end };
  })
  .meta({
    description:
      "RFC 3339 instant or date (a whole UTC day), or interval start/end with '..' for an open end (STAC)",
    example: "2026-01-01T00:00:00Z/..",
  });

/** A positive integer up to `max`, default `def`. */
export const limitParam = (def: number, max: number) =>
  z
    .string()
    .optional()
    .transform((s, ctx): number => {
      if (s === undefined) return def;
      const n = Number(s);
      if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < 1 || n > max) {
        ctx.addIssue({ code: "custom", message: `must be an integer from 1 to ${max}` });
        return z.NEVER;
      }
      return n;
    })
    .meta({ description: `page size, 1..${max} (default ${def})` });

/** A finite number in [min, max]. */
export const numberParam = (min: number, max: number, what: string) =>
  z
    .string()
    .transform((s, ctx): number => {
      const n = s.trim() === "" ? NaN : Number(s);
      if (!Number.isFinite(n) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `must be a number from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    })
    .meta({ description: what });

/** A class: its integer id (0..255) or its name in the model. */
export const classParam = z
  .string()
  .regex(/^[A-Za-z0-9 _.-]{1,64}$/, "must be a class id (0..255) or a class name")
  .meta({ description: "class id (0..255) or class name; matches the dominant class" });

/** Which lane a listing shows per cell. */
export const laneParam = z
  .enum(["merged", "batch", "live"], { message: "must be one of merged, batch, live" })
  .meta({ description: "whose answer per cell: merged (default), the batch view's, or the live view's" });

/** A paging cursor (base64url). */
export const cursorParam = z
  .string()
  .max(1024, "is too long to be a cursor")
  .regex(/^[A-Za-z0-9_-]+$/, "is not a cursor this service issued")
  .meta({ description: "opaque cursor from a previous page's `cursor`/`next`" });

/** Response format override (beats the Accept header). */
export const formatParam = z
  .enum(["json", "geojson", "arrow"], { message: "must be one of json, geojson, arrow" })
  .meta({ description: "response format: json, geojson or arrow (overrides Accept)" });

/** A tile's id path segment: a cell key or a tile id. */
export const tileIdSegment = z
  .string()
  .refine((s) => CELL_KEY_PATTERN.test(s) || TILE_ID_PATTERN.test(s), "is neither a cell key nor a tile id")
  .meta({ description: "a map cell key (e.g. c0003r0012) or a tile id" });

/** A batch run id path segment. */
export const runIdSegment = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, "is not a batch run id")
  .meta({ description: "batch run id returned by POST /v1/batch/runs" });

/** Turns zod issues into invalid_params entries; `root` names a path-less issue (e.g. "body"). */
export function invalidParams(error: z.ZodError, root = "query"): InvalidParam[] {
  const out: InvalidParam[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys)
        out.push({
          name: root === "query" ? key : `${root}.${key}`,
          reason: "is not a parameter of this endpoint",
        });
      continue;
    }
    const path = issue.path.map(String);
    const name = root === "query" || root === "path" ? (path[0] ?? root) : [root, ...path].join(".");
    let reason = issue.message;
    // Express turns a repeated query key into an array; zod's wording would not say why it failed.
    if (issue.code === "invalid_type" && /received array/.test(issue.message)) reason = "must be given once";
    else if (issue.code === "invalid_type" && /received undefined/.test(issue.message))
      reason = "is required";
    out.push({ name, reason });
  }
  return out;
}

/** Parses a query string object with a strict schema or throws a 400 naming every bad parameter. */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const r = schema.safeParse(query ?? {});
  if (r.success) return r.data;
  throw new InvalidParamsError(invalidParams(r.error, "query"));
}

/**
 * Parses an optional JSON request body with a strict schema: an absent, null or empty-object body is
 * `undefined` (the endpoint's defaults), anything else must match.
 * @throws InvalidParamsError (400) naming every bad member as `body.<path>`.
 */
export function parseOptionalBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> | undefined {
  if (body === undefined || body === null || (typeof body === "object" && Object.keys(body).length === 0))
    return undefined;
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  throw new InvalidParamsError(invalidParams(r.error, "body"));
}

/** Parses one path parameter or throws a 400 naming it. */
export function parsePathParam<S extends z.ZodType>(name: string, schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new InvalidParamsError([{ name, reason: r.error.issues[0]?.message ?? "is invalid" }]);
}
