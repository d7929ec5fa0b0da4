/**
 * Labels as data: the analyst's labelled geometries, validated once at the door and kept as
 * records of a versioned label set. A label is a GeoJSON Feature (Polygon, MultiPolygon or Point)
 * with a `class`, an optional `note`, its `author` and a time. Labels arrive in any CRS (the legacy
 * GeoJSON `crs` member, as `lanemap train` reads it) and are kept in WGS 84 lon/lat (RFC 7946) with
 * the original coordinates beside them, so a label set exports as plain GeoJSON and trains as one
 * collection whatever CRSs its labels came in.
 *
 * Pure: the caller resolves the CRS (PROJ-checked, async) and passes it in; nothing here does I/O.
 */
import { LabelInvalidError, TrainingDataError } from "../errors.js";
import { WGS84, projectPoint, sameCrs } from "../crs/index.js";
import type { Crs } from "../raster/types.js";
import { labelledGeometries } from "../classifier/training.js";

/** Geometry types a label may have. */
export type LabelGeometry =
  | { readonly type: "Point"; readonly coordinates: readonly [number, number] }
  | { readonly type: "Polygon"; readonly coordinates: readonly (readonly (readonly [number, number])[])[] }
  | {
      readonly type: "MultiPolygon";
      readonly coordinates: readonly (readonly (readonly (readonly [number, number])[])[])[];
    };

/** A label as the analyst gave it, validated, before the store gives it an id and a version. */
export interface LabelDraft {
  readonly class: string;
  readonly note: string | null;
  readonly author: string;
  /** RFC 3339 UTC: the feature's `time` property, else when it was received. */
  readonly time: string;
  /** In WGS 84 lon/lat (RFC 7946 axis order). */
  readonly geometry: LabelGeometry;
  /** The CRS and coordinates it came in, when that was not WGS 84. */
  readonly source: { readonly crs: string; readonly geometry: LabelGeometry } | null;
}

/** A stored label: a draft with its id and the label-set version that added it. */
export interface Label extends LabelDraft {
  readonly id: string;
  /** The label-set version whose change added this label. */
  readonly addedIn: number;
}

/** One version of the label set: its number (0 = empty, never changed) and its labels in order. */
export interface LabelSet {
  readonly version: number;
  /** When this version was made (RFC 3339 UTC), null for version 0. */
  readonly updatedAt: string | null;
  readonly labels: readonly Label[];
}

/** Limits of one submission: a request must not hold the event loop with a huge body. */
export const LABEL_LIMITS = {
  /** Features in one submission. */
  features: 5_000,
  /** Positions in one submission, all features together. */
  positions: 200_000,
  /** Characters of a class name. */
  classLength: 64,
  /** Characters of a note. */
  noteLength: 2_000,
  /** Characters of an author. */
  authorLength: 128,
} as const;

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function text(value: unknown, field: string, max: number, opts: { required: boolean }): string | null {
  if (value === undefined || value === null) {
    if (opts.required) throw new LabelInvalidError(field, "is required");
    return null;
  }
  // A numeric class (3) is refused rather than stringified: a label set's classes are names, and a
  // code silently becoming "3" makes a class nobody meant (issue 12).
  if (typeof value !== "string")
    throw new LabelInvalidError(
      field,
      field.endsWith(".class") ? 'class must be a string name (e.g. "forest")' : "must be a string",
    );
  const s = value.trim();
  if (s.length === 0) {
    if (opts.required) throw new LabelInvalidError(field, "must not be empty");
    return null;
  }
  if (s.length > max) throw new LabelInvalidError(field, `is longer than ${max} characters`);
  return s;
}

function closedRings(rings: readonly (readonly (readonly [number, number])[])[], field: string): void {
  rings.forEach((ring, r) => {
    if (ring.length < 4)
      throw new LabelInvalidError(
        `${field}.coordinates`,
        `ring ${r} has ${ring.length} positions; a linear ring needs at least 4 (RFC 7946 §3.1.6)`,
      );
    const a = ring[0] as readonly [number, number];
    const b = ring[ring.length - 1] as readonly [number, number];
    if (a[0] !== b[0] || a[1] !== b[1])
      throw new LabelInvalidError(
        `${field}.coordinates`,
        `ring ${r} is not closed: its first and last positions differ (RFC 7946 §3.1.6)`,
      );
  });
}

