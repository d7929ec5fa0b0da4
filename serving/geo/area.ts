/**
 * Areas in WGS84 lon/lat for statistics: a bbox or GeoJSON (Multi)Polygons, with the tests the
 * statistics use — does a tile's box lie wholly inside (then its pre-computed class counts answer),
 * and the area clipped to a tile's box (then only the raster work near the edge remains).
 */
import {
  boxIntersection,
  boxUnion,
  boxWithin,
  boxesIntersect,
  crossesAntimeridian,
  lonWidth,
  splitAtAntimeridian,
  type Bounds,
} from "../../shared/index.js";

/** A ring of [lon, lat] positions, closed (first = last). */
export type Ring = readonly (readonly [number, number])[];
/** A polygon: the outer ring, then holes. */
export type PolygonRings = readonly Ring[];

/** An area to aggregate over: one or more polygons (even-odd within each, union across them). */
export interface Area {
  readonly kind: "bbox" | "polygon";
  readonly polygons: readonly PolygonRings[];
  readonly bounds: Bounds;
}

/** The area of a lon/lat bbox; one across the antimeridian (west > east) is its two halves. */
export function bboxArea(b: Bounds): Area {
  const polygons = splitAtAntimeridian(b).map((p): PolygonRings => [
    [
      [p.minX, p.minY],
      [p.maxX, p.minY],
      [p.maxX, p.maxY],
      [p.minX, p.maxY],
      [p.minX, p.minY],
    ],
  ]);
  return { kind: "bbox", polygons, bounds: { ...b } };
}

/** The area of GeoJSON polygon coordinates (already validated: closed rings of finite positions). */
/**
 * The area of GeoJSON polygon coordinates (already validated: closed rings of finite positions). Its
 * bounds are the union of the polygons' boxes the short way round, so a MultiPolygon split at the
 * antimeridian (RFC 7946 §3.1.9) gets a narrow west > east box, not every longitude.
 */
export function polygonArea(polygons: readonly PolygonRings[]): Area {
  let bounds: Bounds | null = null;
  for (const p of polygons) {
    let minX = Infinity;
    let minY = Infinity;
    let maxX = -Infinity;
    let maxY = -Infinity;
    for (const [x, y] of p[0] ?? []) {
      minX = Math.min(minX, x);
      minY = Math.min(minY, y);
      maxX = Math.max(maxX, x);
      maxY = Math.max(maxY, y);
    }
    if (minX > maxX) continue;
    const box = { minX, minY, maxX, maxY };
    bounds = bounds === null ? box : boxUnion(bounds, box);
  }
  return {
    kind: "polygon",
    polygons,
    bounds: bounds ?? { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity },
  };
}

/** True when the closed boxes share at least a point (either may cross the antimeridian). */
export function boundsIntersect(a: Bounds, b: Bounds): boolean {
  return boxesIntersect(a, b);
}

/** Area of the intersection of two boxes over the area of `b` (0..1; 1 for a degenerate b inside a). */
export function overlapFraction(a: Bounds, b: Bounds): number {
  const bw = lonWidth(b);
  const bh = b.maxY - b.minY;
  let sum = 0;
  for (const p of boxIntersection(a, b)) {
    const fx = bw > 0 ? lonWidth(p) / bw : 1;
    const fy = bh > 0 ? (p.maxY - p.minY) / bh : 1;
    sum += fx * fy;
  }
  return Math.min(1, sum);
}

/** Even-odd point-in-polygon over all rings of one polygon (holes exclude). */
function insidePolygon(rings: PolygonRings, x: number, y: number): boolean {
  let inside = false;
  for (const ring of rings)
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i] as readonly [number, number];
      const [xj, yj] = ring[j] as readonly [number, number];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  return inside;
}

/** True when the segment meets the closed box (Liang–Barsky clipping). */
function segmentMeetsBox(x0: number, y0: number, x1: number, y1: number, b: Bounds): boolean {
  let t0 = 0;
  let t1 = 1;
  const dx = x1 - x0;
  const dy = y1 - y0;
  const edges: [number, number][] = [
    [-dx, x0 - b.minX],
    [dx, b.maxX - x0],
    [-dy, y0 - b.minY],
    [dy, b.maxY - y0],
  ];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return false;
    } else {
      const r = q / p;
      if (p < 0) t0 = Math.max(t0, r);
      else t1 = Math.min(t1, r);
      if (t0 > t1) return false;
    }
  }
  return true;
}

/**
 * True only when the whole box is inside the area. Conservative: a box that a ring merely touches
 * counts as not inside, which costs raster work but never a wrong count.
 */
