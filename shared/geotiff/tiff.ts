/**
 * A defensive reader of TIFF structure: the header, the IFD chain and the tags of IFD 0. Nothing here
 * trusts the file: every offset and count is checked against the file's length before it is used, the
 * IFD chain is walked with a visited set and a cap, and no allocation is sized by a field before that
 * field has been checked. Pixel decoding lives elsewhere (decode.ts); this module only says where things
 * are and what the tags hold.
 */
import { TileDecodeError } from "../errors.js";

/** TIFF field types and their sizes in bytes (TIFF 6.0 + BigTIFF). */
const TYPE_SIZE: Readonly<Record<number, number>> = {
  1: 1, // BYTE
  2: 1, // ASCII
  3: 2, // SHORT
  4: 4, // LONG
  5: 8, // RATIONAL
  6: 1, // SBYTE
  7: 1, // UNDEFINED
  8: 2, // SSHORT
  9: 4, // SLONG
  10: 8, // SRATIONAL
  11: 4, // FLOAT
  12: 8, // DOUBLE
  13: 4, // IFD
  16: 8, // LONG8
  17: 8, // SLONG8
  18: 8, // IFD8
};

/** More IFDs than any real file carries (GDAL COGs have a handful of overviews and masks). */
const MAX_IFDS = 1024;
/** Tag values we materialise as numbers: strip/tile tables of huge images stay far below this. */
const MAX_VALUES = 16_000_000;

/** One IFD entry: where its value bytes are in the file, already bounds-checked. */
export interface TiffEntry {
  readonly tag: number;
  readonly type: number;
  readonly count: number;
  /** Absolute byte offset of the value (inline values point into the entry itself). */
  readonly valueOffset: number;
}

/** The structure of a TIFF file: byte order, flavour and the tags of its first image. */
export interface TiffStructure {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly littleEndian: boolean;
  readonly bigTiff: boolean;
  /** Number of IFDs in the (validated, acyclic) chain. */
  readonly ifdCount: number;
  /** Tags of IFD 0, the full-resolution image. */
  readonly entries: ReadonlyMap<number, TiffEntry>;
  /**
   * Tags of IFD 0 whose values lie outside the file, with the reason. Like libtiff, a broken tag nobody
   * reads is ignored; reading one (tagNumbers, tagString, tagBytes) fails with the reason.
   */
  readonly broken: ReadonlyMap<number, string>;
}

function fail(message: string, cause?: unknown): never {
  throw new TileDecodeError(`invalid TIFF: ${message}`, cause === undefined ? undefined : { cause });
}

/** Reads an unsigned integer of `size` bytes (1, 2, 4 or 8) at `offset`; 8-byte values must fit a double. */
function readUint(s: Pick<TiffStructure, "view" | "littleEndian">, offset: number, size: number): number {
  switch (size) {
    case 1:
      return s.view.getUint8(offset);
    case 2:
      return s.view.getUint16(offset, s.littleEndian);
    case 4:
      return s.view.getUint32(offset, s.littleEndian);
    default: {
      const v = s.view.getBigUint64(offset, s.littleEndian);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`64-bit value ${v} at byte ${offset} is out of range`);
      return Number(v);
    }
  }
}

/**
 * Parses and validates the TIFF header and IFD chain of `bytes`.
 * @throws TileDecodeError for anything that is not a well-formed TIFF structure.
 */
export function parseTiffStructure(bytes: Uint8Array): TiffStructure {
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, shorter than a TIFF header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const order = view.getUint16(0, false);
  if (order !== 0x4949 && order !== 0x4d4d) fail("missing byte-order mark (II or MM)");
  const littleEndian = order === 0x4949;
  const version = view.getUint16(2, littleEndian);
  if (version !== 42 && version !== 43) fail(`unknown TIFF version ${version} (42 = TIFF, 43 = BigTIFF)`);
  const bigTiff = version === 43;
  const s = { view, littleEndian };
  let first: number;
  if (bigTiff) {
    if (bytes.byteLength < 16) fail("file is shorter than a BigTIFF header");
    const offsetSize = view.getUint16(4, littleEndian);
    if (offsetSize !== 8) fail(`BigTIFF offset size ${offsetSize}, expected 8`);
    first = readUint(s, 8, 8);
  } else {
    first = readUint(s, 4, 4);
  }
  if (first === 0) fail("no image file directory (first IFD offset is 0)");

  const entrySize = bigTiff ? 20 : 12;
  const countSize = bigTiff ? 8 : 2;
  const offSize = bigTiff ? 8 : 4;
  const headerSize = bigTiff ? 16 : 8;
  const visited = new Set<number>();
  let entries: Map<number, TiffEntry> | null = null;
  const broken = new Map<number, string>();
  let offset = first;
  while (offset !== 0) {
    if (visited.has(offset)) fail(`IFD chain loops back to byte ${offset}`);
    if (visited.size >= MAX_IFDS) fail(`more than ${MAX_IFDS} IFDs`);
    visited.add(offset);
    if (offset < headerSize || offset + countSize > bytes.byteLength)
      fail(`IFD ${visited.size - 1} at byte ${offset} lies outside the file (${bytes.byteLength} bytes)`);
    const n = readUint(s, offset, countSize);
    const end = offset + countSize + n * entrySize + offSize;
    if (n === 0) fail(`IFD ${visited.size - 1} at byte ${offset} has no entries`);
    if (end > bytes.byteLength)
      fail(`IFD ${visited.size - 1} at byte ${offset} (${n} entries) runs past the end of the file`);
    // Only IFD 0 is decoded; later IFDs (overviews, masks) are checked for structure only.
    if (entries === null) entries = readEntries(s, bytes.byteLength, offset + countSize, n, bigTiff, broken);
    offset = readUint(s, end - offSize, offSize);
  }
  if (entries === null) fail("no image file directory");
  return { bytes, view, littleEndian, bigTiff, ifdCount: visited.size, entries, broken };
}

