/**
 * Shared fixtures of the training tests: a small UTM 15N tile's origin with 30 m pixels (the Chiapas
 * scene's zone, EPSG:32615), label rectangles around its pixels, and Landsat Collection 2 QA_PIXEL
 * bits as USGS writes them (LSDS-1619 Table 6-3) — written out here, not taken from shared/, so the
 * tests check the product's bit table against the specification.
 */

/** The tile's upper-left corner (m, EPSG:32615); pixels are 30 m. */
export const X0 = 462405;
export const Y0 = 1741815;

/** A rectangle (ring) around the centres of columns c0..c1 and rows r0..r1, 5 m inside the pixels. */
export function rect(c0: number, c1: number, r0: number, r1: number): [number, number][] {
  const xa = X0 + c0 * 30 + 5;
  const xb = X0 + (c1 + 1) * 30 - 5;
  const ya = Y0 - r0 * 30 - 5;
  const yb = Y0 - (r1 + 1) * 30 + 5;
  return [
    [xa, ya],
    [xb, ya],
    [xb, yb],
    [xa, yb],
    [xa, ya],
  ];
}

/** QA_PIXEL bits (LSDS-1619 Table 6-3). */
export const FILL = 1 << 0;
export const DILATED = 1 << 1;
export const CIRRUS = 1 << 2;
export const CLOUD = 1 << 3;
export const SHADOW = 1 << 4;
export const SNOW = 1 << 5;
export const CLEAR = 1 << 6;
export const WATER = 1 << 7;