/** Orientation of the triangle a, b, c: > 0 counter-clockwise, < 0 clockwise, 0 collinear. */
function orient(a: readonly number[], b: readonly number[], c: readonly number[]): number {
  return (
    ((b[0] as number) - (a[0] as number)) * ((c[1] as number) - (a[1] as number)) -
    ((b[1] as number) - (a[1] as number)) * ((c[0] as number) - (a[0] as number))
  );
}

function onSegment(a: readonly number[], b: readonly number[], p: readonly number[]): boolean {
  return (
    Math.min(a[0] as number, b[0] as number) <= (p[0] as number) &&
    (p[0] as number) <= Math.max(a[0] as number, b[0] as number) &&
    Math.min(a[1] as number, b[1] as number) <= (p[1] as number) &&
    (p[1] as number) <= Math.max(a[1] as number, b[1] as number)
  );
}

/** True when segments ab and cd share a point (crossing, touching or overlapping). */
function segmentsMeet(
  a: readonly number[],
  b: readonly number[],
  c: readonly number[],
  d: readonly number[],
): boolean {
  const o1 = orient(a, b, c);
  const o2 = orient(a, b, d);
  const o3 = orient(c, d, a);
  const o4 = orient(c, d, b);
  if (((o1 > 0 && o2 < 0) || (o1 < 0 && o2 > 0)) && ((o3 > 0 && o4 < 0) || (o3 < 0 && o4 > 0))) return true;
  return (
    (o1 === 0 && onSegment(a, b, c)) ||
    (o2 === 0 && onSegment(a, b, d)) ||
    (o3 === 0 && onSegment(c, d, a)) ||
    (o4 === 0 && onSegment(c, d, b))
  );
}

/**
 * The first pair of non-adjacent edges of a closed ring that meet, or null when the ring is simple —
 * OGC Simple Features (ISO 19125-1 §6.1.7) requires a polygon's rings to be simple, and a bow-tie
 * has no well-defined inside (rasterisers disagree on it). A sweep over edges sorted by their least
 * x, so a typical ring costs about n log n; consecutive edges share a vertex and are not compared.
 */
export function ringSelfIntersection(
  ring: readonly (readonly [number, number])[],
): { readonly edges: readonly [number, number] } | null {
  const n = ring.length - 1; // edges; the ring is closed
  if (n < 3) return null;
  const minX = (i: number): number =>
    Math.min((ring[i] as readonly number[])[0] as number, (ring[i + 1] as readonly number[])[0] as number);
  const maxX = (i: number): number =>
    Math.max((ring[i] as readonly number[])[0] as number, (ring[i + 1] as readonly number[])[0] as number);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => minX(a) - minX(b));
  for (let u = 0; u < n; u++) {
    const i = order[u] as number;
    const right = maxX(i);
    for (let v = u + 1; v < n; v++) {
      const j = order[v] as number;
      if (minX(j) > right) break;
      const gap = Math.abs(i - j);
      if (gap === 1 || gap === n - 1) continue; // adjacent edges share their common vertex
      if (
        segmentsMeet(
          ring[i] as readonly number[],
          ring[i + 1] as readonly number[],
          ring[j] as readonly number[],
          ring[j + 1] as readonly number[],
        )
      )
        return { edges: [Math.min(i, j), Math.max(i, j)] };
    }
  }
  return null;
}

function simpleRings(rings: readonly (readonly (readonly [number, number])[])[], field: string): void {
  rings.forEach((ring, r) => {
    // Repeated consecutive positions are valid (zero-length edges), but would make edges two apart
    // share a vertex: drop them first.
    const hit = ringSelfIntersection(
      ring.filter(
        (p, i) =>
          i === 0 ||
          p[0] !== (ring[i - 1] as readonly number[])[0] ||
          p[1] !== (ring[i - 1] as readonly number[])[1],
      ),
    );
    if (hit !== null)
      throw new LabelInvalidError(
        `${field}.coordinates`,
        `ring ${r} intersects itself (edges ${hit.edges[0]} and ${hit.edges[1]} meet, e.g. a bow-tie); ` +
          "a polygon's rings must be simple (OGC Simple Features): split it into polygons that do not cross",
      );
  });
}

