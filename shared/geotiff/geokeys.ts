/**
 * GeoTIFF GeoKeys: the directory parser, and the keys-only reading of a CRS used where the PROJ engine
 * does not run (decoder worker threads, `crs: "keys"`). That reading is provisional: EPSG-coded systems
 * take their proj4 definition from the EPSG index, user-defined ones (ProjectedCSTypeGeoKey = 32767)
 * are approximated from the projection keys. Every loader resolves the CRS with PROJ instead
 * (crs-resolve.ts), and the lanes take it from the catalogue entry.
 */
import { lookupEpsg } from "../crs/index.js";
import type { Crs } from "../raster/types.js";

/** GeoKey values: a number list (SHORT or DOUBLE keys) or a string (ASCII keys). */
export type GeoKeys = ReadonlyMap<number, readonly number[] | string>;

/** GeoKey ids used here (GeoTIFF 1.0 §6.2). */
export const GeoKey = {
  GTModelType: 1024,
  GTRasterType: 1025,
  GTCitation: 1026,
  GeographicType: 2048,
  GeogCitation: 2049,
  GeogGeodeticDatum: 2050,
  GeogPrimeMeridian: 2051,
  GeogAngularUnits: 2054,
  GeogEllipsoid: 2056,
  GeogSemiMajorAxis: 2057,
  GeogSemiMinorAxis: 2058,
  GeogInvFlattening: 2059,
  GeogPrimeMeridianLong: 2061,
  ProjectedCSType: 3072,
  PCSCitation: 3073,
  Projection: 3074,
  ProjCoordTrans: 3075,
  ProjLinearUnits: 3076,
  ProjLinearUnitSize: 3077,
  ProjStdParallel1: 3078,
  ProjStdParallel2: 3079,
  ProjNatOriginLong: 3080,
  ProjNatOriginLat: 3081,
  ProjFalseEasting: 3082,
  ProjFalseNorthing: 3083,
  ProjFalseOriginLong: 3084,
  ProjFalseOriginLat: 3085,
  ProjFalseOriginEasting: 3086,
  ProjFalseOriginNorthing: 3087,
  ProjCenterLong: 3088,
  ProjCenterLat: 3089,
  ProjCenterEasting: 3090,
  ProjCenterNorthing: 3091,
  ProjScaleAtNatOrigin: 3092,
  ProjScaleAtCenter: 3093,
  ProjAzimuthAngle: 3094,
  ProjStraightVertPoleLong: 3095,
  VerticalCSType: 4096,
} as const;

const USER_DEFINED = 32767;
const TAG_DOUBLE_PARAMS = 34736;
const TAG_ASCII_PARAMS = 34737;

/** Drops the '|' terminator GeoTIFF puts after every ASCII key, and any NUL a writer left behind. */
function trimAsciiKey(s: string): string {
  let end = s.length;
  while (end > 0 && (s[end - 1] === "|" || s.charCodeAt(end - 1) === 0)) end--;
  return s.slice(0, end);
}

/**
 * Parses the GeoKeyDirectory (tag 34735) with its double (34736) and ASCII (34737) parameter tags.
 * Keys whose values point outside their parameter tag are dropped rather than trusted.
 */
export function parseGeoKeys(
  directory: readonly number[],
  doubles: readonly number[] | null,
  ascii: string | null,
): Map<number, readonly number[] | string> {
  const keys = new Map<number, readonly number[] | string>();
  const n = directory[3] ?? 0;
  for (let k = 0; k < n; k++) {
    const at = 4 + k * 4;
    const id = directory[at];
    const location = directory[at + 1];
    const count = directory[at + 2];
    const value = directory[at + 3];
    if (id === undefined || location === undefined || count === undefined || value === undefined) break;
    if (location === 0) keys.set(id, [value]);
    else if (location === TAG_DOUBLE_PARAMS && doubles !== null && value + count <= doubles.length)
      keys.set(id, doubles.slice(value, value + count));
    else if (location === TAG_ASCII_PARAMS && ascii !== null && value + count <= ascii.length)
      // GeoTIFF ends every ASCII key with '|'; GDAL sometimes leaves a trailing NUL too.
      keys.set(id, trimAsciiKey(ascii.slice(value, value + count)));
    else if (location === directory.length && value + count <= directory.length)
      keys.set(id, directory.slice(value, value + count));
  }
  return keys;
}

function num(keys: GeoKeys, id: number): number | null {
  const v = keys.get(id);
  return typeof v === "object" && v.length > 0 && Number.isFinite(v[0]) ? (v[0] ?? null) : null;
}

function str(keys: GeoKeys, id: number): string | null {
  const v = keys.get(id);
  return typeof v === "string" && v.trim() !== "" ? v.trim() : null;
}

/** True when the file declares PixelIsPoint (GDAL then shifts the geotransform by half a pixel). */
export function isPixelIsPoint(keys: GeoKeys): boolean {
  return num(keys, GeoKey.GTRasterType) === 2;
}