function readEntries(
  s: Pick<TiffStructure, "view" | "littleEndian">,
  fileLength: number,
  start: number,
  n: number,
  bigTiff: boolean,
  broken: Map<number, string>,
): Map<number, TiffEntry> {
  const entries = new Map<number, TiffEntry>();
  const entrySize = bigTiff ? 20 : 12;
  const inline = bigTiff ? 8 : 4;
  for (let i = 0; i < n; i++) {
    const at = start + i * entrySize;
    const tag = readUint(s, at, 2);
    const type = readUint(s, at + 2, 2);
    const count = bigTiff ? readUint(s, at + 4, 8) : readUint(s, at + 4, 4);
    const size = TYPE_SIZE[type];
    // Unknown field types are skippable by the spec; a reader must ignore them, not fail.
    if (size === undefined) continue;
    const byteLength = count * size;
    let valueOffset: number;
    if (byteLength <= inline) valueOffset = at + (bigTiff ? 12 : 8);
    else {
      valueOffset = bigTiff ? readUint(s, at + 12, 8) : readUint(s, at + 8, 4);
      if (valueOffset + byteLength > fileLength) {
        const reason = `tag ${tag}: ${count} values at byte ${valueOffset} run past the end of the file (${fileLength} bytes)`;
        if (!entries.has(tag) && !broken.has(tag)) broken.set(tag, reason);
        continue;
      }
    }
    // The first occurrence wins, as in libtiff; a repeated tag is a broken writer, not a reason to fail.
    if (!entries.has(tag) && !broken.has(tag)) entries.set(tag, { tag, type, count, valueOffset });
  }
  return entries;
}

/** The entry of a tag, or null when absent; a tag whose value lies outside the file fails here. */
function entry(s: TiffStructure, tag: number): TiffEntry | null {
  const reason = s.broken.get(tag);
  if (reason !== undefined) fail(reason);
  return s.entries.get(tag) ?? null;
}

/** True when IFD 0 has the tag (even one whose value is broken: its presence decides the layout). */
export function hasTag(s: TiffStructure, tag: number): boolean {
  return s.entries.has(tag) || s.broken.has(tag);
}

/** Numeric values of a tag (RATIONALs as quotients), or null when the tag is absent. */
export function tagNumbers(s: TiffStructure, tag: number): number[] | null {
  const e = entry(s, tag);
  if (e === null) return null;
  if (e.type === 2) fail(`tag ${tag} holds text where numbers are expected`);
  if (e.count > MAX_VALUES) fail(`tag ${tag} has ${e.count} values, over the limit of ${MAX_VALUES}`);
  const size = TYPE_SIZE[e.type] ?? 1;
  const out = new Array<number>(e.count);
  const { view, littleEndian: le } = s;
  for (let i = 0; i < e.count; i++) {
    const at = e.valueOffset + i * size;
    switch (e.type) {
      case 1:
      case 7:
        out[i] = view.getUint8(at);
        break;
      case 6:
        out[i] = view.getInt8(at);
        break;
      case 3:
        out[i] = view.getUint16(at, le);
        break;
      case 8:
        out[i] = view.getInt16(at, le);
        break;
      case 4:
      case 13:
        out[i] = view.getUint32(at, le);
        break;
      case 9:
        out[i] = view.getInt32(at, le);
        break;
      case 5:
        out[i] = view.getUint32(at, le) / view.getUint32(at + 4, le);
        break;
      case 10:
        out[i] = view.getInt32(at, le) / view.getInt32(at + 4, le);
        break;
      case 11:
        out[i] = view.getFloat32(at, le);
        break;
      case 12:
        out[i] = view.getFloat64(at, le);
        break;
      case 17: {
        const v = view.getBigInt64(at, le);
        out[i] = Number(v);
        break;
      }
      default:
        out[i] = readUint(s, at, 8);
    }
  }
  return out;
}

/** The first numeric value of a tag, or `fallback` when absent or empty. */
export function tagNumber(s: TiffStructure, tag: number, fallback: number): number {
  const v = tagNumbers(s, tag);
  return v === null || v.length === 0 ? fallback : (v[0] ?? fallback);
}

/** Text of an ASCII tag (up to its first NUL), or null when absent. */
export function tagString(s: TiffStructure, tag: number): string | null {
  const e = entry(s, tag);
  if (e === null) return null;
  if (e.type !== 2 && e.type !== 1 && e.type !== 7) return null;
  const raw = s.bytes.subarray(e.valueOffset, e.valueOffset + e.count);
  const nul = raw.indexOf(0);
  return new TextDecoder("latin1").decode(nul >= 0 ? raw.subarray(0, nul) : raw);
}

/** Raw bytes of a tag's value (for JPEGTables), or null when absent. */
export function tagBytes(s: TiffStructure, tag: number): Uint8Array | null {
  const e = entry(s, tag);
  if (e === null) return null;
  const size = TYPE_SIZE[e.type] ?? 1;
  return s.bytes.subarray(e.valueOffset, e.valueOffset + e.count * size);
}