const pos = (p: unknown): [number, number] => {
  const [x, y] = p as [number, number];
  return [x, y];
};

/** The geometry's positions as [x, y] pairs (drops any z), in the GeoJSON nesting of its type. */
function geometryOf(g: { type: string; coordinates: unknown }): LabelGeometry {
  switch (g.type) {
    case "Point":
      return { type: "Point", coordinates: pos(g.coordinates) };
    case "Polygon":
      return { type: "Polygon", coordinates: (g.coordinates as unknown[][]).map((r) => r.map(pos)) };
    default:
      return {
        type: "MultiPolygon",
        coordinates: (g.coordinates as unknown[][][]).map((poly) => poly.map((r) => r.map(pos))),
      };
  }
}

function mapPositions(
  g: LabelGeometry,
  f: (p: readonly [number, number]) => [number, number],
): LabelGeometry {
  switch (g.type) {
    case "Point":
      return { type: "Point", coordinates: f(g.coordinates) };
    case "Polygon":
      return { type: "Polygon", coordinates: g.coordinates.map((r) => r.map(f)) };
    case "MultiPolygon":
      return { type: "MultiPolygon", coordinates: g.coordinates.map((p) => p.map((r) => r.map(f))) };
  }
}

function positionCount(g: LabelGeometry): number {
  switch (g.type) {
    case "Point":
      return 1;
    case "Polygon":
      return g.coordinates.reduce((n, r) => n + r.length, 0);
    case "MultiPolygon":
      return g.coordinates.reduce((n, p) => n + p.reduce((m, r) => m + r.length, 0), 0);
  }
}

/** Options of `parseLabelFeatures`. */
export interface ParseLabelOptions {
  /** The CRS of the coordinates (resolved from the GeoJSON's `crs` member by the caller); default WGS 84. */
  readonly crs?: Crs | null;
  /** Author of features without an `author` property (the CLI user, the API caller). */
  readonly author: string;
  /** Time of features without a `time` property (RFC 3339 UTC). */
  readonly now: string;
  /**
   * Class names already in the label set: a new class that differs from one of them (or from an
   * earlier one of the submission) only by letter case is refused, naming the existing spelling.
   */
  readonly existingClasses?: Iterable<string>;
}

/**
 * Validates a GeoJSON Feature or FeatureCollection of labels and returns one draft per feature, in
 * order, with its geometry reprojected into WGS 84.
 *
 * Input shape: `{type: "Feature", geometry: Polygon|MultiPolygon|Point, properties: {class, note?,
 * author?, time?}}` or a FeatureCollection of them, optionally with a legacy `crs` member (read by the
 * caller with `geoJsonCrs`). Geometry parsing is `labelledGeometries`' (the same rules `lanemap train`
 * applies), plus closed rings (RFC 7946 §3.1.6) and, in WGS 84, longitudes in [-180, 180] and
 * latitudes in [-90, 90].
 * @throws LabelInvalidError naming the field (`features[2].properties.class`, `geometry.type`, ...).
 */
