/**
 * A tile's CRS as GDAL and PROJ read it. The decoder (which runs in worker threads) only parses the
 * GeoKeys; this resolver, on the thread that loads tiles, hands PROJ exactly those keys and keeps its
 * answer:
 *   1. a 1x1 GeoTIFF carrying the tile's GeoKey directory and parameter tags verbatim is opened by
 *      GDAL (gdal3.js), which returns the WKT2, PROJJSON, EPSG code and proj4 export — cached per
 *      GeoKey fingerprint, so a process asks PROJ once per distinct CRS, and on disk across
 *      processes (../crs/proj-memo.ts), so a command whose tiles were seen before never starts PROJ;
 *   2. the tile's 4 corners, 4 edge midpoints and centre go to lon/lat through PROJ's operation (the
 *      one GDAL would use, ballpark fallback included); a point that does not map refuses the tile
 *      with a CrsError naming its CRS — never NaN coordinates later;
 *   3. proj4js, which serves the hot paths (per-request point and stats queries, training), must
 *      reproduce those 9 points within 1 cm with PROJ's own proj4 export, or with its ballpark form
 *      (datum shift dropped, which is what PROJ does when the grid a datum needs is absent);
 *      otherwise the tile is refused, with the distance, rather than served with wrong coordinates.
 * The lon/lat bounds are PROJ's.
 */
import proj4 from "proj4";
import {
  CrsError,
  WGS84,
  projectPoint,
  proj4NeedsGrid,
  readGeoTiffCrsOnce,
  transformPointsOnce,
  type GdalCrsReading,
} from "../crs/index.js";
import type { Bounds, Crs, GeoTiffGeoTags, RasterInfo } from "../raster/types.js";
import { densifiedRing, ringFootprint } from "../lonlat/index.js";
import { encodeGeoTiff } from "./encode.js";

/** proj4js must agree with PROJ this closely (metres) at every check point. */
export const PROJ4_AGREEMENT_M = 0.01;

const readings = new Map<string, Promise<GdalCrsReading | null>>();
const MAX_READINGS = 512;

function fingerprint(g: GeoTiffGeoTags): string {
  return JSON.stringify([g.directory, g.doubles, g.ascii]);
}

/** A 1x1 GeoTIFF with exactly the tile's GeoKeys (and a unit geotransform): what PROJ is shown. */
function keysOnlyTiff(g: GeoTiffGeoTags): Uint8Array {
  return encodeGeoTiff(
    {
      width: 1,
      height: 1,
      bands: [new Uint8Array(1)],
      geoTags: {
        directory: g.directory,
        doubles: g.doubles,
        ascii: g.ascii,
        pixelScale: [1, 1, 0],
        tiepoints: [0, 0, 0, 0, 0, 0],
        transformation: null,
      },
    },
    { compression: "none" },
  );
}

/**
 * GDAL's reading of the CRS the GeoKeys describe (null when GDAL finds none), cached per distinct
 * GeoKey directory.
 * @throws CrsError when the PROJ engine cannot start or GDAL cannot read the keys.
 */
export async function readCrsWithProj(g: GeoTiffGeoTags): Promise<GdalCrsReading | null> {
  const key = fingerprint(g);
  let hit = readings.get(key);
  if (hit === undefined) {
    hit = readGeoTiffCrsOnce(keysOnlyTiff(g));
    if (readings.size >= MAX_READINGS) readings.clear();
    readings.set(key, hit);
    hit.catch(() => readings.delete(key));
  }
  return hit;
}

/** Check points per side: a 5 x 5 grid over the bounds (corners, edge midpoints and centre included). */
const GRID = 5;

/** The check points of a bounds: a GRID x GRID lattice including corners and edge midpoints. */
function checkPoints(b: Bounds): [Float64Array, Float64Array] {
  const px = new Float64Array(GRID * GRID);
  const py = new Float64Array(GRID * GRID);
  for (let j = 0; j < GRID; j++)
    for (let i = 0; i < GRID; i++) {
      px[j * GRID + i] = b.minX + ((b.maxX - b.minX) * i) / (GRID - 1);
      py[j * GRID + i] = b.minY + ((b.maxY - b.minY) * j) / (GRID - 1);
    }
  return [px, py];
}