export function boxInsideArea(area: Area, box: Bounds): boolean {
  if (area.kind === "bbox") return boxWithin(box, area.bounds);
  // The polygon test below works in plain longitudes; a box across 180° takes the raster path.
  if (crossesAntimeridian(box)) return false;
  const corners: [number, number][] = [
    [box.minX, box.minY],
    [box.maxX, box.minY],
    [box.maxX, box.maxY],
    [box.minX, box.maxY],
  ];
  for (const rings of area.polygons) {
    if (!corners.every(([x, y]) => insidePolygon(rings, x, y))) continue;
    let crossed = false;
    for (const ring of rings) {
      for (let i = 1; i < ring.length && !crossed; i++) {
        const [x0, y0] = ring[i - 1] as readonly [number, number];
        const [x1, y1] = ring[i] as readonly [number, number];
        crossed = segmentMeetsBox(x0, y0, x1, y1, box);
      }
      if (crossed) break;
    }
    if (!crossed) return true;
  }
  return false;
}

/** Sutherland–Hodgman against one half-plane. */
function clipAgainst(
  pts: [number, number][],
  inside: (p: readonly [number, number]) => boolean,
  cross: (a: readonly [number, number], b: readonly [number, number]) => [number, number],
): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < pts.length; i++) {
    const cur = pts[i] as [number, number];
    const prev = pts[(i + pts.length - 1) % pts.length] as [number, number];
    const ci = inside(cur);
    const pi = inside(prev);
    if (ci) {
      if (!pi) out.push(cross(prev, cur));
      out.push(cur);
    } else if (pi) out.push(cross(prev, cur));
  }
  return out;
}

/**
 * Clips a ring to a box (Sutherland–Hodgman); returns an open list of vertices (possibly empty).
 * The box is convex, so the result is exact for membership of every point strictly inside the box;
 * the degenerate "bridges" it may leave lie on the box edge. Callers clip to a box slightly larger
 * than the tile's, so no pixel centre ever lies on one.
 */
export function clipRing(ring: Ring, b: Bounds): [number, number][] {
  let pts: [number, number][] = ring.slice(0, -1).map(([x, y]) => [x, y]);
  const atX =
    (x: number) =>
    (p: readonly [number, number], q: readonly [number, number]): [number, number] => [
      x,
      p[1] + ((q[1] - p[1]) * (x - p[0])) / (q[0] - p[0]),
    ];
  const atY =
    (y: number) =>
    (p: readonly [number, number], q: readonly [number, number]): [number, number] => [
      p[0] + ((q[0] - p[0]) * (y - p[1])) / (q[1] - p[1]),
      y,
    ];
  pts = clipAgainst(pts, (p) => p[0] >= b.minX, atX(b.minX));
  if (pts.length) pts = clipAgainst(pts, (p) => p[0] <= b.maxX, atX(b.maxX));
  if (pts.length) pts = clipAgainst(pts, (p) => p[1] >= b.minY, atY(b.minY));
  if (pts.length) pts = clipAgainst(pts, (p) => p[1] <= b.maxY, atY(b.maxY));
  return pts;
}

/** Shoelace area of an open vertex list (degrees², unsigned). */
function shoelace(pts: readonly (readonly [number, number])[]): number {
  let a = 0;
  for (let i = 0; i < pts.length; i++) {
    const [x0, y0] = pts[i] as readonly [number, number];
    const [x1, y1] = pts[(i + 1) % pts.length] as readonly [number, number];
    a += x0 * y1 - x1 * y0;
  }
  return Math.abs(a) / 2;
}

/**
 * True when the area and the closed box share at least a point (STAC `intersects`, OGC
 * "intersects": touching counts). The box may cross the antimeridian; it is tested as its two
 * halves. A polygon meets the box when its outer ring clipped to the box is not empty, unless one
 * of its holes covers the whole box.
 */
export function areaMeetsBox(area: Area, box: Bounds): boolean {
  if (!boxesIntersect(area.bounds, box)) return false;
  if (area.kind === "bbox") return true;
  for (const half of splitAtAntimeridian(box)) {
    const boxArea = (half.maxX - half.minX) * (half.maxY - half.minY);
    for (const rings of area.polygons) {
      const outer = rings[0];
      if (!outer || clipRing(outer, half).length === 0) continue;
      const inHole = rings
        .slice(1)
        .some((hole) => boxArea > 0 && shoelace(clipRing(hole, half)) >= boxArea * (1 - 1e-12));
      if (!inHole) return true;
    }
  }
  return false;
}
