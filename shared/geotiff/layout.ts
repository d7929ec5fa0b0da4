/**
 * The pixel layout of IFD 0 — size, sample type, blocks and where each block's bytes are — checked for
 * consistency before a single pixel is decoded, so a hostile header cannot make the decoder allocate
 * without bound, divide by zero or read outside the file.
 */
import { PixelBudgetError, TileDecodeError } from "../errors.js";
import type { DType } from "../raster/types.js";
import { type TiffStructure, hasTag, tagBytes, tagNumber, tagNumbers } from "./tiff.js";

/** Baseline and extension TIFF tags read here and in metadata.ts. */
export const Tag = {
  ImageWidth: 256,
  ImageLength: 257,
  BitsPerSample: 258,
  Compression: 259,
  Photometric: 262,
  StripOffsets: 273,
  SamplesPerPixel: 277,
  RowsPerStrip: 278,
  StripByteCounts: 279,
  PlanarConfiguration: 284,
  DateTime: 306,
  Predictor: 317,
  TileWidth: 322,
  TileLength: 323,
  TileOffsets: 324,
  TileByteCounts: 325,
  ExtraSamples: 338,
  SampleFormat: 339,
  JPEGTables: 347,
  YCbCrSubSampling: 530,
  ModelPixelScale: 33550,
  ModelTiepoint: 33922,
  ModelTransformation: 34264,
  GeoKeyDirectory: 34735,
  GeoDoubleParams: 34736,
  GeoAsciiParams: 34737,
  GdalMetadata: 42112,
  GdalNodata: 42113,
} as const;

/** Compression codes lanemap decodes, with the names RasterInfo reports. */
export const COMPRESSION_NAMES: Readonly<Record<number, string>> = {
  1: "none",
  5: "lzw",
  7: "jpeg",
  8: "deflate",
  32946: "deflate",
  32773: "packbits",
};

/** Name of any compression code (also the ones lanemap refuses), for messages and RasterInfo. */
export function compressionName(code: number): string {
  const known: Readonly<Record<number, string>> = {
    2: "ccittrle",
    3: "ccittfax3",
    4: "ccittfax4",
    6: "ojpeg",
    34712: "jpeg2000",
    34887: "lerc",
    50000: "zstd",
    50001: "webp",
    ...COMPRESSION_NAMES,
  };
  return known[code] ?? `compression-${code}`;
}

/** More bands than any multispectral tile carries; a fuzzed SamplesPerPixel is refused before allocation. */
export const MAX_BANDS = 1024;
/** Decoded size limit for one image, whatever the pixel budget says (typed arrays and RAM are finite). */
export const MAX_DECODED_BYTES = 2 ** 31;
/** A block (strip or tile) larger than its image by more than this is a fuzzed header. */
const MAX_BLOCK_SLACK_BYTES = 64 * 2 ** 20;

/**
 * The most a codec can expand its input, in decoded bytes per compressed byte: deflate's format limit is
 * 1032:1; a PackBits pair decodes to at most 128 bytes; an LZW code (9+ bits) to at most one 4096-entry
 * string; a JPEG 8x8 block with only a DC code and an end-of-block code costs 2 bits for 64 samples, and
 * 4:2:0 chroma stretches that further. Uncompressed data must be all there.
 */
const MAX_EXPANSION: Readonly<Record<number, number>> = {
  1: 1,
  5: 4096,
  7: 2048,
  8: 1032,
  32946: 1032,
  32773: 64,
};
/** Codec framing (zlib header, JPEG tables) a tiny block may spend beyond the ratio. */
const RATIO_SLACK_BYTES = 1024;

/** Everything the decoder needs to know about IFD 0's pixels, all validated. */
export interface ImageLayout {
  readonly width: number;
  readonly height: number;
  readonly samplesPerPixel: number;
  readonly bitsPerSample: number;
  /** 1 unsigned, 2 signed, 3 float. */
  readonly sampleFormat: 1 | 2 | 3;
  readonly dtype: DType;
  readonly bytesPerSample: number;
  readonly littleEndian: boolean;
  readonly compression: number;
  readonly predictor: 1 | 2 | 3;
  readonly photometric: number;
  readonly planar: 1 | 2;
  readonly tiled: boolean;
  readonly blockWidth: number;
  readonly blockHeight: number;
  readonly blocksAcross: number;
  readonly blocksDown: number;
  /** Per block, in TIFF order (plane-major for planar 2); only the first `blockCount` are used. */
  readonly offsets: readonly number[];
  readonly byteCounts: readonly number[];
  readonly blockCount: number;
  readonly jpegTables: Uint8Array | null;
}

