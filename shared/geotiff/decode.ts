/**
 * GeoTIFF -> Raster. The header is parsed and validated by lanemap (tiff.ts, layout.ts) so that nothing
 * is allocated or read on a hostile header's say-so; the blocks are then decompressed by geotiff.js's
 * codec registry (with lanemap's faster decoders registered, decoders.ts) and copied straight into
 * band-sequential typed arrays (blocks.ts). geotiff.js's `readRasters` reads every sample through a
 * DataView call; copying rows of typed views is what makes this path several times faster (see
 * test/bench/core/decode.ts for the figures).
 */
import { getDecoder } from "geotiff";
import { LanemapError, TileDecodeError } from "../errors.js";
import type { BandArray, DType, Raster, RasterInfo } from "../raster/types.js";
import { placeBlock, placePredictedBlock, swapBytes, undoFloatingPointPredictor } from "./blocks.js";
import { type BlockParameters, registerFastDecoders } from "./decoders.js";
import { checkPixelBudget, imageSize, type ImageLayout, readLayout } from "./layout.js";
import { resolveRasterCrs } from "./crs-resolve.js";
import { rasterInfoOf } from "./metadata.js";
import { parseTiffStructure } from "./tiff.js";

/** Default pixel budget (width * height) of one decode: a whole Landsat scene (~60 Mpx) fits. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** Options of `decodeGeoTiff`. */
export interface DecodeOptions {
  /** Refuse (PixelBudgetError) images with more than this many pixels, before decoding any. */
  readonly maxPixels?: number;
  /** Aborts the decode between blocks; the promise then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * "proj" (default): the CRS and lon/lat bounds as GDAL/PROJ read them (`resolveRasterCrs`: the PROJ
   * engine starts once per process, about 2–3 s, then costs nothing per tile of a known CRS).
   * "keys": the GeoKeys as parsed, without PROJ — for decoder worker threads, whose callers take the
   * CRS from the catalogue entry the loading thread resolved.
   */
  readonly crs?: CrsReading;
}

/** How the CRS of a decoded tile is settled (see DecodeOptions.crs). */
export type CrsReading = "proj" | "keys";

/** A band array of `dtype` over its own buffer. */
function bandView(dtype: DType, buffer: ArrayBuffer): BandArray {
  switch (dtype) {
    case "uint8":
      return new Uint8Array(buffer);
    case "int8":
      return new Int8Array(buffer);
    case "uint16":
      return new Uint16Array(buffer);
    case "int16":
      return new Int16Array(buffer);
    case "uint32":
      return new Uint32Array(buffer);
    case "int32":
      return new Int32Array(buffer);
    case "float32":
      return new Float32Array(buffer);
    case "float64":
      return new Float64Array(buffer);
  }
}

/**
 * The SOF frame size of a JPEG stream, scanning marker segments up to the first scan. The JPEG codec
 * allocates by the frame size, so a fuzzed SOF must be refused before it reaches the codec.
 */
function jpegFrameSize(b: Uint8Array): { width: number; height: number } | null {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) {
      i++;
      continue;
    }
    const marker = b[i + 1] as number;
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return null;
    const len = ((b[i + 2] as number) << 8) | (b[i + 3] as number);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof && i + 9 <= b.length)
      return {
        height: ((b[i + 5] as number) << 8) | (b[i + 6] as number),
        width: ((b[i + 7] as number) << 8) | (b[i + 8] as number),
      };
    i += 2 + len;
  }
  return null;
}

// libjpeg's integer YCbCr -> RGB tables (jdcolor.c), so the conversion rounds as GDAL's does.
const FIX = (x: number): number => Math.round(x * 65536);
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
  CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + 32768;
}
const clamp8 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/** Converts interleaved Y,Cb,Cr(,extra...) samples to R,G,B in place. */
function ycbcrToRgb(px: Uint8Array, samplesPerPixel: number): void {
  for (let i = 0; i + 2 < px.length; i += samplesPerPixel) {
    const y = px[i] as number;
    const cb = px[i + 1] as number;
    const cr = px[i + 2] as number;
    px[i] = clamp8(y + (CR_R[cr] as number));
    px[i + 1] = clamp8(y + (((CB_G[cb] as number) + (CR_G[cr] as number)) >> 16));
    px[i + 2] = clamp8(y + (CB_B[cb] as number));
  }
}

/** geotiff.js's decoder parameters (its BaseDecoderParameters type is not exported by name). */
type DecoderParameters = Parameters<typeof getDecoder>[1];

/** Decompresses one block to host-order bytes. */
type BlockDecoder = (compressed: Uint8Array) => Promise<Uint8Array>;