/** Strips what makes a proj4 string a CRS definition so only its datum/ellipsoid terms remain. */
function datumTerms(proj4: string): string {
  return proj4
    .split(/\s+/)
    .filter((t) => /^\+(datum|ellps|towgs84|a|b|rf|f|pm|nadgrids)=/.test(t))
    .join(" ");
}

const DATUMS: Readonly<Record<number, string>> = {
  6326: "+datum=WGS84",
  6269: "+datum=NAD83",
  6267: "+datum=NAD27",
  6258: "+ellps=GRS80 +towgs84=0,0,0,0,0,0,0",
  6674: "+ellps=GRS80 +towgs84=0,0,0,0,0,0,0",
  6283: "+ellps=GRS80 +towgs84=0,0,0,0,0,0,0",
};
const ELLIPSOIDS: Readonly<Record<number, string>> = {
  7030: "+ellps=WGS84",
  7019: "+ellps=GRS80",
  7008: "+ellps=clrk66",
  7043: "+ellps=WGS72",
  7022: "+ellps=intl",
  7004: "+ellps=bessel",
  7001: "+ellps=airy",
};

/** The datum/ellipsoid part of a proj4 definition from the geographic keys, or null if unknown. */
function geographicTerms(keys: GeoKeys): string | null {
  const gcs = num(keys, GeoKey.GeographicType);
  if (gcs !== null && gcs !== USER_DEFINED) {
    const entry = lookupEpsg(gcs);
    if (entry !== null) return datumTerms(entry.proj4);
  }
  const datum = num(keys, GeoKey.GeogGeodeticDatum);
  if (datum !== null && DATUMS[datum] !== undefined) return DATUMS[datum];
  const ellipsoid = num(keys, GeoKey.GeogEllipsoid);
  if (ellipsoid !== null && ELLIPSOIDS[ellipsoid] !== undefined) return ELLIPSOIDS[ellipsoid];
  const a = num(keys, GeoKey.GeogSemiMajorAxis);
  if (a === null) return null;
  const rf = num(keys, GeoKey.GeogInvFlattening);
  if (rf !== null && rf > 0) return `+a=${a} +rf=${rf}`;
  const b = num(keys, GeoKey.GeogSemiMinorAxis);
  return b !== null ? `+a=${a} +b=${b}` : `+a=${a} +b=${a}`;
}

/** Angles in GeoKeys are in GeogAngularUnits: degrees unless the file says radians (9101). */
function angle(keys: GeoKeys, id: number, fallback = 0): number {
  const v = num(keys, id);
  if (v === null) return fallback;
  return num(keys, GeoKey.GeogAngularUnits) === 9101 ? (v * 180) / Math.PI : v;
}

function linearUnits(keys: GeoKeys): string {
  switch (num(keys, GeoKey.ProjLinearUnits)) {
    case null:
    case 9001:
      return "+units=m";
    case 9002:
      return "+units=ft";
    case 9003:
      return "+units=us-ft";
    default: {
      const size = num(keys, GeoKey.ProjLinearUnitSize);
      return size !== null && size > 0 ? `+to_meter=${size}` : "+units=m";
    }
  }
}

