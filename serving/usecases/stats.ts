/**
 * Area statistics over the merged view: pixels and m² per class, each cell once (its winner).
 * A pixel counts when its centre lies in the area. Cells whose box lies wholly inside the area
 * answer from their pre-computed class counts; only cells the area's edge cuts need their raster,
 * and those are fetched in one DuckDB query per batch version. The pixel estimate is checked
 * against LANEMAP_STATS_MAX_PIXELS before any raster is read (Earth Engine's maxPixels lesson:
 * refuse early, name the limit and the estimate).
 *
 * m² of a partially covered cell: its pixels of a class times that class's mean pixel area in the
 * tile (areasM2[c] / counts[c] from the tile's own summary), exact for projected CRSs and the
 * lane's own figure for geographic ones; a wholly covered cell contributes areasM2 as stored.
 */
import { z } from "zod";
import {
  LabelInvalidError,
  NO_SOURCE,
  WGS84,
  labelInputCrs,
  sameCrs,
  toWgs84,
  type Bounds,
  type ClassRaster,
  type Crs,
} from "../../shared/index.js";
import { AreaTooLargeError, GeometryTooComplexError, InvalidParamsError } from "../errors.js";
import { invalidParams } from "../api/params.js";
import type { StatsBody, StatsClassBody } from "../api/schemas.js";
import {
  boxInsideArea,
  boundsIntersect,
  overlapFraction,
  polygonArea,
  type Area,
  type PolygonRings,
} from "../geo/area.js";
import { countClassesInArea } from "../geo/pixels.js";
import type { ComposedCell, ServedResult } from "../view/served-result.js";
import type { SnapshotLease } from "../view/snapshot.js";
import { className, givingSources, snapshotInfo } from "./present.js";

/** Most vertices a request polygon may have (bounds the work before the pixel estimate). */
export const MAX_POLYGON_VERTICES = 100_000;

/**
 * Most vertex-rows one area query may cost: the area's vertices times the raster rows of every
 * cell its edge cuts (the scanline fill tests each row of a cut cell against every edge). About
 * 0.1 s of CPU at the limit; a 20,000-tooth comb of 40,000 vertices over one 128-row tile (5.1 M)
 * is refused, a 2,000-vertex field over four 256-row cells (2 M) is not.
 */
export const MAX_STATS_VERTEX_ROWS = 4_000_000;

const geometry = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("Polygon"), coordinates: z.unknown() }).loose(),
    z.object({ type: z.literal("MultiPolygon"), coordinates: z.unknown() }).loose(),
  ],
  { message: "must be a GeoJSON Polygon, MultiPolygon, or a Feature with one" },
);

type Issue = { name: string; reason: string };

/**
 * Checks a Polygon's coordinates by hand: a schema library's per-number refinements cost about
 * a second for a 1 MB polygon, on the event loop, before any budget could refuse it. Returns the
 * rings as [lon, lat] pairs or the first issue, named by its path (body.coordinates.0.1).
 * Positions in `crs` (not WGS 84) are reprojected vertex by vertex, then checked as lon/lat; edges
 * are not densified, so a long edge's curvature in lon/lat is lost (well under a pixel for a field
 * or a few tiles' width in UTM).
 */
function polygonRings(value: unknown, path: string, crs: Crs | null): PolygonRings | Issue {
  if (!Array.isArray(value)) return { name: path, reason: "must be an array of linear rings" };
  if (value.length < 1) return { name: path, reason: "a polygon needs an outer ring" };
  const rings: (readonly [number, number])[][] = [];
  for (let r = 0; r < value.length; r++) {
    const ring: unknown = value[r];
    // Paths are built only for the issue returned: one string per position would cost more than the check.
    const at = (i?: number) => (i === undefined ? `${path}.${r}` : `${path}.${r}.${i}`);
    if (!Array.isArray(ring)) return { name: at(), reason: "must be an array of positions" };
    if (ring.length < 4) return { name: at(), reason: "a linear ring needs at least four positions" };
    const out: (readonly [number, number])[] = [];
    for (let i = 0; i < ring.length; i++) {
      const p: unknown = ring[i];
      if (!Array.isArray(p) || p.length < 2 || p.length > 3)
        return { name: at(i), reason: "a position is two or three numbers (longitude, latitude[, height])" };
      for (const v of p as unknown[])
        if (typeof v !== "number" || !Number.isFinite(v))
          return { name: at(i), reason: "must hold finite numbers" };
      let lon = p[0] as number;
      let lat = p[1] as number;
      if (crs) {
        [lon, lat] = toWgs84(crs, lon, lat);
        if (!Number.isFinite(lon) || !Number.isFinite(lat))
          return { name: at(i), reason: `does not reproject from ${crsLabel(crs)} to WGS 84` };
      }
      if (lon < -180 || lon > 180) return { name: at(i), reason: "longitude must lie in -180..180" };
      if (lat < -90 || lat > 90) return { name: at(i), reason: "latitude must lie in -90..90" };
      out.push([lon, lat]);
    }
    const a = out[0]!;
    const b = out[out.length - 1]!;
    if (a[0] !== b[0] || a[1] !== b[1])
      return { name: at(), reason: "a linear ring must be closed (first position = last)" };
    rings.push(out);
  }
  return rings;
}