function fail(message: string): never {
  throw new TileDecodeError(`invalid TIFF: ${message}`);
}

function dtypeOf(format: number, bits: number): DType | null {
  if (format === 1) return bits === 8 ? "uint8" : bits === 16 ? "uint16" : bits === 32 ? "uint32" : null;
  if (format === 2) return bits === 8 ? "int8" : bits === 16 ? "int16" : bits === 32 ? "int32" : null;
  if (format === 3) return bits === 32 ? "float32" : bits === 64 ? "float64" : null;
  return null;
}

/** Width and height of IFD 0, checked to be positive integers. */
export function imageSize(s: TiffStructure): { width: number; height: number } {
  const width = tagNumber(s, Tag.ImageWidth, 0);
  const height = tagNumber(s, Tag.ImageLength, 0);
  if (!(width >= 1) || !(height >= 1) || !Number.isInteger(width) || !Number.isInteger(height))
    fail(`image size ${width}x${height} is not positive`);
  return { width, height };
}

/**
 * Refuses an image over `maxPixels` (width * height) before anything else is read or allocated.
 * @throws PixelBudgetError
 */
export function checkPixelBudget(width: number, height: number, maxPixels: number): void {
  const pixels = width * height;
  if (pixels > maxPixels) throw new PixelBudgetError(pixels, maxPixels);
}

/**
 * Reads and validates the pixel layout of IFD 0.
 * @throws TileDecodeError when the header is inconsistent or uses something lanemap does not decode.
 */
