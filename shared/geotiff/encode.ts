/**
 * A small baseline GeoTIFF writer. geotiff.js can write, but only uncompressed single-strip files with
 * a fixed tag set; lanemap needs deflate, GDAL's nodata/scale/offset/metadata tags, colour tables and a
 * real GeoKey directory, so that `gdalinfo` and every reader see the same georeferenced raster.
 *
 * Layout (classic little-endian TIFF, one IFD): header, IFD, out-of-line tag values, then the strips.
 * Putting the IFD first lets a reader learn everything from the first few kilobytes.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { endianness } from "node:os";
import { constants as zlibConstants, deflateSync } from "node:zlib";
import { LanemapError } from "../errors.js";
import type { BandArray, DType, GeoTiffGeoTags, GeoTransform } from "../raster/types.js";

/** A raster could not be encoded as asked (inconsistent bands, unsupported option, too large, ...). */
export class TileEncodeError extends LanemapError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TILE_ENCODE", message, options);
  }
}

/** An RGB colour, each channel 0..255. */
export type Rgb = readonly [r: number, g: number, b: number];

/** What to write: pixels plus the georeferencing and metadata GDAL understands. */
export interface GeoTiffInput {
  readonly width: number;
  readonly height: number;
  /** One array per band, row-major, `width * height` long, all of the same type. */
  readonly bands: readonly BandArray[];
  /** GDAL-order affine transform; north-up is written as scale + tiepoint, anything else as a matrix. */
  readonly geoTransform?: GeoTransform | null;
  /** EPSG code of the CRS (projected or geographic). */
  readonly epsg?: number | null;
  /**
   * Georeferencing tags to copy verbatim (a source raster's `geoTags`): the GeoKey directory with its
   * parameter tags and the pixel scale/tie points or transformation matrix. When given, it replaces
   * `geoTransform` and `epsg`, so a derived raster carries exactly its source's georeferencing
   * whatever the CRS, including those without an EPSG code.
   */
  readonly geoTags?: GeoTiffGeoTags | null;
  /** Whether `epsg` names a projected or a geographic CRS; looked up in epsg-index when omitted. */
  readonly crsKind?: "projected" | "geographic";
  /** Nodata value for every band (GDAL_NODATA); NaN is allowed for float data. */
  readonly nodata?: number | null;
  /** Per band: physical value = stored * scale + offset (GDAL_METADATA SCALE/OFFSET items). */
  readonly scale?: readonly number[];
  readonly offset?: readonly number[];
  /** Per band description (GDAL_METADATA DESCRIPTION items), e.g. "SR_B4". */
  readonly bandNames?: readonly string[];
  /** Acquisition time, ISO 8601; written as TIFF DateTime (UTC) and as ACQUISITIONDATETIME. */
  readonly acquired?: string | null;
  /** TIFF ImageDescription. */
  readonly description?: string;
  /** Dataset-level GDAL metadata items. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Colour table for a single uint8 band (palette photometric); up to 256 entries. */
  readonly colorMap?: readonly Rgb[];
}

/** How to lay out and compress the pixels. */
export interface GeoTiffEncodeOptions {
  /** "deflate" (default; TIFF Compression 8, as GDAL writes it) or "none". */
  readonly compression?: "deflate" | "none";
  /** 1 = none (default), 2 = horizontal differencing (integer types only). */
  readonly predictor?: 1 | 2;
  /** Rows per strip; default: as many rows as fit in about 64 KiB of uncompressed samples. */
  readonly rowsPerStrip?: number;
  /** "band" (PlanarConfiguration 2, default: each band its own strips) or "pixel" (1, interleaved). */
  readonly interleave?: "band" | "pixel";
  /** zlib level 1..9 (default 6). */
  readonly deflateLevel?: number;
  /**
   * zlib's strategy: "default", or "rle" (matches of the previous byte only, zlib's Z_RLE) for
   * rasters of long runs such as class rasters, where it is ~10× cheaper than level 6's match
   * search for a stream within a few per cent of its size (Chiapas's 250² classes: 0.9 ms for 9.6 kB
   * instead of 8.9 ms for 9.4 kB). Either is plain deflate: any TIFF reader inflates it.
   */
  readonly deflateStrategy?: "default" | "rle";
}

// TIFF field types.
const ASCII = 2;
const SHORT = 3;
const LONG = 4;
const DOUBLE = 12;
const TYPE_SIZE: Record<number, number> = { [ASCII]: 1, [SHORT]: 2, [LONG]: 4, [DOUBLE]: 8 };

interface Tag {
  readonly id: number;
  readonly type: number;
  readonly values: readonly number[] | string;
}

