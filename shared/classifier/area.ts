/**
 * Ground area of pixels. Projected CRSs: the geotransform's pixel area times the square of the
 * linear unit. Geographic CRSs: the area of the pixel's latitude/longitude cell on the WGS 84
 * ellipsoid (exact for north-up rasters; the local area element at the pixel centre otherwise).
 */
import type { RasterInfo } from "../raster/types.js";

const A = 6378137;
const F = 1 / 298.257223563;
const E2 = F * (2 - F);
const E = Math.sqrt(E2);
const DEG = Math.PI / 180;

/** Metres per unit of a proj4 definition's linear unit, or null when the unit is unknown. */
function unitMetres(proj4: string): number | null {
  const toMeter = /\+to_meter=([0-9.eE+-]+)/.exec(proj4);
  if (toMeter) return Number(toMeter[1]);
  const units = /\+units=([A-Za-z-]+)/.exec(proj4)?.[1] ?? "m";
  const table: Record<string, number> = {
    m: 1,
    km: 1000,
    dm: 0.1,
    cm: 0.01,
    ft: 0.3048,
    "us-ft": 1200 / 3937,
    yd: 0.9144,
    "us-yd": 3600 / 3937,
    mi: 1609.344,
    "us-mi": 6336000 / 3937,
    "ind-ft": 0.30479841,
    link: 0.201168,
    ch: 20.1168,
  };
  return table[units] ?? null;
}

/** The authalic integral q(φ)·b²/2 whose difference between two latitudes gives a zone's area per radian. */
function zone(lat: number): number {
  const s = Math.sin(lat * DEG);
  const es = E * s;
  return ((A * A * (1 - E2)) / 2) * (s / (1 - E2 * s * s) + (1 / (2 * E)) * Math.log((1 + es) / (1 - es)));
}

/** How pixel areas are computed for a raster. */
export type PixelArea =
  | { readonly kind: "constant"; readonly m2: number }
  | { readonly kind: "per-row"; readonly m2: Float64Array }
  | { readonly kind: "per-pixel"; readonly m2: (col: number, row: number) => number };

/**
 * Pixel areas in square metres, or null when the raster has no geotransform or its CRS (or its
 * linear unit) is unknown.
 */
export function pixelArea(info: Pick<RasterInfo, "geoTransform" | "crs" | "height">): PixelArea | null {
  const gt = info.geoTransform;
  const proj4 = info.crs?.proj4 ?? null;
  if (gt === null || proj4 === null) return null;
  const det = Math.abs(gt[1] * gt[5] - gt[2] * gt[4]);
  if (/\+proj=(longlat|latlong|lonlat|latlon)\b/.test(proj4)) {
    if (gt[2] === 0 && gt[4] === 0) {
      const m2 = new Float64Array(info.height);
      const dLon = Math.abs(gt[1]) * DEG;
      for (let r = 0; r < info.height; r++) {
        const a = Math.max(-90, Math.min(90, gt[3] + r * gt[5]));
        const b = Math.max(-90, Math.min(90, gt[3] + (r + 1) * gt[5]));
        m2[r] = dLon * Math.abs(zone(b) - zone(a));
      }
      return { kind: "per-row", m2 };
    }
    // Rotated grid: the ellipsoid's area element M(φ)·N(φ)·cos φ at the pixel centre.
    return {
      kind: "per-pixel",
      m2: (col, row) => {
        const lat = gt[3] + (col + 0.5) * gt[4] + (row + 0.5) * gt[5];
        const s = Math.sin(lat * DEG);
        const w = 1 - E2 * s * s;
        const n = A / Math.sqrt(w);
        const m = (A * (1 - E2)) / (w * Math.sqrt(w));
        return det * DEG * DEG * m * n * Math.cos(lat * DEG);
      },
    };
  }
  const unit = unitMetres(proj4);
  if (unit === null) return null;
  return { kind: "constant", m2: det * unit * unit };
}
