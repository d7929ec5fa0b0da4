/**
 * Hand-built TIFF bytes for decoder tests: exactly the tags a test asks for, in either byte order, so a
 * test can state one header fact (a DateTime, a GDAL metadata item, a pixel count far over budget)
 * without a real file or a writer's opinions in the way.
 */
import { deflateSync } from "node:zlib";

/** A TIFF field to write: numbers (SHORT 3, LONG 4, DOUBLE 12, ...) or text (ASCII 2). */
export interface TagSpec {
  readonly tag: number;
  readonly type: 2 | 3 | 4 | 11 | 12 | 16;
  readonly values: readonly number[] | string;
}

export interface TiffSpec {
  readonly width: number;
  readonly height: number;
  readonly bitsPerSample?: number;
  /** 1 unsigned, 2 signed, 3 float. */
  readonly sampleFormat?: number;
  readonly samplesPerPixel?: number;
  readonly planar?: 1 | 2;
  readonly compression?: number;
  /** Encoded blocks, in TIFF order. */
  readonly blocks: readonly Uint8Array[];
  /** Tile size; stripped when absent. */
  readonly tile?: { readonly width: number; readonly height: number };
  readonly rowsPerStrip?: number;
  readonly bigEndian?: boolean;
  /** Extra tags; they replace a generated tag with the same id. */
  readonly tags?: readonly TagSpec[];
}

const SIZE: Readonly<Record<number, number>> = { 2: 1, 3: 2, 4: 4, 11: 4, 12: 8, 16: 8 };

/** Builds a classic (32-bit offset) TIFF: header, then block data, then one IFD with its values. */
export function buildTiff(spec: TiffSpec): Uint8Array {
  const le = !spec.bigEndian;
  const spp = spec.samplesPerPixel ?? 1;
  const bits = spec.bitsPerSample ?? 8;
  const dataStart = 8;
  const offsets: number[] = [];
  let at = dataStart;
  for (const b of spec.blocks) {
    offsets.push(at);
    at += b.length;
  }
  const counts = spec.blocks.map((b) => b.length);
  const tiled = spec.tile !== undefined;
  const base: TagSpec[] = [
    { tag: 256, type: 4, values: [spec.width] },
    { tag: 257, type: 4, values: [spec.height] },
    { tag: 258, type: 3, values: new Array<number>(spp).fill(bits) },
    { tag: 259, type: 3, values: [spec.compression ?? 1] },
    { tag: 262, type: 3, values: [spp >= 3 ? 2 : 1] },
    { tag: 277, type: 3, values: [spp] },
    { tag: 284, type: 3, values: [spec.planar ?? 1] },
    { tag: 339, type: 3, values: new Array<number>(spp).fill(spec.sampleFormat ?? 1) },
  ];
  if (tiled) {
    base.push(
      { tag: 322, type: 4, values: [spec.tile.width] },
      { tag: 323, type: 4, values: [spec.tile.height] },
      { tag: 324, type: 4, values: offsets },
      { tag: 325, type: 4, values: counts },
    );
  } else {
    base.push(
      { tag: 273, type: 4, values: offsets },
      { tag: 278, type: 4, values: [spec.rowsPerStrip ?? spec.height] },
      { tag: 279, type: 4, values: counts },
    );
  }
  const byTag = new Map<number, TagSpec>();
  for (const t of [...base, ...(spec.tags ?? [])]) byTag.set(t.tag, t);
  const tags = [...byTag.values()].sort((a, b) => a.tag - b.tag);

  const ifdOffset = at + (at % 2);
  const ifdSize = 2 + tags.length * 12 + 4;
  let extra = ifdOffset + ifdSize;
  const encoded = tags.map((t) => {
    const bytes = encodeValues(t, le);
    const count = typeof t.values === "string" ? bytes.length : t.values.length;
    let valueAt = -1;
    if (bytes.length > 4) {
      valueAt = extra;
      extra += bytes.length + (bytes.length % 2);
    }
    return { t, bytes, count, valueAt };
  });
  const out = new Uint8Array(extra);
  const view = new DataView(out.buffer);
  out.set(le ? [0x49, 0x49] : [0x4d, 0x4d], 0);
  view.setUint16(2, 42, le);
  view.setUint32(4, ifdOffset, le);
  at = dataStart;
  for (const b of spec.blocks) {
    out.set(b, at);
    at += b.length;
  }
  view.setUint16(ifdOffset, tags.length, le);
  encoded.forEach(({ t, bytes, count, valueAt }, i) => {
    const e = ifdOffset + 2 + i * 12;
    view.setUint16(e, t.tag, le);
    view.setUint16(e + 2, t.type, le);
    view.setUint32(e + 4, count, le);
    if (valueAt < 0) out.set(bytes, e + 8);
    else {
      view.setUint32(e + 8, valueAt, le);
      out.set(bytes, valueAt);
    }
  });
  view.setUint32(ifdOffset + ifdSize - 4, 0, le);
  return out;
}