/** The projection part of a proj4 definition from ProjCoordTransGeoKey and its parameters. */
function projectionTerms(keys: GeoKeys): string | null {
  const projection = num(keys, GeoKey.Projection);
  // EPSG "UTM zone N" conversions: 16001..16060 north, 16101..16160 south.
  if (projection !== null && projection >= 16001 && projection <= 16160) {
    const south = projection > 16100;
    const zone = projection - (south ? 16100 : 16000);
    if (zone >= 1 && zone <= 60) return `+proj=utm +zone=${zone}${south ? " +south" : ""}`;
  }
  const ct = num(keys, GeoKey.ProjCoordTrans);
  if (ct === null) return null;
  const lat0 = angle(
    keys,
    GeoKey.ProjNatOriginLat,
    angle(keys, GeoKey.ProjCenterLat, angle(keys, GeoKey.ProjFalseOriginLat)),
  );
  const lon0 = angle(
    keys,
    GeoKey.ProjNatOriginLong,
    angle(keys, GeoKey.ProjCenterLong, angle(keys, GeoKey.ProjFalseOriginLong)),
  );
  const x0 =
    num(keys, GeoKey.ProjFalseEasting) ??
    num(keys, GeoKey.ProjFalseOriginEasting) ??
    num(keys, GeoKey.ProjCenterEasting) ??
    0;
  const y0 =
    num(keys, GeoKey.ProjFalseNorthing) ??
    num(keys, GeoKey.ProjFalseOriginNorthing) ??
    num(keys, GeoKey.ProjCenterNorthing) ??
    0;
  const k = num(keys, GeoKey.ProjScaleAtNatOrigin) ?? num(keys, GeoKey.ProjScaleAtCenter) ?? 1;
  const lat1 = angle(keys, GeoKey.ProjStdParallel1);
  const lat2 = angle(keys, GeoKey.ProjStdParallel2, lat1);
  const false0 = `+x_0=${x0} +y_0=${y0}`;
  switch (ct) {
    case 1: // Transverse Mercator
      return `+proj=tmerc +lat_0=${lat0} +lon_0=${lon0} +k=${k} ${false0}`;
    case 7: // Mercator (1SP, or 2SP when a standard parallel is given)
      return num(keys, GeoKey.ProjStdParallel1) !== null
        ? `+proj=merc +lat_ts=${lat1} +lon_0=${lon0} ${false0}`
        : `+proj=merc +lon_0=${lon0} +k=${k} ${false0}`;
    case 8: // Lambert Conformal Conic 2SP
      return `+proj=lcc +lat_1=${lat1} +lat_2=${lat2} +lat_0=${lat0} +lon_0=${lon0} ${false0}`;
    case 9: // Lambert Conformal Conic 1SP
      return `+proj=lcc +lat_1=${lat0} +lat_0=${lat0} +lon_0=${lon0} +k_0=${k} ${false0}`;
    case 10: // Lambert Azimuthal Equal Area
      return `+proj=laea +lat_0=${lat0} +lon_0=${lon0} ${false0}`;
    case 11: // Albers Equal Area
      return `+proj=aea +lat_1=${lat1} +lat_2=${lat2} +lat_0=${lat0} +lon_0=${lon0} ${false0}`;
    case 12: // Azimuthal Equidistant
      return `+proj=aeqd +lat_0=${lat0} +lon_0=${lon0} ${false0}`;
    case 14: // Stereographic
      return `+proj=stere +lat_0=${lat0} +lon_0=${lon0} +k=${k} ${false0}`;
    case 15: {
      // Polar Stereographic: the origin latitude only says which pole.
      const straight = angle(keys, GeoKey.ProjStraightVertPoleLong, lon0);
      const pole = lat0 < 0 ? -90 : 90;
      return num(keys, GeoKey.ProjStdParallel1) !== null
        ? `+proj=stere +lat_0=${pole} +lat_ts=${lat1} +lon_0=${straight} ${false0}`
        : `+proj=stere +lat_0=${pole} +lon_0=${straight} +k=${k} ${false0}`;
    }
    case 16: // Oblique Stereographic
      return `+proj=sterea +lat_0=${lat0} +lon_0=${lon0} +k=${k} ${false0}`;
    case 17: // Equirectangular
      return `+proj=eqc +lat_ts=${lat1} +lon_0=${lon0} ${false0}`;
    case 18: // Cassini-Soldner
      return `+proj=cass +lat_0=${lat0} +lon_0=${lon0} ${false0}`;
    case 24: // Sinusoidal
      return `+proj=sinu +lon_0=${lon0} ${false0}`;
    default:
      return null;
  }
}

/** The name a file gives its CRS: the most specific citation key present. */
function citation(keys: GeoKeys): string | null {
  return str(keys, GeoKey.PCSCitation) ?? str(keys, GeoKey.GTCitation) ?? str(keys, GeoKey.GeogCitation);
}

/**
 * The CRS the GeoKeys describe, or null when there are none (a plain TIFF, or a georeferenced one
 * without a CRS). `proj4` is null when the keys name a CRS lanemap cannot rebuild.
 */
export function crsFromGeoKeys(keys: GeoKeys): Crs | null {
  if (keys.size === 0) return null;
  const model = num(keys, GeoKey.GTModelType);
  const pcs = num(keys, GeoKey.ProjectedCSType);
  const gcs = num(keys, GeoKey.GeographicType);
  const name = citation(keys);
  const projected = model === 1 || (model === null && pcs !== null);
  if (projected) {
    if (pcs !== null && pcs !== USER_DEFINED && pcs > 0) {
      const entry = lookupEpsg(pcs);
      return { epsg: pcs, proj4: entry?.proj4 ?? null, name: entry?.name ?? name };
    }
    const proj = projectionTerms(keys);
    const geog = geographicTerms(keys);
    const proj4 = proj !== null && geog !== null ? `${proj} ${geog} ${linearUnits(keys)} +no_defs` : null;
    // A UTM zone on WGS 84 is EPSG:326zz/327zz whatever the file calls it (GDAL identifies it too).
    let epsg: number | null = null;
    const projection = num(keys, GeoKey.Projection);
    if (gcs === 4326 && projection !== null && projection >= 16001 && projection <= 16160)
      epsg = projection > 16100 ? 32700 + (projection - 16100) : 32600 + (projection - 16000);
    if (proj === null && geog === null && name === null) return null;
    return { epsg, proj4, name };
  }
  if (model === 2 || gcs !== null) {
    if (gcs !== null && gcs !== USER_DEFINED && gcs > 0) {
      const entry = lookupEpsg(gcs);
      return { epsg: gcs, proj4: entry?.proj4 ?? null, name: entry?.name ?? name };
    }
    const geog = geographicTerms(keys);
    const lon0 = angle(keys, GeoKey.GeogPrimeMeridianLong);
    const pm = lon0 !== 0 ? ` +pm=${lon0}` : "";
    return { epsg: null, proj4: geog !== null ? `+proj=longlat ${geog}${pm} +no_defs` : null, name };
  }
  return name !== null ? { epsg: null, proj4: null, name } : null;
}
