/**
 * The k-NN benchmark's data sets, generated from a fixed seed so every side and every run sees the
 * same bytes: spectral-like features of 5 land-cover classes, d = 7 (6 reflectance bands + NDVI),
 * z-scored with the training mean/std as the classifier does, where each class is a mean spectrum
 * scaled by an illumination factor plus per-band noise (classes elongated and overlapping like real
 * ones); and an isotropic 5-component Gaussian mixture (no correlation for a kd-tree to exploit).
 *
 * Files per case, little-endian: `<name>.x.bin` (f8, N × 7), `<name>.y.bin` (i4, N),
 * `<name>.q.bin` (f8, queries × 7).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRandom, type Random } from "../../../shared/internal.js";

export const DIM = 7;
export const K = 5;
export const QUERIES = 100_000;
export const SIZES = [1_000, 5_000, 20_000] as const;

/** Mean reflectance of bands 1,2,3,4,5,7 for water, forest, crop, urban, bare soil (Landsat-like). */
const SPECTRA = [
  [0.06, 0.05, 0.035, 0.02, 0.012, 0.008],
  [0.03, 0.05, 0.03, 0.32, 0.15, 0.06],
  [0.05, 0.08, 0.07, 0.4, 0.26, 0.13],
  [0.1, 0.11, 0.12, 0.17, 0.21, 0.19],
  [0.12, 0.15, 0.2, 0.27, 0.34, 0.3],
] as const;
/** Uneven class priors, as in real scenes. */
const PRIORS = [0.1, 0.35, 0.3, 0.1, 0.15] as const;

function pickClass(rng: Random): number {
  let u = rng.next();
  for (let c = 0; c < PRIORS.length; c++) {
    u -= PRIORS[c] as number;
    if (u < 0) return c;
  }
  return PRIORS.length - 1;
}

/** `n` spectral samples (raw, unscaled) and their class ids 1..5. */
function spectralSamples(n: number, rng: Random): { x: Float64Array; y: Int32Array } {
  const x = new Float64Array(n * DIM);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = pickClass(rng);
    const mean = SPECTRA[c] as readonly number[];
    // Illumination and moisture scale a whole spectrum: the dominant, correlated variation.
    const g = 1 + 0.18 * rng.normal();
    for (let b = 0; b < 6; b++)
      x[i * DIM + b] = Math.max(
        0.001,
        (mean[b] as number) * g + (0.004 + 0.06 * (mean[b] as number)) * rng.normal(),
      );
    const red = x[i * DIM + 2] as number;
    const nir = x[i * DIM + 3] as number;
    x[i * DIM + 6] = (nir - red) / (nir + red);
    y[i] = c + 1;
  }
  return { x, y };
}

/** An isotropic Gaussian mixture: 5 unit-variance components with N(0, 3^2) centres. */
function isotropicSamples(n: number, rng: Random, centres: Float64Array): { x: Float64Array; y: Int32Array } {
  const x = new Float64Array(n * DIM);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = pickClass(rng);
    for (let j = 0; j < DIM; j++) x[i * DIM + j] = (centres[c * DIM + j] as number) + rng.normal();
    y[i] = c + 1;
  }
  return { x, y };
}

/** z-scores `x` in place with the mean and population std of `train`. */
function zScore(train: Float64Array, ...sets: Float64Array[]): void {
  const n = train.length / DIM;
  for (let j = 0; j < DIM; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += train[i * DIM + j] as number;
    const mean = s / n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += ((train[i * DIM + j] as number) - mean) ** 2;
    const std = Math.sqrt(ss / n) || 1;
    for (const set of [train, ...sets])
      for (let i = j; i < set.length; i += DIM) set[i] = ((set[i] as number) - mean) / std;
  }
}

/** One benchmark case as written to disk. */
export interface KnnCase {
  name: string;
  data: "spectral" | "isotropic";
  n: number;
}

/** Generates every case into `dir` and returns their names, in a fixed order. */
export function writeKnnCases(dir: string): KnnCase[] {
  const rng = createRandom("bench-knn");
  const centres = new Float64Array(5 * DIM);
  for (let i = 0; i < centres.length; i++) centres[i] = 3 * rng.normal();
  const datasets = [
    { data: "spectral" as const, make: (n: number) => spectralSamples(n, rng) },
    { data: "isotropic" as const, make: (n: number) => isotropicSamples(n, rng, centres) },
  ];
  const cases: KnnCase[] = [];
  for (const ds of datasets)
    for (const n of SIZES) {
      const train = ds.make(n);
      const q = ds.make(QUERIES).x;
      zScore(train.x, q);
      const name = `${ds.data}-${n}`;
      writeFileSync(join(dir, `${name}.x.bin`), new Uint8Array(train.x.buffer));
      writeFileSync(join(dir, `${name}.y.bin`), new Uint8Array(train.y.buffer));
      writeFileSync(join(dir, `${name}.q.bin`), new Uint8Array(q.buffer));
      cases.push({ name, data: ds.data, n });
    }
  return cases;
}