/** Distance in metres between two nearby lon/lat points (local flat approximation, mm-exact at cm). */
function metresApart(lon1: number, lat1: number, lon2: number, lat2: number): number {
  const r = 6_371_008.8;
  const rad = Math.PI / 180;
  let dLon = Math.abs(lon1 - lon2);
  if (dLon > 180) dLon = 360 - dLon;
  const dx = dLon * rad * r * Math.cos(((lat1 + lat2) / 2) * rad);
  const dy = (lat1 - lat2) * rad * r;
  return Math.hypot(dx, dy);
}

/** proj4js's reading of a definition's ellipsoid (semi-axes, metres), or null. */
function ellipsoidOf(def: string): { a: number; b: number } | null {
  try {
    const p = new proj4.Proj(def) as unknown as { a?: number; b?: number };
    return p.a !== undefined && p.b !== undefined ? { a: p.a, b: p.b } : null;
  } catch {
    return null;
  }
}

/** `def` without its datum terms (+datum, +towgs84, +nadgrids and the ellipsoid they imply). */
function withoutDatum(def: string, e: { a: number; b: number }): string {
  const kept = def
    .split(/\s+/)
    .filter((t) => t !== "" && !/^\+(datum|towgs84|nadgrids|ellps|a|b|rf|f|R)=/.test(t));
  return [...kept, `+a=${e.a}`, `+b=${e.b}`].join(" ");
}

function geocentric(lonDeg: number, latDeg: number, a: number, b: number): [number, number, number] {
  const rad = Math.PI / 180;
  const e2 = 1 - (b * b) / (a * a);
  const sl = Math.sin(latDeg * rad);
  const n = a / Math.sqrt(1 - e2 * sl * sl);
  const cl = Math.cos(latDeg * rad);
  return [n * cl * Math.cos(lonDeg * rad), n * cl * Math.sin(lonDeg * rad), n * (1 - e2) * sl];
}