interface DTypeInfo {
  readonly dtype: DType;
  readonly bytes: number;
  /** TIFF SampleFormat: 1 unsigned, 2 signed, 3 IEEE float. */
  readonly format: 1 | 2 | 3;
}

function dtypeOf(band: BandArray): DTypeInfo {
  if (band instanceof Uint8Array) return { dtype: "uint8", bytes: 1, format: 1 };
  if (band instanceof Int8Array) return { dtype: "int8", bytes: 1, format: 2 };
  if (band instanceof Uint16Array) return { dtype: "uint16", bytes: 2, format: 1 };
  if (band instanceof Int16Array) return { dtype: "int16", bytes: 2, format: 2 };
  if (band instanceof Uint32Array) return { dtype: "uint32", bytes: 4, format: 1 };
  if (band instanceof Int32Array) return { dtype: "int32", bytes: 4, format: 2 };
  if (band instanceof Float32Array) return { dtype: "float32", bytes: 4, format: 3 };
  return { dtype: "float64", bytes: 8, format: 3 };
}

const crsKindCache = new Map<number, "projected" | "geographic">();
const requireFromHere = createRequire(import.meta.url);

/** Projected or geographic, from epsg-index's one-file-per-code table (read once per code). */
function lookupCrsKind(epsg: number): "projected" | "geographic" {
  const cached = crsKindCache.get(epsg);
  if (cached) return cached;
  let kind: string;
  try {
    const path = requireFromHere.resolve(`epsg-index/s/${epsg}.json`);
    kind = String((JSON.parse(readFileSync(path, "utf8")) as { kind?: unknown }).kind);
  } catch (err) {
    throw new TileEncodeError(`EPSG:${epsg} is not in the EPSG index; pass crsKind explicitly`, {
      cause: err,
    });
  }
  let result: "projected" | "geographic";
  if (kind === "CRS-PROJCRS") result = "projected";
  else if (kind === "CRS-GEOGCRS") result = "geographic";
  else throw new TileEncodeError(`EPSG:${epsg} is a ${kind}, not a projected or geographic CRS`);
  crsKindCache.set(epsg, result);
  return result;
}

/** "YYYY:MM:DD HH:MM:SS" in UTC, the TIFF DateTime form. */
function tiffDateTime(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) throw new TileEncodeError(`acquired must be an ISO 8601 time, got "${iso}"`);
  const d = new Date(t);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return (
    `${p(d.getUTCFullYear(), 4)}:${p(d.getUTCMonth() + 1)}:${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`
  );
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** GDAL's number spelling for metadata and nodata: plain decimals, "nan", "inf". */
function gdalNumber(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (n === Infinity) return "inf";
  if (n === -Infinity) return "-inf";
  return String(n);
}

/** The GDAL_METADATA XML (tag 42112), or null when there is nothing to say. */
function gdalMetadataXml(input: GeoTiffInput, bandCount: number): string | null {
  const items: string[] = [];
  const meta: Record<string, string> = { ...input.metadata };
  if (input.acquired && meta["ACQUISITIONDATETIME"] === undefined)
    meta["ACQUISITIONDATETIME"] = new Date(Date.parse(input.acquired)).toISOString();
  for (const [name, value] of Object.entries(meta))
    items.push(`  <Item name="${xmlEscape(name)}">${xmlEscape(value)}</Item>`);
  for (let b = 0; b < bandCount; b++) {
    const offset = input.offset?.[b];
    const scale = input.scale?.[b];
    const name = input.bandNames?.[b];
    // GDAL writes offset and scale as a pair whenever either departs from the identity.
    if ((offset !== undefined && offset !== 0) || (scale !== undefined && scale !== 1)) {
      items.push(`  <Item name="OFFSET" sample="${b}" role="offset">${gdalNumber(offset ?? 0)}</Item>`);
      items.push(`  <Item name="SCALE" sample="${b}" role="scale">${gdalNumber(scale ?? 1)}</Item>`);
    }
    if (name !== undefined)
      items.push(`  <Item name="DESCRIPTION" sample="${b}" role="description">${xmlEscape(name)}</Item>`);
  }
  if (items.length === 0) return null;
  return `<GDALMetadata>\n${items.join("\n")}\n</GDALMetadata>`;
}

