/**
 * Lon/lat bounding boxes that may cross the antimeridian, as RFC 7946 §5.2 and the STAC API define
 * them: `[west, south, east, north]` with west > east when the box crosses 180°. A `Bounds` record is
 * read that way here: `minX` = west, `maxX` = east, `minY` = south, `maxY` = north (degrees).
 *
 * Pure functions over already-transformed lon/lat points: how points get from a tile's CRS to lon/lat
 * is the CRS module's business; the footprint of a ring of them, and the box algebra, are this one's.
 *
 * Known limit: longitude -180 and 180 are one meridian, but an edge at exactly -180 is not identified
 * with one at 180 (a degenerate box at -180 does not meet one ending at 180). Boxes built here from
 * footprints and unions never start at -180 unless they cover the whole globe.
 */
import type { Bounds } from "../raster/types.js";

/** The whole globe as a box. */
export const WHOLE_GLOBE: Bounds = Object.freeze({ minX: -180, minY: -90, maxX: 180, maxY: 90 });

/** A longitude wrapped into [-180, 180] (180 stays 180, -180 stays -180). */
export function wrapLongitude(lon: number): number {
  if (lon >= -180 && lon <= 180) return lon;
  const w = ((((lon + 180) % 360) + 360) % 360) - 180;
  return w === -180 && lon > 0 ? 180 : w;
}

/** True when the box crosses the antimeridian (west > east). */
export function crossesAntimeridian(b: Bounds): boolean {
  return b.minX > b.maxX;
}

/** The box's longitude extent in degrees, 0..360. */
export function lonWidth(b: Bounds): number {
  return crossesAntimeridian(b) ? 360 - b.minX + b.maxX : b.maxX - b.minX;
}

/**
 * The box as one or two boxes that do not cross 180° (west part first): what a client that cannot
 * read west > east, or a polygon test, needs.
 */
export function splitAtAntimeridian(b: Bounds): Bounds[] {
  if (!crossesAntimeridian(b)) return [{ ...b }];
  return [
    { minX: b.minX, minY: b.minY, maxX: 180, maxY: b.maxY },
    { minX: -180, minY: b.minY, maxX: b.maxX, maxY: b.maxY },
  ];
}

/** The box's centre (longitude wrapped), e.g. to order tiles by distance. */
export function boxCentre(b: Bounds): [number, number] {
  return [wrapLongitude(b.minX + lonWidth(b) / 2), (b.minY + b.maxY) / 2];
}

/** True when `lon` lies in the box's longitude range (wrapping across 180° when west > east). */
function lonInside(b: Bounds, lon: number): boolean {
  const l = wrapLongitude(lon);
  return crossesAntimeridian(b) ? l >= b.minX || l <= b.maxX : l >= b.minX && l <= b.maxX;
}

/** True when the point lies in the box (edges included). */
export function boxContains(b: Bounds, lon: number, lat: number): boolean {
  return lat >= b.minY && lat <= b.maxY && lonInside(b, lon);
}

/** True when every point of `inner` lies in `outer` (edges included). */
export function boxWithin(inner: Bounds, outer: Bounds): boolean {
  if (inner.minY < outer.minY || inner.maxY > outer.maxY) return false;
  if (lonWidth(outer) >= 360) return true;
  if (!lonInside(outer, inner.minX)) return false;
  // Degrees east from outer's west edge to inner's west edge, then inner's width must still fit.
  const start = (((wrapLongitude(inner.minX) - outer.minX) % 360) + 360) % 360;
  return start + lonWidth(inner) <= lonWidth(outer);
}

/** True when the two boxes share at least one point (edges included). */
export function boxesIntersect(a: Bounds, b: Bounds): boolean {
  if (a.minY > b.maxY || b.minY > a.maxY) return false;
  // Without allocation: serving's spatial index calls this for every candidate of every query.
  const ac = a.minX > a.maxX;
  const bc = b.minX > b.maxX;
  if (!ac && !bc) return a.minX <= b.maxX && b.minX <= a.maxX;
  if (ac && bc) return true; // both hold 180°
  const [c, n] = ac ? [a, b] : [b, a];
  return n.maxX >= c.minX || n.minX <= c.maxX;
}

/**
 * The parts both boxes cover: none, one, or two boxes (two crossing boxes can overlap on both sides
 * of the globe). Each part is itself a box that may cross 180° when both inputs do.
 */
export function boxIntersection(a: Bounds, b: Bounds): Bounds[] {
  const minY = Math.max(a.minY, b.minY);
  const maxY = Math.min(a.maxY, b.maxY);
  if (minY > maxY) return [];
  const pieces: Bounds[] = [];
  for (const p of splitAtAntimeridian(a))
    for (const q of splitAtAntimeridian(b)) {
      const minX = Math.max(p.minX, q.minX);
      const maxX = Math.min(p.maxX, q.maxX);
      if (minX <= maxX) pieces.push({ minX, minY, maxX, maxY });
    }
  // Rejoin a piece ending at 180 with one starting at -180: they are one box across the antimeridian.
  const east = pieces.findIndex((p) => p.maxX === 180 && p.minX > -180);
  const west = pieces.findIndex((p) => p.minX === -180 && p.maxX < 180);
  if (east >= 0 && west >= 0 && east !== west) {
    const e = pieces[east] as Bounds;
    const w = pieces[west] as Bounds;
    const joined = { minX: e.minX, minY, maxX: w.maxX, maxY };
    return [joined, ...pieces.filter((_, i) => i !== east && i !== west)];
  }
  return pieces;
}

