/**
 * Faster block decoders for geotiff.js, registered with its `addDecoder` so that both geotiff.js's own
 * `readRasters` and lanemap's decoder (decode.ts, which asks geotiff.js's registry for a decoder) use
 * them. geotiff.js's stock codecs (pako for deflate, plain JS for LZW and PackBits) are several times
 * slower than node:zlib and lanemap's LZW decoder (figures in test/bench/core/decode.ts). Each decoder only overrides `decodeBlock`, so geotiff.js's `BaseDecoder.decode` still applies
 * the horizontal (2) and floating-point (3) predictors when geotiff.js's own `readRasters` uses them.
 * lanemap's decoder (decode.ts) calls `decodeBlock` and undoes predictors itself (blocks.ts), which is
 * also right for big-endian files.
 *
 * Every decoder here caps its output at the block's expected size: a fuzzed stream that inflates to
 * gigabytes is cut off (and reported) instead of exhausting memory.
 */
import { BaseDecoder, addDecoder } from "geotiff";
import { inflateSync } from "node:zlib";
import { decodeLzw } from "./lzw.js";

/** Parameters geotiff.js hands a decoder (BaseDecoderParameters, plus what lanemap adds). */
export interface BlockParameters {
  tileWidth: number;
  tileHeight: number;
  predictor: number;
  bitsPerSample: number | ArrayLike<number>;
  planarConfiguration: number;
  samplesPerPixel?: number;
}

/**
 * Decoded size of one full block. geotiff.js passes `samplesPerPixel` only for some codecs, so the
 * sample count comes from the BitsPerSample list (one entry per sample), or from lanemap's extra field.
 */
export function expectedBlockBytes(p: BlockParameters): number {
  // geotiff.js passes BitsPerSample as the tag's typed array; lanemap as a plain array.
  const raw = p.bitsPerSample as number | ArrayLike<number>;
  const bits = typeof raw === "number" ? [raw] : Array.from(raw);
  const samples = p.planarConfiguration === 2 ? 1 : (p.samplesPerPixel ?? bits.length);
  const rowBits = p.tileWidth * samples * (bits[0] ?? 8);
  return Math.ceil(rowBits / 8) * p.tileHeight;
}

/** An exact-length ArrayBuffer holding `view`'s bytes (zlib may hand back a slice of a pooled buffer). */
function ownBuffer(view: Uint8Array): ArrayBuffer {
  if (
    view.byteOffset === 0 &&
    view.byteLength === view.buffer.byteLength &&
    view.buffer instanceof ArrayBuffer
  )
    return view.buffer;
  // Not view.slice(): on a Buffer that is subarray() (shared memory, no copy), so .buffer would be
  // zlib's whole pool; Node 20 happened to put the output at offset 0 of it, Node 26 does not.
  return Uint8Array.prototype.slice.call(view).buffer as ArrayBuffer;
}

/** Deflate (8, 32946) through node:zlib, bounded to the block's decoded size. */
export class ZlibDeflateDecoder extends BaseDecoder {
  override decodeBlock(buffer: ArrayBufferLike): ArrayBuffer {
    const max = expectedBlockBytes(this.parameters as BlockParameters);
    return ownBuffer(inflateSync(new Uint8Array(buffer), { maxOutputLength: Math.max(1, max) }));
  }
}

/**
 * LZW (5) through lzw.ts. @developmentseed/lzw-tiff-decoder (WASM) was measured as fast, but it never
 * returns on some corrupt strips; lzw.ts ends by construction and is bounded to the block's size.
 */
export class LzwDecoder extends BaseDecoder {
  override decodeBlock(buffer: ArrayBufferLike): ArrayBuffer {
    const out = decodeLzw(new Uint8Array(buffer), expectedBlockBytes(this.parameters as BlockParameters));
    return ownBuffer(out);
  }
}

/**
 * PackBits (32773). geotiff.js's decoder pushes bytes one by one into a JS array with no bound; this
 * one writes into a block-sized buffer and stops at its end, as libtiff does.
 */
export class BoundedPackbitsDecoder extends BaseDecoder {
  override decodeBlock(buffer: ArrayBufferLike): ArrayBuffer {
    const src = new Uint8Array(buffer);
    const out = new Uint8Array(expectedBlockBytes(this.parameters as BlockParameters));
    let i = 0;
    let o = 0;
    while (i < src.length && o < out.length) {
      const n = src[i++] ?? 0;
      if (n < 128) {
        // Literal run of n + 1 bytes.
        const len = Math.min(n + 1, src.length - i, out.length - o);
        out.set(src.subarray(i, i + len), o);
        i += n + 1;
        o += len;
      } else if (n > 128) {
        // Replicate the next byte 257 - n times.
        if (i >= src.length) break;
        const v = src[i++] ?? 0;
        const len = Math.min(257 - n, out.length - o);
        out.fill(v, o, o + len);
        o += len;
      }
      // n = 128 is a no-op by the spec.
    }
    return o === out.length ? out.buffer : out.slice(0, o).buffer;
  }
}

let registered = false;

/**
 * Registers lanemap's decoders with geotiff.js (idempotent). geotiff.js's registry is global to the
 * module instance, so after this call every geotiff.js read in the process uses them.
 */
export function registerFastDecoders(): void {
  if (registered) return;
  registered = true;
  // preferWorker = false: lanemap runs its own worker pool (pool.ts); geotiff.js's pool is not used.
  addDecoder([8, 32946], () => Promise.resolve(ZlibDeflateDecoder), undefined, false);
  addDecoder(5, () => Promise.resolve(LzwDecoder), undefined, false);
  addDecoder(32773, () => Promise.resolve(BoundedPackbitsDecoder), undefined, false);
}