/** Solves a small dense system by Gaussian elimination with partial pivoting; null if singular. */
function solve(m: number[][], v: number[]): number[] | null {
  const n = v.length;
  const a = m.map((row, i) => [...row, v[i] as number]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    if (Math.abs(a[p]![c]!) < 1e-300) return null;
    [a[c], a[p]] = [a[p]!, a[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k <= n; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  return a.map((row, i) => row[n]! / row[i]!);
}

/**
 * The Helmert form of PROJ's datum shift on this tile: the 7 parameters (position-vector convention,
 * as +towgs84 takes them) that map the check points' source-datum coordinates onto PROJ's WGS 84
 * answers, fitted by least squares around the points' centroid (well conditioned even on a small
 * tile). PROJ picks its datum operation per area of use (EPSG's Helmert for the region, or its
 * ballpark when a grid is missing), which its proj4 export cannot say; this recovers the operation it
 * applied here. The fit is accepted only if proj4js then reproduces PROJ within PROJ4_AGREEMENT_M.
 */
function fittedHelmert(
  def: string,
  xs: Float64Array,
  ys: Float64Array,
  lon: Float64Array,
  lat: Float64Array,
): string | null {
  const e = ellipsoidOf(def);
  if (e === null) return null;
  const bare = withoutDatum(def, e);
  const src: [number, number, number][] = [];
  try {
    // No datum on either side: proj4js gives geodetic coordinates on the source ellipsoid.
    const c = proj4(bare, `+proj=longlat +a=${e.a} +b=${e.b} +no_defs`);
    for (let i = 0; i < xs.length; i++) {
      const [gl, gp] = c.forward([xs[i] as number, ys[i] as number]);
      if (gl === undefined || gp === undefined || !Number.isFinite(gl) || !Number.isFinite(gp)) return null;
      src.push(geocentric(gl, gp, e.a, e.b));
    }
  } catch {
    return null;
  }
  const dst = Array.from(lon, (l, i) => geocentric(l, lat[i] as number, 6378137, 6356752.314245179));
  const x0 = [0, 1, 2].map((k) => src.reduce((s, p) => s + p[k]!, 0) / src.length) as [
    number,
    number,
    number,
  ];
  let scale = 1;
  for (const p of src) for (let k = 0; k < 3; k++) scale = Math.max(scale, Math.abs(p[k]! - x0[k]!));
  // Unknowns: T' (3), w * scale (3), s * scale: columns of comparable size.
  const ata = Array.from({ length: 7 }, () => new Array<number>(7).fill(0));
  const atb = new Array<number>(7).fill(0);
  src.forEach((p, i) => {
    const [dx, dy, dz] = [(p[0] - x0[0]) / scale, (p[1] - x0[1]) / scale, (p[2] - x0[2]) / scale];
    const q = dst[i]!;
    const rows: [number[], number][] = [
      [[1, 0, 0, 0, dz, -dy, dx], q[0] - p[0]],
      [[0, 1, 0, -dz, 0, dx, dy], q[1] - p[1]],
      [[0, 0, 1, dy, -dx, 0, dz], q[2] - p[2]],
    ];
    for (const [row, rhs] of rows)
      for (let r = 0; r < 7; r++) {
        atb[r]! += row[r]! * rhs;
        for (let c = 0; c < 7; c++) ata[r]![c]! += row[r]! * row[c]!;
      }
  });
  // A whisper of ridge keeps a degenerate (one-point) tile solvable; it is far below any real signal.
  for (let k = 0; k < 7; k++) ata[k]![k]! += 1e-12;
  const sol = solve(ata, atb);
  if (sol === null || !sol.every(Number.isFinite)) return null;
  const [tx, ty, tz, wx, wy, wz, ss] = sol as [number, number, number, number, number, number, number];
  const w = [wx / scale, wy / scale, wz / scale];
  const s = ss / scale;
  // Back from the centroid to the geocentre: T = T' - s X0 - w x X0.
  const cross = [w[1]! * x0[2] - w[2]! * x0[1], w[2]! * x0[0] - w[0]! * x0[2], w[0]! * x0[1] - w[1]! * x0[0]];
  const t = [tx - s * x0[0] - cross[0]!, ty - s * x0[1] - cross[1]!, tz - s * x0[2] - cross[2]!];
  const arcsec = (180 / Math.PI) * 3600;
  const params = [...t, w[0]! * arcsec, w[1]! * arcsec, w[2]! * arcsec, s * 1e6].map((v) =>
    Number(v.toPrecision(12)),
  );
  return `${bare} +towgs84=${params.join(",")}`;
}

/** The ballpark form: the datum dropped, so proj4js shifts nothing (PROJ's "ballpark" operation). */
function ballpark(def: string): string | null {
  if (!/\+(datum|towgs84|nadgrids)=/.test(def)) return null;
  const e = ellipsoidOf(def);
  return e === null ? null : withoutDatum(def, e);
}

/** Largest distance (m) between proj4js's lon/lat of the points under `def` and PROJ's, or Infinity. */
function disagreement(
  def: string,
  xs: Float64Array,
  ys: Float64Array,
  lon: Float64Array,
  lat: Float64Array,
): number {
  let worst = 0;
  try {
    const crs = { epsg: null, proj4: def, name: null };
    for (let i = 0; i < xs.length; i++) {
      const [x, y] = projectPoint(crs, WGS84, xs[i] as number, ys[i] as number);
      if (!Number.isFinite(x) || !Number.isFinite(y)) return Infinity;
      worst = Math.max(worst, metresApart(x, y, lon[i] as number, lat[i] as number));
    }
  } catch {
    return Infinity;
  }
  return worst;
}

function label(reading: GdalCrsReading): string {
  const name = reading.name ?? "unnamed CRS";
  return reading.epsg !== null ? `EPSG:${reading.epsg} (${name})` : `"${name}"`;
}

/** What the resolver settles for one tile. */
export interface ResolvedCrs {
  readonly crs: Crs;
  /** PROJ's lon/lat bounds of the tile (corners and edge midpoints), or null without bounds. */
  readonly boundsWgs84: Bounds | null;
  /** PROJ's full reading (PROJJSON, proj4 export) for callers that report it (`lanemap info`). */
  readonly reading: GdalCrsReading;
  /** Worst proj4js-vs-PROJ distance at the check points, metres (null without bounds). */
  readonly proj4AgreementM: number | null;
}

/**
 * Resolves a tile's CRS with PROJ and checks that proj4js reproduces PROJ on it (see the module
 * header). Null when the tile has no GeoKeys or GDAL finds no CRS in them.
 * @throws CrsError naming the CRS when PROJ cannot transform the tile to lon/lat, or proj4js cannot
 *   reproduce PROJ's transform within PROJ4_AGREEMENT_M.
 */
export async function resolveCrs(
  geoTags: GeoTiffGeoTags,
  bounds: Bounds | null,
): Promise<ResolvedCrs | null> {
  const reading = await readCrsWithProj(geoTags);
  if (reading === null) return null;
  if (bounds === null) {
    const crs = { epsg: reading.epsg, proj4: reading.proj4, name: reading.name, wkt: reading.wkt };
    return { crs, boundsWgs84: null, reading, proj4AgreementM: null };
  }
  const [xs, ys] = checkPoints(bounds);
  const lon = xs.slice();
  const lat = ys.slice();
  await transformPointsOnce(reading.wkt, "EPSG:4326", lon, lat);
  for (let i = 0; i < lon.length; i++)
    if (!Number.isFinite(lon[i]) || !Number.isFinite(lat[i]))
      throw new CrsError(
        `${label(reading)}: PROJ cannot transform the tile's point (${xs[i]}, ${ys[i]}) to longitude/latitude`,
      );
  // The footprint from PROJ's transform of the densified edge (21 points a side, as rasterio's
  // transform_bounds), as a west > east box across 180° (RFC 7946 §5.2), never min/max of corners.
  const ring = densifiedRing(bounds);
  const ringLon = Float64Array.from(ring, ([x]) => x);
  const ringLat = Float64Array.from(ring, ([, y]) => y);
  await transformPointsOnce(reading.wkt, "EPSG:4326", ringLon, ringLat);
  const boundsWgs84 = ringFootprint(
    ring.map((_, i) => [ringLon[i] as number, ringLat[i] as number] as const),
  );
  if (reading.epsg === 4326) {
    const crs = { epsg: 4326, proj4: WGS84.proj4, name: reading.name, wkt: reading.wkt };
    return { crs, boundsWgs84, reading, proj4AgreementM: 0 };
  }
  const def0 = reading.proj4;
  const candidates =
    def0 === null
      ? []
      : [proj4NeedsGrid(def0) ? null : def0, ballpark(def0), () => fittedHelmert(def0, xs, ys, lon, lat)];
  let best = Infinity;
  for (const c of candidates) {
    const def = typeof c === "function" ? c() : c;
    if (def === null) continue;
    const d = disagreement(def, xs, ys, lon, lat);
    if (d <= PROJ4_AGREEMENT_M) {
      const crs = { epsg: reading.epsg, proj4: def, name: reading.name, wkt: reading.wkt };
      return { crs, boundsWgs84, reading, proj4AgreementM: d };
    }
    best = Math.min(best, d);
  }
  throw new CrsError(
    reading.proj4 === null
      ? `${label(reading)}: PROJ has no proj4 form of this CRS, so lanemap cannot transform points in it`
      : `${label(reading)}: proj4js cannot reproduce PROJ's transform on this tile (${Number.isFinite(best) ? `off by ${best.toFixed(3)} m` : "no result"}; PROJ's definition: ${reading.proj4})`,
  );
}

/**
 * The RasterInfo with its CRS and lon/lat bounds resolved by PROJ (`resolveCrs`); unchanged when the
 * file has no GeoKeys. A file whose keys GDAL reads as no CRS gets `crs: null`.
 * @throws CrsError as `resolveCrs`.
 */
export async function resolveRasterCrs<T extends RasterInfo>(info: T): Promise<T> {
  if (!info.geoTags) return info;
  const r = await resolveCrs(info.geoTags, info.bounds);
  if (r === null) return { ...info, crs: null, boundsWgs84: null };
  return { ...info, crs: r.crs, boundsWgs84: r.boundsWgs84 };
}

/**
 * The CRS of an EPSG code as PROJ reads it (a GeoKey directory naming the code, resolved like a
 * tile's), with its proj4 definition checked against PROJ over `area` (in that CRS's coordinates),
 * e.g. the bounding box of training labels. Without an area PROJ's export is taken unchecked.
 * @throws CrsError when PROJ does not know the code, or as `resolveCrs`.
 */
export async function resolveEpsgCrs(code: number, area: Bounds | null): Promise<Crs> {
  if (code === 4326) return WGS84;
  if (!Number.isInteger(code) || code <= 0 || code > 65535)
    throw new CrsError(`EPSG:${code} is not a code a GeoTIFF can name`);
  // Projected first; a geographic code read as projected finds no CRS in GDAL, so try both.
  for (const [modelType, key] of [
    [1, 3072],
    [2, 2048],
  ] as const) {
    const directory = [1, 1, 0, 3, 1024, 0, 1, modelType, 1025, 0, 1, 1, key, 0, 1, code];
    const tags = {
      directory,
      doubles: null,
      ascii: null,
      pixelScale: null,
      tiepoints: null,
      transformation: null,
    };
    const reading = await readCrsWithProj(tags);
    if (reading === null || reading.epsg !== code) continue;
    const r = await resolveCrs(tags, area);
    if (r !== null) return r.crs;
  }
  throw new CrsError(`EPSG:${code} is not a projected or geographic CRS PROJ knows`);
}