export function parseLabelFeatures(input: unknown, options: ParseLabelOptions): LabelDraft[] {
  if (!isObject(input)) throw new LabelInvalidError("body", "must be a GeoJSON Feature or FeatureCollection");
  const collection = input["type"] === "FeatureCollection";
  if (!collection && input["type"] !== "Feature")
    throw new LabelInvalidError("type", 'must be "Feature" or "FeatureCollection"');
  const features: unknown[] = collection
    ? Array.isArray(input["features"])
      ? input["features"]
      : (() => {
          throw new LabelInvalidError("features", "must be an array of GeoJSON Features");
        })()
    : [input];
  if (features.length === 0) throw new LabelInvalidError("features", "must hold at least one Feature");
  if (features.length > LABEL_LIMITS.features)
    throw new LabelInvalidError(
      "features",
      `holds ${features.length} Features, over the limit of ${LABEL_LIMITS.features}`,
    );
  const crs = options.crs ?? WGS84;
  const wgs84 = sameCrs(crs, WGS84);
  const crsName = crs.epsg !== null ? `EPSG:${crs.epsg}` : (crs.name ?? "unknown");
  let positions = 0;
  // Lower-cased name -> the spelling first seen (the label set's, then the submission's).
  const spelling = new Map<string, string>();
  for (const c of options.existingClasses ?? [])
    if (!spelling.has(c.toLowerCase())) spelling.set(c.toLowerCase(), c);
  return features.map((f, i): LabelDraft => {
    const at = collection ? `features[${i}]` : "";
    const field = (name: string) => (at ? `${at}.${name}` : name);
    if (!isObject(f) || f["type"] !== "Feature")
      throw new LabelInvalidError(at || "body", 'must be a GeoJSON Feature ({"type": "Feature", ...})');
    const props = f["properties"];
    if (!isObject(props))
      throw new LabelInvalidError(field("properties"), 'must be an object with a "class"');
    const cls = text(props["class"], field("properties.class"), LABEL_LIMITS.classLength, {
      required: true,
    }) as string;
    const known = spelling.get(cls.toLowerCase());
    if (known === undefined) spelling.set(cls.toLowerCase(), cls);
    else if (known !== cls)
      throw new LabelInvalidError(
        field("properties.class"),
        `"${cls}" differs from the existing class "${known}" only by case; use "${known}" (class names are case-sensitive)`,
      );
    const note = text(props["note"], field("properties.note"), LABEL_LIMITS.noteLength, { required: false });
    const author =
      text(props["author"], field("properties.author"), LABEL_LIMITS.authorLength, { required: false }) ??
      options.author;
    let time = options.now;
    if (props["time"] !== undefined && props["time"] !== null) {
      const t = props["time"];
      if (typeof t !== "string" || !RFC3339.test(t) || !Number.isFinite(Date.parse(t)))
        throw new LabelInvalidError(field("properties.time"), "must be an RFC 3339 date-time");
      time = new Date(t).toISOString();
    }
    const g = f["geometry"];
    if (!isObject(g))
      throw new LabelInvalidError(field("geometry"), "is required (Polygon, MultiPolygon or Point)");
    if (g["type"] !== "Polygon" && g["type"] !== "MultiPolygon" && g["type"] !== "Point")
      throw new LabelInvalidError(
        field("geometry.type"),
        `must be Polygon, MultiPolygon or Point, got ${JSON.stringify(g["type"])}`,
      );
    // The training parser's rules for positions and rings, so a label that is stored also trains.
    try {
      labelledGeometries({ type: "Feature", properties: { class: cls }, geometry: g });
    } catch (err) {
      if (!(err instanceof TrainingDataError)) throw err;
      throw new LabelInvalidError(field("geometry.coordinates"), err.message.replace(/^feature 1:?\s*/, ""), {
        cause: err,
      });
    }
    const original = geometryOf(g as { type: string; coordinates: unknown });
    if (original.type === "Polygon") {
      closedRings(original.coordinates, field("geometry"));
      simpleRings(original.coordinates, field("geometry"));
    }
    if (original.type === "MultiPolygon") {
      if (original.coordinates.length === 0)
        throw new LabelInvalidError(field("geometry.coordinates"), "must hold at least one polygon");
      for (const poly of original.coordinates) {
        closedRings(poly, field("geometry"));
        simpleRings(poly, field("geometry"));
      }
    }
    if (original.type === "Polygon" && original.coordinates.length === 0)
      throw new LabelInvalidError(field("geometry.coordinates"), "must hold at least one ring");
    positions += positionCount(original);
    if (positions > LABEL_LIMITS.positions)
      throw new LabelInvalidError(
        field("geometry.coordinates"),
        `the submission holds over ${LABEL_LIMITS.positions} positions`,
      );
    const geometry = wgs84
      ? original
      : mapPositions(original, ([x, y]) => {
          const [lon, lat] = projectPoint(crs, WGS84, x, y);
          if (!Number.isFinite(lon) || !Number.isFinite(lat))
            throw new LabelInvalidError(
              field("geometry.coordinates"),
              `position [${x}, ${y}] has no lon/lat in ${crsName}`,
            );
          return [lon, lat];
        });
    mapPositions(geometry, ([lon, lat]) => {
      if (lon < -180 || lon > 180 || lat < -90 || lat > 90)
        throw new LabelInvalidError(
          field("geometry.coordinates"),
          `position [${lon}, ${lat}] is outside lon [-180, 180] / lat [-90, 90]` +
            (wgs84 ? ' (coordinates in another CRS need a "crs" member)' : ""),
        );
      return [lon, lat];
    });
    return {
      class: cls,
      note,
      author,
      time,
      geometry,
      source: wgs84 ? null : { crs: crsName, geometry: original },
    };
  });
}

