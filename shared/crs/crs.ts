/**
 * Coordinate reference systems and transforms between them (proj4). A `Crs` is a plain record
 * (shared/raster/types.ts), so it crosses worker and process boundaries as data; converters are built
 * from its proj4 definition on demand and cached.
 */
import proj4, { type Converter } from "proj4";
import { TileInvalidError } from "../errors.js";
import type { Bounds, Crs } from "../raster/types.js";
import { lookupEpsg } from "./epsg.js";

/** A CRS cannot be used as asked: unknown EPSG code, no proj4 definition, a transform that fails. */
export class CrsError extends TileInvalidError {}

/** WGS 84 longitude/latitude (EPSG:4326), in lon, lat axis order. */
export const WGS84: Crs = Object.freeze({
  epsg: 4326,
  proj4: "+proj=longlat +datum=WGS84 +no_defs",
  name: "WGS 84",
});

/**
 * The CRS of an EPSG code, with its proj4 definition and name from the EPSG index.
 * @throws CrsError when the code is not in the index or has no proj4 form.
 */
export function crsFromEpsg(code: number): Crs {
  if (code === 4326) return WGS84;
  const entry = lookupEpsg(code);
  if (entry === null) throw new CrsError(`EPSG:${code} is not a known CRS with a proj4 definition`);
  return { epsg: code, proj4: entry.proj4, name: entry.name };
}

const converters = new Map<string, Converter>();
const MAX_CONVERTERS = 256;

/**
 * True when proj4js would need a grid file for this definition (+nadgrids other than @null, or
 * +datum=NAD27, which proj4js maps to the NADCON grids). proj4js has no grid files, and then returns
 * NaN for every point: such a definition must never reach a transform.
 */
export function proj4NeedsGrid(def: string): boolean {
  return /\+nadgrids=(?!@?null\b)/i.test(def) || /\+datum=NAD27\b/i.test(def);
}

function definition(crs: Crs): string {
  const label = crs.epsg !== null ? `EPSG:${crs.epsg}` : (crs.name ?? "unnamed CRS");
  if (crs.proj4 === null || crs.proj4.trim() === "")
    throw new CrsError(`${label} has no proj4 definition, so points cannot be transformed`);
  if (proj4NeedsGrid(crs.proj4))
    throw new CrsError(
      `${label}: its proj4 definition needs a datum grid file that proj4js cannot load (${crs.proj4}); read the tile again so that PROJ resolves its CRS`,
    );
  return crs.proj4;
}

// Hot callers (serving's point and stats queries) pass the same Crs records again and again: look
// those up by identity first, before building the string key.
const byRecord = new WeakMap<Crs, WeakMap<Crs, Converter>>();

function converter(from: Crs, to: Crs): Converter {
  const known = byRecord.get(from)?.get(to);
  if (known !== undefined) return known;
  const c = converterByDefinition(from, to);
  let inner = byRecord.get(from);
  if (inner === undefined) byRecord.set(from, (inner = new WeakMap()));
  inner.set(to, c);
  return c;
}

/** The +axis term of a proj4 definition ("enu" when absent) and the definition without it. */
function splitAxis(def: string): { axis: string; bare: string } {
  const m = /(?:^|\s)\+axis=([a-z]{3})(?=\s|$)/i.exec(def);
  if (m === null) return { axis: "enu", bare: def };
  return { axis: (m[1] as string).toLowerCase(), bare: def.replace(m[0], " ").trim() };
}

/** Easting/northing from coordinates in an axis order (x = first axis, as GDAL hands them over). */
function fromAxis(axis: string, u: number, v: number): [number, number] {
  let e = NaN;
  let n = NaN;
  for (const [c, val] of [
    [axis[0], u],
    [axis[1], v],
  ] as const) {
    if (c === "e") e = val;
    else if (c === "w") e = -val;
    else if (c === "n") n = val;
    else if (c === "s") n = -val;
  }
  return [e, n];
}

/** The inverse of fromAxis. */
function toAxis(axis: string, e: number, n: number): [number, number] {
  const out: number[] = [];
  for (const c of [axis[0], axis[1]])
    out.push(c === "e" ? e : c === "w" ? -e : c === "n" ? n : c === "s" ? -n : NaN);
  return [out[0] as number, out[1] as number];
}

/**
 * A proj4js converter with the axis order applied by us: proj4js negates the wrong side for
 * westing/southing axes (`+axis=wsu`, e.g. EPSG:2046 south-oriented Transverse Mercator, lands in
 * the other hemisphere), so the axis term is stripped and the coordinates are flipped around it.
 */