/**
 * The smallest box covering both (the shorter way round the globe when both ways would do); the
 * whole globe's longitudes when together they need more than 360°.
 */
export function boxUnion(a: Bounds, b: Bounds): Bounds {
  const minY = Math.min(a.minY, b.minY);
  const maxY = Math.max(a.maxY, b.maxY);
  if (lonWidth(a) >= 360 || lonWidth(b) >= 360) return { minX: -180, minY, maxX: 180, maxY };
  // The smallest arc covering two arcs starts at one of their west ends: try both, going east far
  // enough to cover both.
  let best: { west: number; width: number } | null = null;
  for (const west of [a.minX, b.minX]) {
    const reach = (box: Bounds): number => {
      // Degrees east of `west` needed to cover `box`: its west must be reached first, going east.
      const start = (((box.minX - west) % 360) + 360) % 360;
      return start + lonWidth(box);
    };
    const width = Math.max(reach(a), reach(b));
    if (best === null || width < best.width) best = { west, width };
  }
  const { west, width } = best as { west: number; width: number };
  if (width >= 360) return { minX: -180, minY, maxX: 180, maxY };
  return { minX: west, minY, maxX: wrapLongitude(west + width), maxY };
}

/**
 * The lon/lat footprint of a closed ring of points (a tile's edge, densified, in order), as a box that
 * crosses 180° when the ring does. Longitudes are unwrapped along the ring (a step over 180° is taken
 * as crossing the antimeridian, so the ring must be densified enough that true steps are shorter),
 * so a tile across 180° gets a narrow west > east box instead of the whole globe's longitudes. A ring
 * around a pole unwraps to a full turn: its box spans every longitude and reaches the pole.
 * Non-finite points (outside the projection's domain) are skipped. Null when no point is finite.
 */
export function ringFootprint(ring: readonly (readonly [number, number])[]): Bounds | null {
  let prev: number | null = null;
  let first: number | null = null;
  let lonMin = Infinity;
  let lonMax = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (const [lon, lat] of ring) {
    if (!Number.isFinite(lon) || !Number.isFinite(lat)) continue;
    let u = wrapLongitude(lon);
    if (prev !== null) {
      // The unwrapped longitude nearest the previous one.
      while (u - prev > 180) u -= 360;
      while (u - prev < -180) u += 360;
    } else first = u;
    prev = u;
    lonMin = Math.min(lonMin, u);
    lonMax = Math.max(lonMax, u);
    minY = Math.min(minY, lat);
    maxY = Math.max(maxY, lat);
  }
  if (prev === null || first === null) return null;
  // Closing the ring: back to the first point; a full turn means it goes around a pole.
  let closing = first;
  while (closing - prev > 180) closing -= 360;
  while (closing - prev < -180) closing += 360;
  if (Math.abs(closing - first) >= 180) {
    const north = Math.abs(maxY) >= Math.abs(minY);
    return { minX: -180, minY: north ? minY : -90, maxX: 180, maxY: north ? 90 : maxY };
  }
  if (lonMax - lonMin >= 360) return { minX: -180, minY, maxX: 180, maxY };
  // Shift the unwrapped range so its west end lies in [-180, 180).
  const shift = Math.floor((lonMin + 180) / 360) * 360;
  const west = lonMin - shift;
  const east = lonMax - shift;
  return { minX: west, minY, maxX: east > 180 ? east - 360 : east, maxY };
}

/**
 * The closed ring of a native-CRS rectangle: its 4 corners and `densify` points along each edge,
 * counter-clockwise from the lower-left corner (rasterio's `transform_bounds` densifies with 21).
 */
export function densifiedRing(b: Bounds, densify = 21): [number, number][] {
  const steps = Math.max(1, Math.floor(densify) + 1);
  const ring: [number, number][] = [];
  const { minX: x0, minY: y0, maxX: x1, maxY: y1 } = b;
  for (let i = 0; i < steps; i++) ring.push([x0 + ((x1 - x0) * i) / steps, y0]);
  for (let i = 0; i < steps; i++) ring.push([x1, y0 + ((y1 - y0) * i) / steps]);
  for (let i = 0; i < steps; i++) ring.push([x1 - ((x1 - x0) * i) / steps, y1]);
  for (let i = 0; i < steps; i++) ring.push([x0, y1 - ((y1 - y0) * i) / steps]);
  return ring;
}

/** A GeoJSON Polygon for the box, or a MultiPolygon of its two halves when it crosses 180° (RFC 7946 §3.1.9). */
export function boxGeometry(
  b: Bounds,
): { type: "Polygon"; coordinates: number[][][] } | { type: "MultiPolygon"; coordinates: number[][][][] } {
  const ring = (p: Bounds): number[][] => [
    [p.minX, p.minY],
    [p.maxX, p.minY],
    [p.maxX, p.maxY],
    [p.minX, p.maxY],
    [p.minX, p.minY],
  ];
  const parts = splitAtAntimeridian(b);
  if (parts.length === 1) return { type: "Polygon", coordinates: [ring(parts[0] as Bounds)] };
  return { type: "MultiPolygon", coordinates: parts.map((p) => [ring(p)]) };
}