/** A label as a GeoJSON Feature (RFC 7946, WGS 84): `id` is the label's, the rest in `properties`. */
export function labelFeature(label: Label): {
  type: "Feature";
  id: string;
  geometry: LabelGeometry;
  properties: Record<string, unknown>;
} {
  return {
    type: "Feature",
    id: label.id,
    geometry: label.geometry,
    properties: {
      class: label.class,
      ...(label.note !== null ? { note: label.note } : {}),
      author: label.author,
      time: label.time,
      addedIn: label.addedIn,
      ...(label.source ? { sourceCrs: label.source.crs } : {}),
    },
  };
}

/**
 * A label set as one GeoJSON FeatureCollection, with its version as a foreign member (RFC 7946 §6.1):
 * what `lanemap labels export` writes, GET /v1/labels answers and training reads.
 */
export function labelSetGeoJson(set: LabelSet): {
  type: "FeatureCollection";
  labelSetVersion: number;
  updatedAt: string | null;
  features: ReturnType<typeof labelFeature>[];
} {
  return {
    type: "FeatureCollection",
    labelSetVersion: set.version,
    updatedAt: set.updatedAt,
    features: set.labels.map(labelFeature),
  };
}

/** A lon/lat box; west > east when it crosses the antimeridian (RFC 7946 §5.2). */
export interface LonLatBox {
  readonly minX: number;
  readonly minY: number;
  readonly maxX: number;
  readonly maxY: number;
}

/** The lon/lat bounding box of a label geometry. */
export function labelBox(geometry: LabelGeometry): LonLatBox {
  const b = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
  mapPositions(geometry, ([x, y]) => {
    b.minX = Math.min(b.minX, x);
    b.maxX = Math.max(b.maxX, x);
    b.minY = Math.min(b.minY, y);
    b.maxY = Math.max(b.maxY, y);
    return [x, y];
  });
  return b;
}

function boxesMeet(footprint: LonLatBox, label: LonLatBox): boolean {
  if (label.minY > footprint.maxY || label.maxY < footprint.minY) return false;
  if (footprint.minX > footprint.maxX) return label.maxX >= footprint.minX || label.minX <= footprint.maxX;
  return label.minX <= footprint.maxX && label.maxX >= footprint.minX;
}

/**
 * Warnings for labels whose bounding box meets no archived tile's footprint (lon/lat boxes). Such a
 * label is kept — the archive can grow — but it gives no sample until a tile covers it. An empty
 * archive warns once for the submission rather than per label.
 * @param fields the field name of each draft, for the message (e.g. `features[2]`).
 */
export function labelsOutsideFootprints(
  drafts: readonly LabelDraft[],
  footprints: readonly LonLatBox[],
  fields: readonly string[] = drafts.map((_, i) => `features[${i}]`),
): string[] {
  if (drafts.length === 0) return [];
  if (footprints.length === 0)
    return ["the archive holds no tile yet: these labels give no training sample until tiles cover them"];
  return drafts.flatMap((d, i) =>
    footprints.some((f) => boxesMeet(f, labelBox(d.geometry)))
      ? []
      : [
          `${fields[i] ?? `features[${i}]`} (class "${d.class}") lies outside every archived tile's footprint; ` +
            "it is kept, but gives no training sample until a tile covers it",
        ],
  );
}

/** Label counts per class name, sorted by name. */
export function labelsPerClass(set: LabelSet): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of [...set.labels].sort((a, b) => (a.class < b.class ? -1 : a.class > b.class ? 1 : 0)))
    out[l.class] = (out[l.class] ?? 0) + 1;
  return out;
}