/** The source's georeferencing tags, verbatim (types as GeoTIFF 1.1 §7 defines them). */
function copiedGeoTags(g: GeoTiffGeoTags): Tag[] {
  const tags: Tag[] = [];
  const d = g.directory;
  // Some writers leave padding after the keys (libgeotiff's cassini_soldner.tif): kept verbatim.
  if (d.length < 4 + 4 * (d[3] ?? 0) || !d.every((v) => Number.isInteger(v) && v >= 0 && v <= 65535))
    throw new TileEncodeError("geoTags.directory is not a GeoKey directory (4 + 4 x key count SHORTs)");
  if (g.pixelScale) tags.push({ id: 33550, type: DOUBLE, values: [...g.pixelScale] });
  if (g.tiepoints) tags.push({ id: 33922, type: DOUBLE, values: [...g.tiepoints] });
  if (g.transformation) tags.push({ id: 34264, type: DOUBLE, values: [...g.transformation] });
  tags.push({ id: 34735, type: SHORT, values: [...d] });
  if (g.doubles) tags.push({ id: 34736, type: DOUBLE, values: [...g.doubles] });
  if (g.ascii !== null) tags.push({ id: 34737, type: ASCII, values: g.ascii });
  for (const t of tags)
    if (typeof t.values !== "string" && !t.values.every(Number.isFinite))
      throw new TileEncodeError(`georeferencing tag ${t.id} holds a non-finite number`);
  return tags;
}

/** GeoTIFF georeferencing tags for a GDAL geotransform and an EPSG code. */
function geoTags(input: GeoTiffInput): Tag[] {
  if (input.geoTags) return copiedGeoTags(input.geoTags);
  const tags: Tag[] = [];
  const gt = input.geoTransform;
  if (gt) {
    if (!gt.every(Number.isFinite)) throw new TileEncodeError(`geoTransform must be finite, got ${gt}`);
    const northUp = gt[2] === 0 && gt[4] === 0 && gt[1] > 0 && gt[5] < 0;
    if (northUp) {
      tags.push({ id: 33550, type: DOUBLE, values: [gt[1], -gt[5], 0] });
      tags.push({ id: 33922, type: DOUBLE, values: [0, 0, 0, gt[0], gt[3], 0] });
    } else {
      // Rotated, sheared or south-up: the full affine matrix (row-major 4x4).
      tags.push({
        id: 34264,
        type: DOUBLE,
        values: [gt[1], gt[2], 0, gt[0], gt[4], gt[5], 0, gt[3], 0, 0, 0, 0, 0, 0, 0, 1],
      });
    }
  }
  const epsg = input.epsg ?? null;
  if (gt || epsg !== null) {
    // GeoKeyDirectory: header (version 1.1.0, key count) then sorted (key, location 0, count 1, value).
    const keys: [number, number][] = [];
    if (epsg !== null) {
      if (!Number.isInteger(epsg) || epsg <= 0 || epsg > 65535)
        throw new TileEncodeError(`epsg must be an integer in 1..65535, got ${epsg}`);
      const kind = input.crsKind ?? lookupCrsKind(epsg);
      keys.push([1024, kind === "projected" ? 1 : 2]); // GTModelTypeGeoKey
      keys.push([1025, 1]); // GTRasterTypeGeoKey = RasterPixelIsArea
      keys.push([kind === "projected" ? 3072 : 2048, epsg]); // ProjectedCSType / GeographicType
    } else {
      keys.push([1025, 1]);
    }
    tags.push({
      id: 34735,
      type: SHORT,
      values: [1, 1, 0, keys.length, ...keys.flatMap(([k, v]) => [k, 0, 1, v])],
    });
  }
  return tags;
}

/** Horizontal differencing in place, wrapping in the sample type (TIFF predictor 2). */
function applyPredictor(samples: BandArray, width: number, rows: number, stride: number): void {
  const rowLen = width * stride;
  for (let r = 0; r < rows; r++) {
    const base = r * rowLen;
    // Backwards so each difference uses the original left neighbour; typed-array stores wrap.
    for (let i = rowLen - 1; i >= stride; i--)
      samples[base + i] = (samples[base + i] as number) - (samples[base + i - stride] as number);
  }
}

/** The little-endian bytes of a typed array (a view when the host is little-endian). */
function littleEndianBytes(a: BandArray): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (endianness() === "LE" || a.BYTES_PER_ELEMENT === 1) return bytes;
  const out = new Uint8Array(bytes.length);
  const n = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += n)
    for (let k = 0; k < n; k++) out[i + k] = bytes[i + n - 1 - k] ?? 0;
  return out;
}

/**
 * Encodes a raster as a GeoTIFF that GDAL, geotiff.js and lanemap's decoder read back identically:
 * striped, deflate-compressed by default, with nodata, scale/offset, metadata, acquisition time,
 * an optional palette and a GeoKey directory naming the EPSG CRS. Deterministic: the same input
 * gives the same bytes.
 * @throws TileEncodeError when the size, bands, types or options cannot make a valid GeoTIFF.
 */
