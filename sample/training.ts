/**
 * Training polygons for generated archives: small irregular polygons placed inside homogeneous,
 * cloud-free patches of one class, found tile by tile and kept in a bounded per-class reservoir so
 * that an archive of any size yields a fixed, well-spread number of polygons per class.
 */
import type { GeoTransform, Random } from "../shared/internal.js";
import { SAMPLE_CLASSES, type SampleClassName } from "./spectra.js";

/** Half-size of the homogeneous window a polygon sits in: a (2R+1)^2-pixel square. */
const R = 4;
/** Largest vertex distance from the window centre, in pixels: strictly inside the window. */
const MAX_RADIUS = 4.2;
const MIN_RADIUS = 2.6;
/** Window centres are tried on a lattice this far apart, so windows of one tile never overlap. */
const SPACING = 2 * R + 2;

/** A training polygon: its class and a closed, counter-clockwise exterior ring in the archive's CRS. */
export interface TrainingPolygon {
  readonly classId: number;
  readonly className: SampleClassName;
  readonly cell: string;
  readonly ring: readonly (readonly [number, number])[];
}

/** A homogeneous window found in one tile: its class and centre pixel. */
export interface PatchCandidate {
  readonly classId: number;
  readonly x: number;
  readonly y: number;
}

/**
 * Finds, in one tile, up to `perClass` windows per class whose (2R+1)^2 pixels are all of that class
 * and all valid. Centres lie on a lattice with a seeded offset; among a class's windows, the chosen
 * ones are drawn at random so polygons do not crowd one corner.
 */
export function findPatches(
  truth: Uint8Array,
  valid: Uint8Array,
  size: number,
  perClass: number,
  rnd: Random,
): PatchCandidate[] {
  const found = new Map<number, PatchCandidate[]>();
  const ox = R + rnd.int(SPACING);
  const oy = R + rnd.int(SPACING);
  for (let cy = oy; cy + R < size; cy += SPACING)
    for (let cx = ox; cx + R < size; cx += SPACING) {
      const c = truth[cy * size + cx] ?? 0;
      if (c === 0) continue;
      let homogeneous = true;
      for (let y = cy - R; y <= cy + R && homogeneous; y++)
        for (let x = cx - R; x <= cx + R; x++) {
          const i = y * size + x;
          if (truth[i] !== c || valid[i] !== 1) {
            homogeneous = false;
            break;
          }
        }
      if (!homogeneous) continue;
      const list = found.get(c) ?? [];
      list.push({ classId: c, x: cx, y: cy });
      found.set(c, list);
    }
  const out: PatchCandidate[] = [];
  for (const c of [...found.keys()].sort((a, b) => a - b))
    out.push(...rnd.shuffle(found.get(c) ?? []).slice(0, perClass));
  return out;
}

/**
 * An irregular polygon of 5 to 8 vertices, star-shaped around the window centre with every vertex
 * within MAX_RADIUS pixels of it, so it lies inside the homogeneous window; coordinates in CRS units.
 * @throws RangeError when the candidate's class id is not a sample class.
 */
export function patchPolygon(
  candidate: PatchCandidate,
  cell: string,
  gt: GeoTransform,
  rnd: Random,
): TrainingPolygon {
  const cls = SAMPLE_CLASSES.find((c) => c.id === candidate.classId);
  if (!cls) throw new RangeError(`no sample class has id ${candidate.classId}`);
  const k = 5 + rnd.int(4);
  const start = rnd.next() * 2 * Math.PI;
  const ring: [number, number][] = [];
  // The centre of the window's centre pixel, in pixel-corner coordinates.
  const px = candidate.x + 0.5;
  const py = candidate.y + 0.5;
  for (let v = 0; v < k; v++) {
    // Angles increase with a north-up y axis, so the ring is counter-clockwise in the CRS (RFC 7946).
    const a = start + ((v + 0.2 + 0.6 * rnd.next()) / k) * 2 * Math.PI;
    const r = MIN_RADIUS + rnd.next() * (MAX_RADIUS - MIN_RADIUS);
    const col = px + r * Math.cos(a);
    const row = py - r * Math.sin(a);
    // Centimetres are plenty for 30 m pixels and keep the GeoJSON short.
    const round = (n: number) => Math.round(n * 100) / 100;
    ring.push([round(gt[0] + col * gt[1] + row * gt[2]), round(gt[3] + col * gt[4] + row * gt[5])]);
  }
  const first = ring[0];
  if (first) ring.push([first[0], first[1]]);
  return { classId: cls.id, className: cls.name, cell, ring };
}

/**
 * A fixed-capacity uniform sample per class over a stream of polygons (reservoir sampling): memory
 * stays bounded whatever the archive size, and every tile has the same chance to contribute.
 */
export class PolygonReservoir {
  private readonly kept = new Map<number, TrainingPolygon[]>();
  private readonly seen = new Map<number, number>();
  private readonly capacity: number;
  private readonly rnd: Random;

  constructor(capacity: number, rnd: Random) {
    this.capacity = capacity;
    this.rnd = rnd;
  }

  /** Offers a polygon; it is kept with probability capacity / (polygons of its class seen so far). */
  offer(p: TrainingPolygon): void {
    const seen = (this.seen.get(p.classId) ?? 0) + 1;
    this.seen.set(p.classId, seen);
    const kept = this.kept.get(p.classId) ?? [];
    this.kept.set(p.classId, kept);
    if (kept.length < this.capacity) kept.push(p);
    else {
      const j = this.rnd.int(seen);
      if (j < this.capacity) kept[j] = p;
    }
  }

  /** The kept polygons, by class id, then cell, then position: a stable file order. */
  polygons(): TrainingPolygon[] {
    return [...this.kept.entries()]
      .sort((a, b) => a[0] - b[0])
      .flatMap(([, list]) =>
        [...list].sort(
          (a, b) =>
            (a.cell < b.cell ? -1 : a.cell > b.cell ? 1 : 0) ||
            (a.ring[0]?.[1] ?? 0) - (b.ring[0]?.[1] ?? 0) ||
            (a.ring[0]?.[0] ?? 0) - (b.ring[0]?.[0] ?? 0),
        ),
      );
  }
}

/** The training GeoJSON: a FeatureCollection in the archive's CRS, named by the OGC URN. */
export function trainingGeoJson(polygons: readonly TrainingPolygon[], epsg: number): object {
  return {
    type: "FeatureCollection",
    name: "training",
    crs: { type: "name", properties: { name: `urn:ogc:def:crs:EPSG::${epsg}` } },
    features: polygons.map((p, i) => ({
      type: "Feature",
      properties: { id: i + 1, class: p.className, classId: p.classId, cell: p.cell },
      geometry: { type: "Polygon", coordinates: [p.ring] },
    })),
  };
}