const isIssue = (v: PolygonRings | Issue): v is Issue => !Array.isArray(v);

const crsLabel = (crs: Crs): string => (crs.epsg !== null ? `EPSG:${crs.epsg}` : (crs.name ?? "its CRS"));

/**
 * The CRS of a POST /v1/stats body's positions: the legacy GeoJSON `crs` member, read and resolved
 * as POST /v1/labels reads it (shared/labels/crs.ts: `{"type": "name", "properties": {"name":
 * "urn:ogc:def:crs:EPSG::32615"}}` or "EPSG:32615"), as GDAL/OGR also accept it; null for WGS 84, which
 * RFC 7946 §4 makes the default (and only) CRS of GeoJSON.
 * @throws InvalidParamsError (400, `body.crs`) for a member lanemap cannot read or PROJ cannot use.
 */
export async function statsBodyCrs(value: unknown): Promise<Crs | null> {
  try {
    const crs = await labelInputCrs(value);
    return crs === null || sameCrs(crs, WGS84) ? null : crs;
  } catch (err) {
    if (err instanceof LabelInvalidError)
      throw new InvalidParamsError([{ name: `body.${err.field}`, reason: err.reason }]);
    throw err;
  }
}

/**
 * Parses a POST /v1/stats body — a Polygon, MultiPolygon, a Feature with one, or a FeatureCollection
 * of such Features — into a WGS 84 area, or throws a 400 naming the offending member. `crs` is the
 * CRS of the positions (`statsBodyCrs`), null for WGS 84 lon/lat.
 */
export function parseStatsBody(value: unknown, crs: Crs | null = null): Area {
  if (value === undefined || value === null || typeof value !== "object" || Array.isArray(value))
    throw new InvalidParamsError([
      {
        name: "body",
        reason: "must be a GeoJSON object (Content-Type application/json or application/geo+json)",
      },
    ]);
  const v = value as { type?: unknown; geometry?: unknown; features?: unknown };
  // A FeatureCollection (what GIS tools export) is the union of its features' (Multi)Polygons.
  if (v.type === "FeatureCollection") {
    if (!Array.isArray(v.features) || v.features.length === 0)
      throw new InvalidParamsError([
        { name: "body.features", reason: "must be a non-empty array of Features" },
      ]);
    const polygons: PolygonRings[] = [];
    v.features.forEach((f: unknown, i: number) => {
      const name = `body.features.${i}`;
      if (f === null || typeof f !== "object" || (f as { type?: unknown }).type !== "Feature")
        throw new InvalidParamsError([{ name, reason: "must be a Feature with a Polygon or MultiPolygon" }]);
      try {
        polygons.push(...parseStatsBody(f, crs).polygons);
      } catch (err) {
        // Name the member inside this feature: body.geometry... -> body.features.<i>.geometry...
        if (err instanceof InvalidParamsError)
          throw new InvalidParamsError(
            err.invalidParams.map((p) => ({ ...p, name: p.name.replace(/^body/, name) })),
          );
        throw err;
      }
    });
    let vertices = 0;
    for (const p of polygons) for (const rg of p) vertices += rg.length;
    if (vertices > MAX_POLYGON_VERTICES)
      throw new InvalidParamsError([
        { name: "body", reason: `has ${vertices} vertices, more than the ${MAX_POLYGON_VERTICES} allowed` },
      ]);
    return polygonArea(polygons);
  }
  // Features are unwrapped first, so issues name paths inside the geometry the client sent.
  const isFeature = v.type === "Feature";
  const base = isFeature ? "body.geometry" : "body";
  const r = geometry.safeParse(isFeature ? v.geometry : value);
  if (!r.success) {
    if (isFeature && (v.geometry === undefined || v.geometry === null))
      throw new InvalidParamsError([{ name: "body.geometry", reason: "must be a Polygon or MultiPolygon" }]);
    const params = invalidParams(r.error, base);
    throw new InvalidParamsError(params.length ? params : [{ name: "body", reason: "is not a polygon" }]);
  }
  const coords: unknown = r.data.coordinates;
  const polys: PolygonRings[] = [];
  if (r.data.type === "Polygon") {
    const p = polygonRings(coords, `${base}.coordinates`, crs);
    if (isIssue(p)) throw new InvalidParamsError([p]);
    polys.push(p);
  } else {
    if (!Array.isArray(coords) || coords.length < 1)
      throw new InvalidParamsError([{ name: `${base}.coordinates`, reason: "needs a polygon" }]);
    for (let i = 0; i < coords.length; i++) {
      const p = polygonRings(coords[i], `${base}.coordinates.${i}`, crs);
      if (isIssue(p)) throw new InvalidParamsError([p]);
      polys.push(p);
    }
  }
  let vertices = 0;
  for (const p of polys) for (const rg of p) vertices += rg.length;
  if (vertices > MAX_POLYGON_VERTICES)
    throw new InvalidParamsError([
      { name: "body", reason: `has ${vertices} vertices, more than the ${MAX_POLYGON_VERTICES} allowed` },
    ]);
  return polygonArea(polys);
}

