/**
 * A small, fast, seeded pseudo-random generator for everything that must be reproducible: sample
 * archives, random tile orderings, test fixtures. sfc32 (Chris Doty-Humphrey's Small Fast Chaotic
 * generator, 128-bit state, passes PractRand) seeded through splitmix32, so that nearby seeds (1, 2, 3)
 * still start from unrelated states. Not for cryptography.
 */

/** A seeded stream of pseudo-random numbers. Every method advances the same stream. */
export interface Random {
  /** A float uniformly distributed in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** An unsigned 32-bit integer, uniformly distributed: the raw output for hot loops. */
  uint32(): number;
  /** An integer uniformly distributed in [0, n); `n` must be a positive integer <= 2^32. */
  int(n: number): number;
  /** A standard normal deviate (mean 0, standard deviation 1). */
  normal(): number;
  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T>(array: T[]): T[];
}

/**
 * Hashes a string to a 32-bit seed (FNV-1a over UTF-16 code units), so that seeds like "archive-7"
 * are as good as numbers.
 */
export function hashSeed(seed: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One splitmix32 step: a well-mixed 32-bit value from a counter, used only to seed the state. */
function splitmix32(state: number): [next: number, out: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/**
 * A seeded generator. Numbers are reduced to 32 bits (non-integers are hashed via their string
 * form so 1.5 and 1 differ); strings are hashed. The same seed always gives the same stream.
 * @throws RangeError from `int(n)` when n is not an integer in 1..2^32.
 */
export function createRandom(seed: number | string): Random {
  let s: number;
  if (typeof seed === "string") s = hashSeed(seed);
  else if (Number.isInteger(seed)) s = Number(BigInt.asUintN(32, BigInt(seed)));
  else s = hashSeed(String(seed));

  let a: number, b: number, c: number, d: number;
  [s, a] = splitmix32(s);
  [s, b] = splitmix32(s);
  [s, c] = splitmix32(s);
  [, d] = splitmix32(s);
  a |= 0;
  b |= 0;
  c |= 0;
  d |= 0;

  const u32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // Let the counter-driven state mix before the first output.
  for (let i = 0; i < 12; i++) u32();

  // Box–Muller yields two deviates per pair of uniforms; keep the second for the next call.
  let spare: number | null = null;

  const random: Random = {
    next: () => u32() / 4294967296,
    uint32: u32,
    int(n: number): number {
      if (!Number.isInteger(n) || n <= 0 || n > 4294967296)
        throw new RangeError(`int(n) needs an integer n in 1..2^32, got ${n}`);
      // Rejection sampling removes the modulo bias that `u32() % n` would have for large n.
      const limit = 4294967296 - (4294967296 % n);
      let x = u32();
      while (x >= limit) x = u32();
      return x % n;
    },
    normal(): number {
      if (spare !== null) {
        const v = spare;
        spare = null;
        return v;
      }
      // 1 - next() is in (0, 1], so the logarithm is finite.
      const u = 1 - u32() / 4294967296;
      const v = u32() / 4294967296;
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    shuffle<T>(array: T[]): T[] {
      for (let i = array.length - 1; i > 0; i--) {
        const j = random.int(i + 1);
        const tmp = array[i] as T;
        array[i] = array[j] as T;
        array[j] = tmp;
      }
      return array;
    },
  };
  return random;
}