function axisAware(a: string, b: string): Converter {
  const from = splitAxis(a);
  const to = splitAxis(b);
  const inner = proj4(from.bare, to.bare);
  if (from.axis.startsWith("en") && to.axis.startsWith("en")) return inner;
  const run = (p: [number, number], forward: boolean): number[] => {
    const [fa, ta] = forward ? [from.axis, to.axis] : [to.axis, from.axis];
    const [e, n] = fromAxis(fa, p[0], p[1]);
    const out = forward ? inner.forward([e, n]) : inner.inverse([e, n]);
    return toAxis(ta, out[0] ?? NaN, out[1] ?? NaN);
  };
  return {
    forward: ((p: number[]) => run([p[0] ?? NaN, p[1] ?? NaN], true)) as Converter["forward"],
    inverse: ((p: number[]) => run([p[0] ?? NaN, p[1] ?? NaN], false)) as Converter["inverse"],
  } as Converter;
}

function converterByDefinition(from: Crs, to: Crs): Converter {
  const a = definition(from);
  const b = definition(to);
  const key = `${a}\u0000${b}`;
  let c = converters.get(key);
  if (c === undefined) {
    try {
      c = axisAware(a, b);
    } catch (err) {
      throw new CrsError(`cannot build a transform from "${a}" to "${b}"`, { cause: err });
    }
    // A bounded cache: definitions come from files, so their number is not ours to trust.
    if (converters.size >= MAX_CONVERTERS) converters.clear();
    converters.set(key, c);
  }
  return c;
}

/** True when both records describe the same CRS (same EPSG code, or the same proj4 definition). */
export function sameCrs(a: Crs, b: Crs): boolean {
  if (a.epsg !== null && b.epsg !== null) return a.epsg === b.epsg;
  return a.proj4 !== null && a.proj4 === b.proj4;
}

/**
 * Transforms one point from `from` to `to`. Outside a projection's domain the result holds
 * non-finite numbers (proj4's convention) rather than throwing, so a caller sweeping many points
 * can skip the ones that do not map.
 * @throws CrsError when either CRS has no proj4 definition.
 */
export function projectPoint(from: Crs, to: Crs, x: number, y: number): [number, number] {
  if (sameCrs(from, to)) return [x, y];
  const out = converter(from, to).forward([x, y]);
  return [out[0] ?? NaN, out[1] ?? NaN];
}

/**
 * Transforms a point from `crs` to WGS 84 longitude/latitude.
 * @throws CrsError when the CRS has no proj4 definition.
 */
export function toWgs84(crs: Crs, x: number, y: number): [number, number] {
  return projectPoint(crs, WGS84, x, y);
}

/**
 * Transforms a WGS 84 longitude/latitude into `crs`.
 * @throws CrsError when the CRS has no proj4 definition.
 */
export function fromWgs84(crs: Crs, lon: number, lat: number): [number, number] {
  return projectPoint(WGS84, crs, lon, lat);
}

/**
 * Transforms a bounding box: the 4 corners and `densify` evenly spaced points along each edge
 * (default 1, the edge midpoints) are transformed and their min/max taken, since a projected
 * rectangle's edges bulge. Points that do not map (outside the target's domain) are skipped.
 * @throws CrsError when no point maps at all.
 */
export function transformBounds(from: Crs, to: Crs, bounds: Bounds, densify = 1): Bounds {
  if (sameCrs(from, to)) return { ...bounds };
  const steps = Math.max(1, Math.floor(densify) + 1);
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  const add = (x: number, y: number): void => {
    const [px, py] = projectPoint(from, to, x, y);
    if (!Number.isFinite(px) || !Number.isFinite(py)) return;
    if (px < minX) minX = px;
    if (px > maxX) maxX = px;
    if (py < minY) minY = py;
    if (py > maxY) maxY = py;
  };
  const { minX: x0, minY: y0, maxX: x1, maxY: y1 } = bounds;
  for (let i = 0; i < steps; i++) {
    const t = i / steps;
    // Walk the four edges; each edge contributes its start corner and its inner points.
    add(x0 + (x1 - x0) * t, y0);
    add(x1, y0 + (y1 - y0) * t);
    add(x1 - (x1 - x0) * t, y1);
    add(x0, y1 - (y1 - y0) * t);
  }
  if (minX > maxX || minY > maxY)
    throw new CrsError("no point of the bounds could be transformed into the target CRS");
  return { minX, minY, maxX, maxY };
}