interface Job {
  readonly r: ServedResult;
  readonly full: boolean;
}

/** Pixels and m² per class over `area`; 422 before any work when the estimate exceeds `maxPixels`. */
export async function statsQuery(lease: SnapshotLease, area: Area, maxPixels: number): Promise<StatsBody> {
  const s = lease.snapshot;
  let vertices = 0;
  for (const p of area.polygons) for (const rg of p) vertices += rg.length;
  const candidates: { r: ServedResult; b: Bounds }[] = [];
  s.index.winners().search(area.bounds, (cell, b) => {
    if (cell.winner && boundsIntersect(area.bounds, b)) candidates.push({ r: cell.winner, b });
  });
  // Work is bounded before it is done (see MAX_STATS_VERTEX_ROWS): first the box tests (every
  // vertex against every candidate cell), then the scanline fill of the cells the edge cuts.
  let work = vertices * candidates.length;
  if (work > MAX_STATS_VERTEX_ROWS) throw new GeometryTooComplexError(work, MAX_STATS_VERTEX_ROWS, vertices);
  const jobs: Job[] = [];
  let estimate = 0;
  for (const { r, b } of candidates) {
    const full = boxInsideArea(area, b);
    const pixels = r.summary.width * r.summary.height;
    estimate += full ? pixels : pixels * overlapFraction(area.bounds, b);
    jobs.push({ r, full });
  }
  estimate = Math.ceil(estimate);
  if (estimate > maxPixels) throw new AreaTooLargeError(estimate, maxPixels);
  for (const j of jobs) if (!j.full) work += vertices * j.r.summary.height;
  if (work > MAX_STATS_VERTEX_ROWS) throw new GeometryTooComplexError(work, MAX_STATS_VERTEX_ROWS, vertices);

  // A composite winner's tally is known once composed (at once when the batch view stored it).
  // Only composite winners are awaited: a Promise.all over every job (10,000 on a large box) paid a
  // promise and a microtask per cell for nothing, ~0.5 ms of CPU a request (bench:compare, issue 13).
  const composing: Promise<unknown>[] = [];
  const composedOf = new Map<ServedResult, ComposedCell>();
  for (const j of jobs)
    if (j.r.composite) composing.push(j.r.composite.compose().then((c) => composedOf.set(j.r, c)));
  if (composing.length > 0) await Promise.all(composing);
  // Rasters of the cut cells: one query for the batch ones (all from this snapshot's version).
  const cut = jobs.flatMap(({ r, full }) =>
    !full && r.crs && r.bounds ? [{ r, crs: r.crs, bounds: r.bounds }] : [],
  );
  const batchIds = cut.filter((j) => j.r.lane === "batch").map((j) => j.r.tileId);
  if (s.batch && batchIds.length) await s.batch.prefetchRasters(batchIds);
  const partial = await Promise.all(
    cut.map(async ({ r, crs, bounds }) => {
      const raster = await r.raster();
      const grid = {
        width: r.summary.width,
        height: r.summary.height,
        geoTransform: r.summary.geoTransform,
        crs,
      };
      const counts = countClassesInArea(grid, bounds, raster, area);
      // A composite's pixels in the area per source: its source index counted as if it were classes
      // (index + 1; 0 = no source), through the same pixel-in-area rule.
      const composed = composedOf.get(r);
      const bySource = composed
        ? countClassesInArea(grid, bounds, sourceClasses(composed, raster.k), area).slice(1)
        : undefined;
      return { r, counts, bySource };
    }),
  );

  const pixels: number[] = [];
  const areas: number[] = [];
  const cells = { total: 0, full: 0, partial: 0, batch: 0, live: 0 };
  const models = new Set<string>();
  let oldest = Infinity;
  let newest = -Infinity;
  // Provenance describes the pixels counted: a composite's sources that give pixels in the area
  // (its newest source when none does), a plain result itself. A cell counts in `batch` and `live`
  // once for each lane among those sources.
  const counted = (r: ServedResult, full: boolean, bySource?: readonly number[]): void => {
    cells.total++;
    cells[full ? "full" : "partial"]++;
    const composed = composedOf.get(r);
    const from = (composed && givingSources(composed, bySource)?.giving) || [r.composite?.top ?? r];
    const lanes = new Set(from.map((x) => x.lane));
    for (const lane of lanes) cells[lane]++;
    for (const x of from) {
      models.add(x.summary.modelVersion);
      oldest = Math.min(oldest, x.acquiredMs);
      newest = Math.max(newest, x.acquiredMs);
    }
  };
  for (const j of jobs) {
    if (!j.full) continue;
    const { counts, areasM2 } = j.r.summary;
    for (let c = 0; c < counts.length; c++) pixels[c] = (pixels[c] ?? 0) + (counts[c] ?? 0);
    for (let c = 0; c < areasM2.length; c++) areas[c] = (areas[c] ?? 0) + (areasM2[c] ?? 0);
    counted(j.r, true);
  }
  for (const { r, counts, bySource } of partial) {
    let any = 0;
    counts.forEach((n, c) => {
      if (n === 0) return;
      any += n;
      pixels[c] = (pixels[c] ?? 0) + n;
      const tileCount = r.summary.counts[c] ?? 0;
      const tileArea = r.summary.areasM2[c] ?? 0;
      areas[c] = (areas[c] ?? 0) + (tileCount > 0 ? (n * tileArea) / tileCount : 0);
    });
    if (any > 0) counted(r, false, bySource);
  }

  const ids = new Set<number>(s.classes.map((c) => c.id));
  pixels.forEach((n, c) => n > 0 && ids.add(c));
  ids.add(0);
  const classes: StatsClassBody[] = [...ids]
    .sort((a, b) => a - b)
    .map((id) => ({
      id,
      name: className(s.classes, id),
      colour: s.classes.find((c) => c.id === id)?.colour ?? "#808080",
      pixels: pixels[id] ?? 0,
      areaM2: areas[id] ?? 0,
    }));
  const b = area.bounds;
  return {
    area: { kind: area.kind, bbox: [b.minX, b.minY, b.maxX, b.maxY] },
    cells,
    pixels: classes.reduce((a, c) => a + c.pixels, 0),
    classes,
    provenance: {
      batchVersion: s.batch?.version ?? null,
      watermark: s.batch ? s.batch.manifest.watermark : null,
      livePosition: s.live?.position ?? null,
      modelVersions: [...models].sort(),
      acquired:
        cells.total > 0
          ? { oldest: new Date(oldest).toISOString(), newest: new Date(newest).toISOString() }
          : null,
      staleness: {
        maxSinceAcquiredS: cells.total > 0 ? Math.round(lease.now - oldest) / 1000 : null,
        viewAgeS: s.batch && cells.batch > 0 ? Math.round(lease.now - s.batch.finishedMs) / 1000 : null,
      },
    },
    snapshot: snapshotInfo(lease),
  };
}

/** A composed cell's source index as a class raster: source s as class s + 1, no source as 0. */
function sourceClasses(c: ComposedCell, k: number): ClassRaster {
  const classes = new Uint8Array(c.source.length);
  for (let i = 0; i < classes.length; i++) {
    const s = c.source[i] as number;
    classes[i] = s === NO_SOURCE ? 0 : s + 1;
  }
  return { width: c.raster.width, height: c.raster.height, k, classes, votes: classes };
}