export function readLayout(s: TiffStructure): ImageLayout {
  const { width, height } = imageSize(s);
  const samplesPerPixel = tagNumber(s, Tag.SamplesPerPixel, 1);
  if (!Number.isInteger(samplesPerPixel) || samplesPerPixel < 1 || samplesPerPixel > MAX_BANDS)
    fail(`SamplesPerPixel ${samplesPerPixel} is outside 1..${MAX_BANDS}`);

  const bitsList = tagNumbers(s, Tag.BitsPerSample) ?? [1];
  if (bitsList.length !== 1 && bitsList.length < samplesPerPixel)
    fail(`BitsPerSample has ${bitsList.length} values for ${samplesPerPixel} samples`);
  const bitsPerSample = bitsList[0] ?? 1;
  for (let i = 1; i < Math.min(bitsList.length, samplesPerPixel); i++)
    if (bitsList[i] !== bitsPerSample)
      fail(`mixed BitsPerSample (${bitsList.slice(0, samplesPerPixel).join(",")})`);

  const formatList = tagNumbers(s, Tag.SampleFormat) ?? [1];
  const rawFormat = formatList[0] ?? 1;
  for (let i = 1; i < Math.min(formatList.length, samplesPerPixel); i++)
    if (formatList[i] !== rawFormat) fail(`mixed SampleFormat (${formatList.join(",")})`);
  // SampleFormat 4 ("undefined") is read as unsigned, as libtiff does.
  const sampleFormat = rawFormat === 4 ? 1 : rawFormat;
  if (sampleFormat !== 1 && sampleFormat !== 2 && sampleFormat !== 3)
    fail(`unsupported SampleFormat ${rawFormat}`);
  const dtype = dtypeOf(sampleFormat, bitsPerSample);
  if (dtype === null)
    fail(`unsupported sample type: SampleFormat ${rawFormat} with ${bitsPerSample} bits per sample`);
  const bytesPerSample = bitsPerSample / 8;

  const compression = tagNumber(s, Tag.Compression, 1);
  if (COMPRESSION_NAMES[compression] === undefined)
    fail(`unsupported compression ${compressionName(compression)} (${compression})`);

  const rawPredictor = tagNumber(s, Tag.Predictor, 1);
  // libtiff applies a predictor only with the codecs that define one; elsewhere the tag is ignored.
  const predicted = compression === 5 || compression === 8 || compression === 32946;
  const predictor = predicted ? rawPredictor : 1;
  if (predictor !== 1 && predictor !== 2 && predictor !== 3) fail(`unsupported Predictor ${rawPredictor}`);
  if (predictor === 2 && sampleFormat === 3) fail("horizontal predictor (2) on floating-point samples");
  if (predictor === 3 && sampleFormat !== 3) fail("floating-point predictor (3) on integer samples");

  const photometric = tagNumber(s, Tag.Photometric, samplesPerPixel >= 3 ? 2 : 1);
  if (photometric === 6 && compression !== 7)
    fail("YCbCr samples are only decoded inside JPEG compression (GDAL writes no other kind)");
  if (photometric === 6 && samplesPerPixel < 3) fail(`YCbCr with ${samplesPerPixel} samples per pixel`);

  const planarRaw = tagNumber(s, Tag.PlanarConfiguration, 1);
  if (planarRaw !== 1 && planarRaw !== 2) fail(`PlanarConfiguration ${planarRaw} is neither 1 nor 2`);
  const planar: 1 | 2 = samplesPerPixel === 1 ? 1 : planarRaw;

  const tiled = hasTag(s, Tag.TileOffsets);
  let blockWidth: number;
  let blockHeight: number;
  if (tiled) {
    blockWidth = tagNumber(s, Tag.TileWidth, 0);
    blockHeight = tagNumber(s, Tag.TileLength, 0);
    if (
      !(blockWidth >= 1) ||
      !(blockHeight >= 1) ||
      !Number.isInteger(blockWidth) ||
      !Number.isInteger(blockHeight)
    )
      fail(`tile size ${blockWidth}x${blockHeight} is not positive`);
  } else {
    if (!hasTag(s, Tag.StripOffsets)) fail("neither StripOffsets nor TileOffsets is present");
    blockWidth = width;
    const rows = tagNumber(s, Tag.RowsPerStrip, height);
    if (!(rows >= 1) || !Number.isInteger(rows)) fail(`RowsPerStrip ${rows} is not positive`);
    blockHeight = Math.min(rows, height);
  }

  const pixelBytes = (planar === 1 ? samplesPerPixel : 1) * bytesPerSample;
  const planeBytes = width * height * pixelBytes;
  if (width * height * samplesPerPixel * bytesPerSample > MAX_DECODED_BYTES)
    fail(
      `decoded image would be ${width * height * samplesPerPixel * bytesPerSample} bytes, over the limit of ${MAX_DECODED_BYTES}`,
    );
  if (blockWidth * blockHeight * pixelBytes > planeBytes + MAX_BLOCK_SLACK_BYTES)
    fail(`block ${blockWidth}x${blockHeight} is far larger than the ${width}x${height} image`);

  const blocksAcross = Math.ceil(width / blockWidth);
  const blocksDown = Math.ceil(height / blockHeight);
  const blockCount = blocksAcross * blocksDown * (planar === 2 ? samplesPerPixel : 1);
  const offsets = tagNumbers(s, tiled ? Tag.TileOffsets : Tag.StripOffsets) ?? [];
  const byteCounts = tagNumbers(s, tiled ? Tag.TileByteCounts : Tag.StripByteCounts);
  const kind = tiled ? "tile" : "strip";
  if (byteCounts === null) fail(`${kind} byte counts are missing`);
  if (offsets.length < blockCount || byteCounts.length < blockCount)
    fail(
      `${blockCount} ${kind}s needed but ${offsets.length} offsets and ${byteCounts.length} byte counts given`,
    );
  const fileLength = s.bytes.byteLength;
  const ratio = MAX_EXPANSION[compression] ?? 1;
  for (let i = 0; i < blockCount; i++) {
    const off = offsets[i] ?? 0;
    const count = byteCounts[i] ?? 0;
    // A zero count or offset is a sparse block (GDAL writes them for empty tiles): filled, not read.
    if (count === 0 || off === 0) continue;
    if (off + count > fileLength)
      fail(`${kind} ${i}: ${count} bytes at byte ${off} run past the end of the file (${fileLength} bytes)`);
    // No codec expands its input beyond a fixed ratio, so a block too small to hold its pixels is known
    // bad before the band arrays (sized by the header alone) are allocated.
    const across = i % blocksAcross;
    const down = Math.floor(i / blocksAcross) % blocksDown;
    const rows = Math.min(blockHeight, height - down * blockHeight);
    const cols = Math.min(blockWidth, width - across * blockWidth);
    const needed = ((rows - 1) * blockWidth + cols) * pixelBytes;
    if (count * ratio + RATIO_SLACK_BYTES < needed)
      fail(`${kind} ${i} holds ${count} bytes, too few for the ${needed} bytes of pixels it must decode to`);
  }

  return {
    width,
    height,
    samplesPerPixel,
    bitsPerSample,
    sampleFormat,
    dtype,
    bytesPerSample,
    littleEndian: s.littleEndian,
    compression,
    predictor,
    photometric,
    planar,
    tiled,
    blockWidth,
    blockHeight,
    blocksAcross,
    blocksDown,
    offsets,
    byteCounts,
    blockCount,
    jpegTables: compression === 7 ? tagBytes(s, Tag.JPEGTables) : null,
  };
}