/**
 * The block decoder of an image: decompression, byte order, floating-point predictor. The codec comes
 * from geotiff.js's registry (lanemap's faster ones once registered); only its `decodeBlock` is used,
 * because geotiff.js's predictor step reinterprets the codec's bytes in host order, which is wrong for
 * big-endian 16/32-bit files and slower than blocks.ts's typed loops. Both paths are checked against GDAL.
 */
async function blockDecoder(layout: ImageLayout): Promise<BlockDecoder> {
  const { compression, bytesPerSample: bps, littleEndian, predictor, planar, samplesPerPixel } = layout;
  // Swapping to host order assumes a little-endian host, as every platform Node ships for is.
  const swap = !littleEndian && bps > 1 && predictor !== 3;
  const stride = planar === 1 ? samplesPerPixel : 1;
  const samplesPerRow = layout.blockWidth * stride;
  const finish = (block: Uint8Array): Uint8Array => {
    if (swap) swapBytes(block, bps);
    // Predictor 2 is undone while placing the block (placePredictedBlock), in the same pass.
    if (predictor === 3) undoFloatingPointPredictor(block, bps, samplesPerRow, stride);
    return block;
  };
  // Uncompressed blocks are the file's own bytes: copy (Uint8Array#slice), so alignment fixes and
  // byte swapping never touch the caller's input.
  if (compression === 1) return (raw) => Promise.resolve(finish(raw.slice()));
  registerFastDecoders();
  const params: DecoderParameters & BlockParameters & { JPEGTables?: Uint8Array } = {
    tileWidth: layout.blockWidth,
    tileHeight: layout.blockHeight,
    predictor,
    bitsPerSample: new Array<number>(samplesPerPixel).fill(layout.bitsPerSample),
    planarConfiguration: planar,
    samplesPerPixel,
  };
  if (layout.jpegTables !== null) params.JPEGTables = layout.jpegTables;
  const decoder = await getDecoder(compression, params);
  return async (raw) => {
    // The codecs take an ArrayBuffer; a copy of just this block's bytes is one memcpy (through
    // Uint8Array's slice: a Buffer's own slice() is a view sharing the whole file's memory).
    const out = await decoder.decodeBlock(Uint8Array.prototype.slice.call(raw).buffer as ArrayBuffer);
    return finish(new Uint8Array(out));
  };
}

/** Decodes every block of IFD 0 into one buffer per band. */
async function decodePixels(
  bytes: Uint8Array,
  layout: ImageLayout,
  nodata: readonly (number | null)[],
  signal: AbortSignal | undefined,
): Promise<BandArray[]> {
  const { width, height, samplesPerPixel: spp, planar, blockWidth: bw, blockHeight: bh, dtype } = layout;
  const bps = layout.bytesPerSample;
  const buffers: ArrayBuffer[] = [];
  for (let b = 0; b < spp; b++) buffers.push(new ArrayBuffer(width * height * bps));
  const bands = buffers.map((buf) => bandView(dtype, buf));
  const decode = await blockDecoder(layout);
  const planes = planar === 2 ? spp : 1;
  const samples = planar === 1 ? spp : 1;
  const kind = layout.tiled ? "tile" : "strip";
  let index = 0;
  for (let plane = 0; plane < planes; plane++) {
    const targets = planar === 2 ? [buffers[plane] as ArrayBuffer] : buffers;
    const targetBands = planar === 2 ? [plane] : bands.map((_, k) => k);
    for (let by = 0; by < layout.blocksDown; by++) {
      for (let bx = 0; bx < layout.blocksAcross; bx++, index++) {
        signal?.throwIfAborted();
        const x0 = bx * bw;
        const y0 = by * bh;
        const cols = Math.min(bw, width - x0);
        const rows = Math.min(bh, height - y0);
        const offset = layout.offsets[index] ?? 0;
        const count = layout.byteCounts[index] ?? 0;
        if (offset === 0 || count === 0) {
          fillSparse(bands, targetBands, nodata, width, x0, y0, cols, rows);
          continue;
        }
        const raw = bytes.subarray(offset, offset + count);
        if (layout.compression === 7) {
          const frame = jpegFrameSize(raw);
          if (
            frame === null ||
            frame.width > bw ||
            frame.height > bh ||
            frame.width === 0 ||
            frame.height === 0
          )
            throw new TileDecodeError(
              `${kind} ${index}: JPEG frame ${frame ? `${frame.width}x${frame.height}` : "missing"} does not fit the ${bw}x${bh} block`,
            );
        }
        let data: Uint8Array;
        try {
          data = await decode(raw);
        } catch (err) {
          if (err instanceof LanemapError) throw err;
          throw new TileDecodeError(
            `${kind} ${index}: ${layout.compression === 1 ? "read" : "decompression"} failed: ${messageOf(err)}`,
            { cause: err },
          );
        }
        const required = ((rows - 1) * bw + cols) * samples * bps;
        if (data.byteLength < required)
          throw new TileDecodeError(
            `${kind} ${index} decoded to ${data.byteLength} bytes, ${required} expected`,
          );
        if (layout.photometric === 6) ycbcrToRgb(data, spp);
        // Typed views need aligned offsets; codec output starts at 0, a sliced input block may not.
        if (data.byteOffset % bps !== 0) data = data.slice();
        const placement = { width, blockWidth: bw, x0, y0, cols, rows, samples };
        if (layout.predictor === 2) placePredictedBlock(targets, data, bps, placement);
        else placeBlock(targets, data, bps, placement);
      }
    }
  }
  return bands;
}

