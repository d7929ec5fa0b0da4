/**
 * Value noise as a function of world pixel coordinates: a seeded random value on the corners of a
 * lattice, smoothly interpolated in between, summed over octaves (fractional Brownian motion).
 * Because it depends only on the world position and the seed, a field computed tile by tile is
 * seamless across tile edges, and any tile can be regenerated alone.
 */

/** Mixes integers into a 32-bit salt (the seed, a field name, an octave). */
export function mixSalt(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h ^= p | 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** A pseudo-random value in [-1, 1) for lattice point (ix, iy) under `salt`. */
export function latticeValue(ix: number, iy: number, salt: number): number {
  let h = Math.imul(ix | 0, 0x27d4eb2d) ^ Math.imul(iy | 0, 0x165667b1) ^ salt;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2147483648 - 1;
}

/** A window of world pixels: top-left world pixel and size. */
export interface PixelWindow {
  readonly x0: number;
  readonly y0: number;
  readonly width: number;
  readonly height: number;
}

/** Per axis: the lattice cell of each pixel centre (relative to the first) and the smoothed weight. */
function axis(
  start: number,
  length: number,
  cell: number,
): { first: number; index: Int32Array; weight: Float32Array } {
  const first = Math.floor((start + 0.5) / cell);
  const index = new Int32Array(length);
  const weight = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const u = (start + i + 0.5) / cell;
    const k = Math.floor(u);
    const t = u - k;
    index[i] = k - first;
    // Smoothstep: the field and its slope are continuous across lattice lines.
    weight[i] = t * t * (3 - 2 * t);
  }
  return { first, index, weight };
}

/** Adds `amplitude` x one octave of value noise with lattice spacing `cell` pixels to `out`. */
function addOctave(out: Float32Array, win: PixelWindow, cell: number, amplitude: number, salt: number): void {
  const ax = axis(win.x0, win.width, cell);
  const ay = axis(win.y0, win.height, cell);
  const nx = (ax.index[win.width - 1] ?? 0) + 2;
  const ny = (ay.index[win.height - 1] ?? 0) + 2;
  const lattice = new Float32Array(nx * ny);
  for (let j = 0; j < ny; j++)
    for (let i = 0; i < nx; i++)
      lattice[j * nx + i] = amplitude * latticeValue(ax.first + i, ay.first + j, salt);
  for (let y = 0; y < win.height; y++) {
    const row = (ay.index[y] ?? 0) * nx;
    const ty = ay.weight[y] ?? 0;
    const o = y * win.width;
    for (let x = 0; x < win.width; x++) {
      const k = row + (ax.index[x] ?? 0);
      const tx = ax.weight[x] ?? 0;
      const a = lattice[k] ?? 0;
      const b = lattice[k + 1] ?? 0;
      const c = lattice[k + nx] ?? 0;
      const d = lattice[k + nx + 1] ?? 0;
      const top = a + (b - a) * tx;
      const bottom = c + (d - c) * tx;
      out[o + x] = (out[o + x] ?? 0) + top + (bottom - top) * ty;
    }
  }
}

/**
 * Fractional Brownian motion over a window: octaves with lattice spacings `cells` (pixels, coarse
 * first) and amplitudes halving each octave, normalised so the result lies in [-1, 1].
 */
export function fbm(win: PixelWindow, salt: number, cells: readonly number[], gain = 0.5): Float32Array {
  const out = new Float32Array(win.width * win.height);
  let amplitude = 1;
  let total = 0;
  for (const [octave, cell] of cells.entries()) {
    addOctave(out, win, cell, amplitude, mixSalt(salt, octave, cell));
    total += amplitude;
    amplitude *= gain;
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] ?? 0) / total;
  return out;
}
