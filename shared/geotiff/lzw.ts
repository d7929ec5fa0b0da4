/**
 * TIFF LZW decoding (TIFF 6.0 §13: MSB-first codes of 9 to 12 bits, Clear = 256, EOI = 257, the code
 * width growing one code early as libtiff writes it).
 *
 * Why not only the WASM decoder: @developmentseed/lzw-tiff-decoder never returns on some corrupt
 * streams (a single flipped byte in a real GDAL-written strip is enough), and a decode on the main
 * thread cannot be interrupted. This decoder ends by construction: every loop turn consumes at least
 * nine input bits or stops, and output is capped at the block's size. It is also no slower: each table
 * entry is a (start, length) slice of the output already written, so emitting a string is a short copy
 * within one buffer, with no per-string allocation or reversal.
 */

const CLEAR = 256;
const EOI = 257;
const FIRST = 258;
const MAX_CODES = 4096;

/** Malformed LZW data (a code that is not yet in the table). */
export class LzwError extends Error {
  override readonly name = "LzwError";
}

/**
 * Decodes a TIFF LZW stream into at most `maxBytes` bytes. Stops at EOI, at the end of the input or when
 * the output is full (libtiff also stops filling a block there); returns the bytes produced.
 * @throws LzwError for a code that refers to a table entry not yet defined.
 */
export function decodeLzw(src: Uint8Array, maxBytes: number): Uint8Array {
  // libtiff's test for the pre-TIFF 6.0 ("compat") LSB-first variant, which no current writer produces.
  if (src.length >= 2 && src[0] === 0 && ((src[1] as number) & 1) === 1)
    throw new LzwError("old-style (pre-TIFF 6.0) LZW is not supported");
  const out = new Uint8Array(maxBytes);
  const start = new Int32Array(MAX_CODES);
  const length = new Int32Array(MAX_CODES);
  for (let i = 0; i < 256; i++) length[i] = 1;
  let next = FIRST;
  let width = 9;
  let prev = -1;
  let o = 0;
  // Bit reader: `bits` holds `count` unread bits, most significant first.
  let bits = 0;
  let count = 0;
  let i = 0;
  const n = src.length;
  while (o < maxBytes) {
    while (count < width && i < n) {
      bits = ((bits << 8) | (src[i++] as number)) >>> 0;
      count += 8;
    }
    if (count < width) break;
    count -= width;
    const code = (bits >>> count) & ((1 << width) - 1);
    bits &= (1 << count) - 1;
    if (code === EOI) break;
    if (code === CLEAR) {
      next = FIRST;
      width = 9;
      prev = -1;
      continue;
    }
    if (prev < 0) {
      // First code after a Clear: a literal.
      if (code > 255) throw new LzwError(`code ${code} after a clear code`);
      out[o++] = code;
      prev = code;
      continue;
    }
    const entryStart = o;
    if (code < next) {
      // Known string: a literal, or a slice of the output already written.
      if (code < 256) out[o++] = code;
      else {
        const s = start[code] as number;
        const len = Math.min(length[code] as number, maxBytes - o);
        // Long strings (flat areas) copy faster natively; short ones faster in a loop.
        if (len > 24) out.copyWithin(o, s, s + len);
        else for (let k = 0; k < len; k++) out[o + k] = out[s + k] as number;
        o += len;
      }
    } else if (code === next) {
      // The KwKwK case: the previous string followed by its own first byte.
      const s = prev < 256 ? -1 : (start[prev] as number);
      const len = prev < 256 ? 1 : (length[prev] as number);
      const first = prev < 256 ? prev : (out[s] as number);
      const room = maxBytes - o;
      if (prev < 256) {
        if (room > 0) out[o] = prev;
        if (room > 1) out[o + 1] = prev;
      } else {
        const copy = Math.min(len, room);
        for (let k = 0; k < copy; k++) out[o + k] = out[s + k] as number;
        if (len < room) out[o + len] = first;
      }
      o = Math.min(maxBytes, o + len + 1);
    } else {
      throw new LzwError(`code ${code} is beyond the table's ${next} entries`);
    }
    // New entry: the previous string plus the first byte of this one, i.e. the output slice that
    // starts where the previous string was written.
    if (next < MAX_CODES) {
      const prevLen = prev < 256 ? 1 : (length[prev] as number);
      start[next] = entryStart - prevLen;
      length[next] = prevLen + 1;
      next++;
      // Early change: the width grows when the next code to be assigned needs it, one code early.
      if (next + 1 >= 1 << width && width < 12) width++;
    }
    prev = code;
  }
  return o === maxBytes ? out : out.subarray(0, o);
}
