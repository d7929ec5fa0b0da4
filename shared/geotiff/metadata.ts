/**
 * RasterInfo from IFD 0's tags: georeferencing (GDAL's reading of ModelTiepoint/ModelPixelScale/
 * ModelTransformation and the GeoKeys), GDAL's nodata and metadata tags, and the acquisition time.
 */
import { CrsError, toWgs84 } from "../crs/index.js";
import { densifiedRing, ringFootprint } from "../lonlat/index.js";
import { nodataAsCompared } from "../raster/nodata.js";
import type { Bounds, Crs, GeoTiffGeoTags, GeoTransform, RasterInfo } from "../raster/types.js";
import { crsFromGeoKeys, isPixelIsPoint, parseGeoKeys, type GeoKeys } from "./geokeys.js";
import { type ImageLayout, Tag, compressionName } from "./layout.js";
import { type TiffStructure, tagNumbers, tagString } from "./tiff.js";

/** One `<Item>` of GDAL's metadata XML (tag 42112). */
export interface GdalMetadataItem {
  readonly name: string;
  readonly value: string;
  /** Band index (0-based) for band-level items, null for dataset-level ones. */
  readonly sample: number | null;
  readonly role: string | null;
  readonly domain: string | null;
}

const ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? "";
  });
}

function attribute(attrs: string, name: string): string | null {
  const m = new RegExp(`\\b${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(attrs);
  return m ? unescapeXml(m[1] ?? m[2] ?? "") : null;
}

/**
 * Parses GDAL's metadata XML: `<GDALMetadata><Item name=".." sample=".." role=".." domain="..">value</Item>`.
 * GDAL writes nothing more elaborate than this, so a small scanner replaces an XML parser; anything
 * that does not look like an Item is skipped.
 */
export function parseGdalMetadata(xml: string): GdalMetadataItem[] {
  const items: GdalMetadataItem[] = [];
  const re = /<Item\b([^>]*?)(?:\/>|>([\s\S]*?)<\/Item\s*>)/g;
  for (let m = re.exec(xml); m !== null; m = re.exec(xml)) {
    const attrs = m[1] ?? "";
    const name = attribute(attrs, "name");
    if (name === null) continue;
    const sampleText = attribute(attrs, "sample");
    const sample = sampleText !== null && /^\d+$/.test(sampleText) ? Number(sampleText) : null;
    items.push({
      name,
      value: unescapeXml(m[2] ?? "").trim(),
      sample,
      role: attribute(attrs, "role"),
      domain: attribute(attrs, "domain"),
    });
  }
  return items;
}

/** Parses GDAL's nodata text (tag 42113): a number, "nan", "inf" or "-inf"; null when unparsable. */
export function parseNodata(text: string | null): number | null {
  if (text === null) return null;
  const t = text.trim().toLowerCase();
  if (t === "") return null;
  if (t === "nan" || t === "-nan") return NaN;
  if (t === "inf" || t === "+inf" || t === "infinity") return Infinity;
  if (t === "-inf" || t === "-infinity") return -Infinity;
  const v = Number(t);
  return Number.isNaN(v) ? null : v;
}

/**
 * Converts a TIFF or GDAL date-time text to ISO 8601 UTC (`YYYY-MM-DDTHH:MM:SSZ`), or null when it is
 * not a valid date. Accepts TIFF's `YYYY:MM:DD HH:MM:SS` and ISO-like forms (`-` or `:` in the date,
 * `T` or space, optional fraction and zone). TIFF dates carry no zone: they are taken as UTC.
 */
export function parseDateTime(text: string | null): string | null {
  if (text === null) return null;
  const m =
    /^\s*(\d{4})[-:](\d{2})[-:](\d{2})(?:[T\s](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$/i.exec(
      text,
    );
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((v) =>
    Number(v ?? 0),
  ) as [number, number, number, number, number, number];
  const fraction = m[7] ?? "";
  const zone = m[8];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  // Date.UTC rolls 2023-02-30 over into March; a real calendar date survives the round trip.
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return null;
  let offsetMinutes = 0;
  if (zone !== undefined && zone.toUpperCase() !== "Z") {
    const z = /([+-])(\d{2}):?(\d{2})/.exec(zone);
    if (z) offsetMinutes = (z[1] === "-" ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3]));
  }
  const iso = new Date(ms - offsetMinutes * 60_000).toISOString();
  // Keep sub-second precision only when the source had it.
  const frac =
    fraction !== ""
      ? `.${Math.round(Number(fraction) * 1000)
          .toString()
          .padStart(3, "0")}`
      : "";
  return `${iso.slice(0, 19)}${frac}Z`;
}

/**
 * GDAL-order geotransform from ModelTransformation, or ModelTiepoint + ModelPixelScale, shifted by half
 * a pixel for PixelIsPoint rasters as GDAL does. Null when the file has neither (or only GCPs).
 */
export function geoTransformOf(s: TiffStructure, keys: GeoKeys): GeoTransform | null {
  let gt: [number, number, number, number, number, number] | null = null;
  const matrix = tagNumbers(s, Tag.ModelTransformation);
  const tiepoints = tagNumbers(s, Tag.ModelTiepoint);
  const scale = tagNumbers(s, Tag.ModelPixelScale);
  if (matrix !== null && matrix.length >= 16) {
    gt = [matrix[3] ?? 0, matrix[0] ?? 0, matrix[1] ?? 0, matrix[7] ?? 0, matrix[4] ?? 0, matrix[5] ?? 0];
  } else if (tiepoints !== null && tiepoints.length >= 6 && scale !== null && scale.length >= 2) {
    const [i, j, , x, y] = tiepoints as [number, number, number, number, number];
    const sx = scale[0] ?? 0;
    const sy = scale[1] ?? 0;
    gt = [x - i * sx, sx, 0, y + j * sy, 0, -sy];
  }
  if (gt === null || !gt.every(Number.isFinite)) return null;
  if (isPixelIsPoint(keys)) {
    gt[0] -= gt[1] * 0.5 + gt[2] * 0.5;
    gt[3] -= gt[4] * 0.5 + gt[5] * 0.5;
  }
  return gt;
}

/** Native bounds of a width x height raster under `gt` (all four corners, so rotation is covered). */
export function boundsOf(gt: GeoTransform, width: number, height: number): Bounds {
  const xs: number[] = [];
  const ys: number[] = [];
  for (const [c, r] of [
    [0, 0],
    [width, 0],
    [0, height],
    [width, height],
  ] as const) {
    xs.push(gt[0] + c * gt[1] + r * gt[2]);
    ys.push(gt[3] + c * gt[4] + r * gt[5]);
  }
  return { minX: Math.min(...xs), minY: Math.min(...ys), maxX: Math.max(...xs), maxY: Math.max(...ys) };
}

/**
 * The lon/lat footprint of the native bounds: the edge densified (21 points per side, as rasterio's
 * `transform_bounds`), each point transformed, then `ringFootprint` — so a tile across 180° gets a
 * west > east box (RFC 7946 §5.2), not min/max of its corners (which spans the whole globe).
 */
function wgs84Bounds(crs: Crs | null, bounds: Bounds | null): Bounds | null {
  if (crs === null || bounds === null || crs.proj4 === null) return null;
  try {
    return ringFootprint(densifiedRing(bounds).map(([x, y]) => toWgs84(crs, x, y)));
  } catch (err) {
    // A CRS proj4 cannot handle: the tile simply has no lon/lat footprint; anything else is a bug
    // and must surface.
    if (err instanceof CrsError) return null;
    throw err;
  }
}

/** Per-band values of a GDAL metadata role (SCALE/OFFSET), defaulting where a band has none. */
function perBand(
  items: readonly GdalMetadataItem[],
  role: string,
  bands: number,
  fallback: number,
): number[] {
  const out = new Array<number>(bands).fill(fallback);
  for (const it of items) {
    if (it.sample === null || it.sample >= bands || (it.domain !== null && it.domain !== "")) continue;
    if ((it.role ?? it.name).toLowerCase() !== role) continue;
    const v = Number(it.value);
    if (it.value !== "" && Number.isFinite(v)) out[it.sample] = v;
  }
  return out;
}

/** The georeferencing tags verbatim, or null without a GeoKey directory. */
function geoTagsOf(s: TiffStructure, directory: readonly number[] | null): GeoTiffGeoTags | null {
  if (directory === null) return null;
  return {
    directory,
    doubles: tagNumbers(s, Tag.GeoDoubleParams),
    ascii: tagString(s, Tag.GeoAsciiParams),
    pixelScale: tagNumbers(s, Tag.ModelPixelScale),
    tiepoints: tagNumbers(s, Tag.ModelTiepoint),
    transformation: tagNumbers(s, Tag.ModelTransformation),
  };
}

/** Builds the RasterInfo of IFD 0 from its validated layout and tags. */
export function rasterInfoOf(s: TiffStructure, layout: ImageLayout): RasterInfo {
  const directory = tagNumbers(s, Tag.GeoKeyDirectory);
  const keys: GeoKeys =
    directory !== null
      ? parseGeoKeys(directory, tagNumbers(s, Tag.GeoDoubleParams), tagString(s, Tag.GeoAsciiParams))
      : new Map();
  const geoTransform = geoTransformOf(s, keys);
  const crs = crsFromGeoKeys(keys);
  const bounds = geoTransform !== null ? boundsOf(geoTransform, layout.width, layout.height) : null;
  const xml = tagString(s, Tag.GdalMetadata);
  const items = xml !== null ? parseGdalMetadata(xml) : [];
  const bands = layout.samplesPerPixel;
  const nodataValue = parseNodata(tagString(s, Tag.GdalNodata));
  const datasetItem = (name: string): string | null =>
    items.find(
      (it) =>
        it.sample === null && (it.domain === null || it.domain === "") && it.name.toUpperCase() === name,
    )?.value ?? null;
  // An explicit acquisition time beats the file's DateTime tag, which TIFF defines as the time the
  // image was created — for a processed tile, often its processing time.
  const acquired =
    parseDateTime(datasetItem("ACQUISITIONDATETIME")) ??
    parseDateTime(datasetItem("DATETIME")) ??
    parseDateTime(tagString(s, Tag.DateTime));
  return {
    width: layout.width,
    height: layout.height,
    bandCount: bands,
    dtype: layout.dtype,
    nodata: new Array<number | null>(bands).fill(nodataAsCompared(nodataValue, layout.dtype)),
    scale: perBand(items, "scale", bands, 1),
    offset: perBand(items, "offset", bands, 0),
    geoTransform,
    crs,
    bounds,
    boundsWgs84: wgs84Bounds(crs, bounds),
    acquired,
    compression: compressionName(layout.compression),
    tiled: layout.tiled,
    geoTags: geoTagsOf(s, directory),
  };
}