/** Sparse blocks (no bytes in the file) read as nodata, or 0 without one — GDAL's rule. */
function fillSparse(
  bands: BandArray[],
  which: readonly number[],
  nodata: readonly (number | null)[],
  width: number,
  x0: number,
  y0: number,
  cols: number,
  rows: number,
): void {
  for (const k of which) {
    const v = nodata[k];
    if (v === null || v === undefined || v === 0) continue;
    const band = bands[k] as BandArray;
    for (let r = 0; r < rows; r++) band.fill(v, (y0 + r) * width + x0, (y0 + r) * width + x0 + cols);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Anything thrown while decoding becomes a TileDecodeError, except lanemap's own errors and aborts. */
function asDecodeError(err: unknown, signal: AbortSignal | undefined): unknown {
  if (err instanceof LanemapError) return err;
  if (signal?.aborted && err === signal.reason) return err;
  return new TileDecodeError(`cannot decode GeoTIFF: ${messageOf(err)}`, { cause: err });
}

/**
 * A plain Uint8Array over the same memory: a Node Buffer's `slice` shares memory instead of copying, and
 * the block path relies on `slice` copying.
 */
function plain(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkMaxPixels(maxPixels: number): void {
  if (!(maxPixels > 0)) throw new RangeError(`maxPixels must be positive, got ${maxPixels}`);
}

/**
 * Reads a GeoTIFF's header (IFD 0): size, type, georeferencing, nodata, scale/offset, acquisition time.
 * No pixel is decoded and no pixel budget applies: this is how a caller learns the size.
 * @throws TileDecodeError when the bytes are not a GeoTIFF lanemap can decode.
 */
export async function readGeoTiffInfo(
  bytes: Uint8Array,
  options: { signal?: AbortSignal; crs?: CrsReading } = {},
): Promise<RasterInfo> {
  options.signal?.throwIfAborted();
  let info: RasterInfo;
  try {
    const s = parseTiffStructure(plain(bytes));
    info = rasterInfoOf(s, readLayout(s));
  } catch (err) {
    throw asDecodeError(err, options.signal);
  }
  // Outside the try: a CRS PROJ refuses is a CrsError about the tile, not a decoding failure.
  return (options.crs ?? "proj") === "proj" ? resolveRasterCrs(info) : info;
}

/**
 * Decodes IFD 0 (the full-resolution image; overviews and masks are ignored) of a GeoTIFF into
 * band-sequential typed arrays plus its RasterInfo.
 * @throws PixelBudgetError when width * height exceeds `maxPixels` (checked before any pixel is decoded).
 * @throws TileDecodeError when the bytes are corrupt, truncated or use an unsupported encoding.
 * @throws CrsError (a TileInvalidError) when PROJ cannot place the tile (a point of it does not map
 *   to lon/lat, e.g. a corrupt geotransform) or proj4js cannot reproduce PROJ on it (crs "proj").
 */
export async function decodeGeoTiff(bytes: Uint8Array, options: DecodeOptions = {}): Promise<Raster> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  checkMaxPixels(maxPixels);
  const { signal } = options;
  signal?.throwIfAborted();
  let raster: Raster;
  try {
    const s = parseTiffStructure(plain(bytes));
    const { width, height } = imageSize(s);
    checkPixelBudget(width, height, maxPixels);
    const layout = readLayout(s);
    const info = rasterInfoOf(s, layout);
    const bands = await decodePixels(s.bytes, layout, info.nodata, signal);
    raster = { ...info, bands };
  } catch (err) {
    throw asDecodeError(err, signal);
  }
  return (options.crs ?? "proj") === "proj" ? resolveRasterCrs(raster) : raster;
}