function encodeValues(t: TagSpec, le: boolean): Uint8Array {
  if (typeof t.values === "string") return new TextEncoder().encode(`${t.values}\u0000`);
  const size = SIZE[t.type] ?? 1;
  const out = new Uint8Array(t.values.length * size);
  const view = new DataView(out.buffer);
  t.values.forEach((v, i) => {
    const at = i * size;
    if (t.type === 3) view.setUint16(at, v, le);
    else if (t.type === 4) view.setUint32(at, v, le);
    else if (t.type === 11) view.setFloat32(at, v, le);
    else if (t.type === 12) view.setFloat64(at, v, le);
    else view.setBigUint64(at, BigInt(v), le);
  });
  return out;
}

/** Bytes of a typed array's samples in the given byte order. */
export function sampleBytes(
  samples: ArrayLike<number> & { BYTES_PER_ELEMENT: number },
  bigEndian = false,
): Uint8Array {
  const size = samples.BYTES_PER_ELEMENT;
  const out = new Uint8Array(samples.length * size);
  const view = new DataView(out.buffer);
  const isFloat = samples instanceof Float32Array || samples instanceof Float64Array;
  const signed =
    samples instanceof Int8Array || samples instanceof Int16Array || samples instanceof Int32Array;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i] as number;
    const at = i * size;
    if (isFloat) {
      if (size === 4) view.setFloat32(at, v, !bigEndian);
      else view.setFloat64(at, v, !bigEndian);
    } else if (size === 1) {
      if (signed) view.setInt8(at, v);
      else view.setUint8(at, v);
    } else if (size === 2) {
      if (signed) view.setInt16(at, v, !bigEndian);
      else view.setUint16(at, v, !bigEndian);
    } else if (signed) view.setInt32(at, v, !bigEndian);
    else view.setUint32(at, v, !bigEndian);
  }
  return out;
}

/** One zlib (deflate, compression 8) stream of `bytes`. */
export function deflateBlock(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(deflateSync(bytes));
}

/**
 * A TIFF LZW stream (MSB-first codes, early change, Clear at the start and whenever the table fills) of
 * `bytes`: the encoder libtiff implements, small enough to keep beside the tests.
 */
export function lzwBlock(bytes: Uint8Array): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let nbits = 0;
  let width = 9;
  const emit = (code: number): void => {
    acc = (acc << width) | code;
    nbits += width;
    while (nbits >= 8) {
      nbits -= 8;
      out.push((acc >>> nbits) & 0xff);
    }
    acc &= (1 << nbits) - 1;
  };
  let dict = new Map<string, number>();
  let next = 258;
  emit(256);
  let w = "";
  for (const b of bytes) {
    const wc = w + String.fromCharCode(b);
    if (w === "" || dict.has(wc) || wc.length === 1) {
      w = wc;
      continue;
    }
    emit(w.length === 1 ? w.charCodeAt(0) : (dict.get(w) as number));
    dict.set(wc, next++);
    // libtiff widens once the next free code no longer fits; its decoder, one entry behind, sees
    // that as the "early change".
    if (next > (1 << width) - 1 && width < 12) width++;
    if (next >= 4094) {
      emit(256);
      dict = new Map();
      next = 258;
      width = 9;
    }
    w = String.fromCharCode(b);
  }
  if (w !== "") emit(w.length === 1 ? w.charCodeAt(0) : (dict.get(w) as number));
  emit(257);
  if (nbits > 0) out.push((acc << (8 - nbits)) & 0xff);
  return new Uint8Array(out);
}