export function encodeGeoTiff(input: GeoTiffInput, options: GeoTiffEncodeOptions = {}): Uint8Array {
  const { width, height, bands } = input;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0)
    throw new TileEncodeError(`width and height must be positive integers, got ${width}x${height}`);
  const first = bands[0];
  if (!first) throw new TileEncodeError("a GeoTIFF needs at least one band");
  if (bands.length > 65535) throw new TileEncodeError(`too many bands: ${bands.length}`);
  const info = dtypeOf(first);
  for (const [i, band] of bands.entries()) {
    if (band.constructor !== first.constructor)
      throw new TileEncodeError(`band ${i + 1} is ${dtypeOf(band).dtype}, band 1 is ${info.dtype}`);
    if (band.length !== width * height)
      throw new TileEncodeError(`band ${i + 1} has ${band.length} samples, expected ${width * height}`);
  }
  const spp = bands.length;
  const compression = options.compression ?? "deflate";
  const predictor = options.predictor ?? 1;
  if (predictor === 2 && info.format === 3)
    throw new TileEncodeError("predictor 2 (horizontal differencing) applies to integer data only");
  const planar = options.interleave === "pixel" ? 1 : 2;
  const palette = input.colorMap !== undefined;
  if (palette && (spp !== 1 || info.dtype !== "uint8"))
    throw new TileEncodeError("a colour map needs exactly one uint8 band");
  if (palette && (input.colorMap?.length ?? 0) > 256)
    throw new TileEncodeError(`a uint8 colour map has at most 256 entries, got ${input.colorMap?.length}`);
  for (const [what, list] of [
    ["scale", input.scale],
    ["offset", input.offset],
    ["bandNames", input.bandNames],
  ] as const)
    if (list && list.length !== spp)
      throw new TileEncodeError(`${what} has ${list.length} entries for ${spp} bands`);

  const samplesPerRow = planar === 2 ? width : width * spp;
  const bytesPerRow = samplesPerRow * info.bytes;
  const rowsPerStrip = Math.min(height, options.rowsPerStrip ?? Math.max(1, Math.floor(65536 / bytesPerRow)));
  if (!Number.isInteger(rowsPerStrip) || rowsPerStrip <= 0)
    throw new TileEncodeError(`rowsPerStrip must be a positive integer, got ${options.rowsPerStrip}`);
  const stripsPerPlane = Math.ceil(height / rowsPerStrip);
  const level = options.deflateLevel ?? 6;
  const strategy = options.deflateStrategy === "rle" ? zlibConstants.Z_RLE : zlibConstants.Z_DEFAULT_STRATEGY;

  // Encode every strip first: the IFD needs their byte counts.
  const strips: Uint8Array[] = [];
  const Ctor = first.constructor as new (n: number) => BandArray;
  const planes = planar === 2 ? spp : 1;
  for (let p = 0; p < planes; p++) {
    for (let s = 0; s < stripsPerPlane; s++) {
      const r0 = s * rowsPerStrip;
      const rows = Math.min(rowsPerStrip, height - r0);
      let samples: BandArray;
      if (planar === 2) {
        const band = bands[p] as BandArray;
        const view = band.subarray(r0 * width, (r0 + rows) * width);
        // Copy only when the predictor must rewrite samples: the caller's arrays stay untouched.
        samples = predictor === 2 ? view.slice() : view;
      } else {
        samples = new Ctor(rows * width * spp);
        for (let b = 0; b < spp; b++) {
          const band = bands[b] as BandArray;
          for (let i = 0, o = b, src = r0 * width; i < rows * width; i++, o += spp, src++)
            samples[o] = band[src] as number;
        }
      }
      if (predictor === 2) applyPredictor(samples, width, rows, planar === 2 ? 1 : spp);
      const raw = littleEndianBytes(samples);
      strips.push(compression === "deflate" ? new Uint8Array(deflateSync(raw, { level, strategy })) : raw);
    }
  }

  const stripOffsets = new Array<number>(strips.length).fill(0);
  const tags: Tag[] = [
    { id: 256, type: LONG, values: [width] },
    { id: 257, type: LONG, values: [height] },
    { id: 258, type: SHORT, values: new Array<number>(spp).fill(info.bytes * 8) },
    { id: 259, type: SHORT, values: [compression === "deflate" ? 8 : 1] },
    { id: 262, type: SHORT, values: [palette ? 3 : 1] },
    { id: 273, type: LONG, values: stripOffsets }, // filled in once the layout is known
    { id: 277, type: SHORT, values: [spp] },
    { id: 278, type: LONG, values: [rowsPerStrip] },
    { id: 279, type: LONG, values: strips.map((s) => s.length) },
    { id: 284, type: SHORT, values: [planar] },
    { id: 305, type: ASCII, values: "lanemap" },
    { id: 339, type: SHORT, values: new Array<number>(spp).fill(info.format) },
  ];
  if (input.description !== undefined) tags.push({ id: 270, type: ASCII, values: input.description });
  if (input.acquired) tags.push({ id: 306, type: ASCII, values: tiffDateTime(input.acquired) });
  if (predictor === 2) tags.push({ id: 317, type: SHORT, values: [2] });
  if (palette) {
    // 3 x 256 SHORTs: all reds, then greens, then blues; 8-bit channels scaled by 257 to 16 bits.
    const map = new Array<number>(768).fill(0);
    (input.colorMap ?? []).forEach(([r, g, b], i) => {
      for (const [k, c] of [r, g, b].entries()) {
        if (!Number.isInteger(c) || c < 0 || c > 255)
          throw new TileEncodeError(`colour ${i} has a channel outside 0..255: ${c}`);
        map[k * 256 + i] = c * 257;
      }
    });
    tags.push({ id: 320, type: SHORT, values: map });
  }
  // Without ExtraSamples a reader may take a multi-band MinIsBlack image for something else.
  if (!palette && spp > 1) tags.push({ id: 338, type: SHORT, values: new Array<number>(spp - 1).fill(0) });
  tags.push(...geoTags(input));
  const xml = gdalMetadataXml(input, spp);
  if (xml !== null) tags.push({ id: 42112, type: ASCII, values: xml });
  if (input.nodata !== undefined && input.nodata !== null)
    tags.push({ id: 42113, type: ASCII, values: gdalNumber(input.nodata) });
  tags.sort((a, b) => a.id - b.id);

  // Sizes: header 8, IFD = 2 + 12 per entry + 4, then values longer than 4 bytes (word aligned).
  const encodedAscii = new Map<Tag, Uint8Array>();
  const valueSize = (t: Tag): number => {
    if (typeof t.values === "string") {
      const bytes = new TextEncoder().encode(t.values + "\0");
      encodedAscii.set(t, bytes);
      return bytes.length;
    }
    return t.values.length * (TYPE_SIZE[t.type] ?? 0);
  };
  const sizes = tags.map(valueSize);
  const ifdOffset = 8;
  let cursor = ifdOffset + 2 + tags.length * 12 + 4;
  const valueOffsets = sizes.map((size) => {
    if (size <= 4) return -1;
    cursor += cursor & 1;
    const at = cursor;
    cursor += size;
    return at;
  });
  cursor += cursor & 1;
  strips.forEach((s, i) => {
    stripOffsets[i] = cursor;
    cursor += s.length;
  });
  if (cursor > 0xffffffff)
    throw new TileEncodeError(`encoded size ${cursor} bytes exceeds classic TIFF's 4 GiB limit`);

  const out = new Uint8Array(cursor);
  const view = new DataView(out.buffer);
  out[0] = 0x49; // "II": little-endian
  out[1] = 0x49;
  view.setUint16(2, 42, true);
  view.setUint32(4, ifdOffset, true);
  view.setUint16(ifdOffset, tags.length, true);
  const writeValues = (t: Tag, at: number): void => {
    if (typeof t.values === "string") {
      out.set(encodedAscii.get(t) ?? new Uint8Array(0), at);
      return;
    }
    const size = TYPE_SIZE[t.type] ?? 0;
    t.values.forEach((v, i) => {
      const o = at + i * size;
      if (t.type === SHORT) view.setUint16(o, v, true);
      else if (t.type === LONG) view.setUint32(o, v, true);
      else view.setFloat64(o, v, true);
    });
  };
  tags.forEach((t, i) => {
    const e = ifdOffset + 2 + i * 12;
    view.setUint16(e, t.id, true);
    view.setUint16(e + 2, t.type, true);
    const count = typeof t.values === "string" ? (encodedAscii.get(t)?.length ?? 0) : t.values.length;
    view.setUint32(e + 4, count, true);
    const at = valueOffsets[i] ?? -1;
    if (at < 0) writeValues(t, e + 8);
    else {
      view.setUint32(e + 8, at, true);
      writeValues(t, at);
    }
  });
  view.setUint32(ifdOffset + 2 + tags.length * 12, 0, true); // no next IFD
  strips.forEach((s, i) => out.set(s, stripOffsets[i] ?? 0));
  return out;
}
