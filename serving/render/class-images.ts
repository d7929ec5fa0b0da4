/**
 * Class rasters as images: a palette PNG for display (colours from the model's colour map, class 0
 * transparent) and a uint8 GeoTIFF with the same colour table on the tile's own grid and CRS, for
 * GIS tools. Both carry class ids as the pixel values, so a client can read classes back from either.
 */
import { encode as encodePng } from "fast-png";
import {
  TileEncodeError,
  encodeGeoTiff,
  type ClassRaster,
  type RasterInfo,
  type GeoTransform,
  type Rgb,
  type ModelClass,
} from "../../shared/index.js";
import type { ServedResult } from "../view/served-result.js";

/** A source raster's georeferencing tags as the decoder reads them. */
type GeoTiffGeoTags = NonNullable<RasterInfo["geoTags"]>;

/** Colours for class ids the model does not list: a fixed, distinguishable cycle. */
const FALLBACK: readonly Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

/** "#rrggbb" (or "#rgb") to RGB; null when it is not a hex colour. */
export function parseColour(s: string): Rgb | null {
  const m = /^#?([0-9a-f]{6}|[0-9a-f]{3})$/i.exec(s.trim());
  if (!m) return null;
  const hex = m[1] as string;
  const full = hex.length === 3 ? [...hex].map((c) => c + c).join("") : hex;
  const n = parseInt(full, 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** The colour table over class ids 0..size-1 (class 0 black, drawn transparent by the PNG). */
export function colourTable(classes: readonly ModelClass[], size: number): Rgb[] {
  const out: Rgb[] = [];
  for (let id = 0; id < size; id++) {
    if (id === 0) {
      out.push([0, 0, 0]);
      continue;
    }
    const c = classes.find((x) => x.id === id);
    out.push((c && parseColour(c.colour)) ?? (FALLBACK[(id - 1) % FALLBACK.length] as Rgb));
  }
  return out;
}

function tableSize(raster: ClassRaster, classes: readonly ModelClass[]): number {
  let max = 0;
  for (const c of classes) max = Math.max(max, c.id);
  for (let i = 0; i < raster.classes.length; i++) {
    const v = raster.classes[i] as number;
    if (v > max) max = v;
  }
  return Math.min(256, max + 1);
}

/** An indexed-colour PNG of the class raster; class 0 (not classified) fully transparent. */
export function classesPng(raster: ClassRaster, classes: readonly ModelClass[]): Uint8Array {
  const table = colourTable(classes, Math.max(2, tableSize(raster, classes)));
  return encodePng({
    width: raster.width,
    height: raster.height,
    data: raster.classes,
    depth: 8,
    channels: 1,
    palette: table.map(([r, g, b], id) => [r, g, b, id === 0 ? 0 : 255]),
  });
}

/** TIFF ASCII fields hold 7-bit text only. */
const ascii = (s: string): string => s.replace(/[^\x20-\x7e]/g, "?");

/**
 * A uint8 GeoTIFF of the class raster with the colour table, on the tile's grid and CRS; 0 = nodata.
 * With the archived source's georeferencing tags (`sourceGeoTags`, from `SourceGeoref`) they are copied
 * verbatim, so the CRS is exactly the source's whatever it is, EPSG code or not (issue 9 item 7);
 * without them the view's geotransform and EPSG code are written. A CRS that the EPSG index cannot
 * classify is then written without GeoKeys (its proj4 definition goes into the metadata) rather than
 * failing the request. Class names go into the GDAL metadata as CLASS_<id> items: GDAL's GTiff driver
 * keeps category names only in a PAM sidecar (served next to this file as `classes.tif.aux.xml`).
 */
export function classesGeoTiff(
  r: ServedResult,
  raster: ClassRaster,
  classes: readonly ModelClass[],
  sourceGeoTags: GeoTiffGeoTags | null = null,
): Uint8Array {
  const gt = r.summary.geoTransform;
  const input = {
    width: raster.width,
    height: raster.height,
    bands: [raster.classes],
    geoTransform: gt.length === 6 ? (gt as unknown as GeoTransform) : null,
    epsg: r.summary.epsg,
    geoTags: sourceGeoTags,
    nodata: 0,
    acquired: r.acquired,
    bandNames: ["class"],
    description: ascii(`lanemap classes of ${r.tileId} (${r.lane} lane, model ${r.summary.modelVersion})`),
    metadata: {
      LANEMAP_TILE_ID: r.tileId,
      LANEMAP_CELL: r.cell,
      LANEMAP_LANE: r.lane,
      LANEMAP_MODEL_VERSION: ascii(r.summary.modelVersion),
      ...Object.fromEntries(classes.map((c) => [`CLASS_${c.id}`, ascii(c.name)] as const)),
    },
    // The entries up to the largest id in use or listed; GDAL pads a uint8 palette to 256 with black.
    colorMap: colourTable(classes, tableSize(raster, classes)),
  };
  try {
    return encodeGeoTiff(input);
  } catch (err) {
    if (!(err instanceof TileEncodeError) || (input.epsg === null && input.geoTags === null)) throw err;
    return encodeGeoTiff({
      ...input,
      epsg: null,
      geoTags: null,
      metadata: { ...input.metadata, LANEMAP_CRS: ascii(r.summary.proj4 ?? `EPSG:${input.epsg}`) },
    });
  }
}

/** Category names by class id for GDAL (index = pixel value; 0 "not classified", unlisted ids unnamed). */
export function categoryNames(classes: readonly ModelClass[]): string[] {
  const names: string[] = ["not classified"];
  for (const c of classes) if (c.id > 0 && c.id < 256) names[c.id] = c.name;
  return Array.from(names, (n) => n ?? "");
}
