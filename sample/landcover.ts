/**
 * Synthetic land cover as a pure function of the seed and the world pixel position: terrain,
 * moisture and settlement fields (value noise) thresholded into classes, meandering rivers along the
 * zero line of a smooth field, lakes in the lowest ground, and rectangular field parcels of crop or
 * grass in the open land. Same seed and pixel, same class: tiles are seamless and reproducible.
 */
import { fbm, latticeValue, mixSalt, type PixelWindow } from "./noise.js";
import { CLASS_ID } from "./spectra.js";

/** A change to apply on top of the base land cover, for fresh acquisitions of a cell. */
export type Scenario = "none" | "flood" | "clearing";

/** Tunable thresholds, chosen so that every class covers a few per cent of a typical archive. */
const LAKE_LEVEL = -0.32; // elevation below which land is open water
const RIVER_HALF_WIDTH = 0.014; // |river field| below this is river
const RIVER_MAX_ELEVATION = 0.3; // rivers stay in the lowlands
const URBAN_LEVEL = 0.3; // settlement field above this is urban
const BARE_ELEVATION = 0.34; // high, rocky ground
const DRY_MOISTURE = -0.33; // dry ground without vegetation
const FOREST_MOISTURE = 0.04; // wet enough for forest
const FOREST_ELEVATION = 0.18; // hills stay forested
/** Field parcels: a brick pattern of PARCEL_W x PARCEL_H pixels. */
const PARCEL_W = 36;
const PARCEL_H = 26;

/** The fields land cover is made of, over one window. */
export interface LandFields {
  readonly elevation: Float32Array;
  readonly moisture: Float32Array;
  readonly settlement: Float32Array;
  readonly river: Float32Array;
}

/** Computes the base fields over a window for a seed. */
export function landFields(seed: number, win: PixelWindow): LandFields {
  return {
    elevation: fbm(win, mixSalt(seed, 1), [512, 256, 128, 64, 32, 16], 0.55),
    moisture: fbm(win, mixSalt(seed, 2), [384, 192, 96, 48, 24], 0.55),
    settlement: fbm(win, mixSalt(seed, 3), [256, 128, 64, 32, 16], 0.6),
    river: fbm(win, mixSalt(seed, 4), [1024, 512, 256, 128], 0.45),
  };
}

/** A value in [0, 1) for the field parcel that holds world pixel (gx, gy). */
function parcelValue(gx: number, gy: number, salt: number): number {
  const py = Math.floor(gy / PARCEL_H);
  // Offset alternate parcel rows by half a parcel, like bricks, so fields do not form a chessboard.
  const px = Math.floor((gx + (py & 1) * (PARCEL_W >> 1)) / PARCEL_W);
  return (latticeValue(px, py, salt) + 1) / 2;
}

/**
 * The class of every pixel of a window (row-major, ids of SAMPLE_CLASSES). `scenario` changes the
 * base cover: "flood" turns the lowest ground of the window and the river banks into water;
 * "clearing" turns forest parcels into bare ground.
 */
export function landCover(seed: number, win: PixelWindow, scenario: Scenario = "none"): Uint8Array {
  const f = landFields(seed, win);
  const n = win.width * win.height;
  const out = new Uint8Array(n);
  const cropSalt = mixSalt(seed, 5);
  let floodLevel = LAKE_LEVEL;
  let riverHalfWidth = RIVER_HALF_WIDTH;
  if (scenario === "flood") {
    // Water rises to the window's lowest 30 % of ground (at least 0.15 above the lake level), so a
    // flood is visible in any tile, and rivers burst their banks.
    const sorted = f.elevation.slice().sort();
    floodLevel = Math.max(LAKE_LEVEL + 0.15, sorted[Math.floor(n * 0.3)] ?? LAKE_LEVEL);
    riverHalfWidth = RIVER_HALF_WIDTH * 4;
  }
  const clearSalt = mixSalt(seed, 6);
  for (let y = 0, i = 0; y < win.height; y++) {
    const gy = win.y0 + y;
    for (let x = 0; x < win.width; x++, i++) {
      const gx = win.x0 + x;
      const e = f.elevation[i] ?? 0;
      const m = f.moisture[i] ?? 0;
      let c: number;
      if (e < floodLevel || (Math.abs(f.river[i] ?? 1) < riverHalfWidth && e < RIVER_MAX_ELEVATION))
        c = CLASS_ID.water;
      else if ((f.settlement[i] ?? 0) > URBAN_LEVEL && e < RIVER_MAX_ELEVATION) c = CLASS_ID.urban;
      else if (e > BARE_ELEVATION || m < DRY_MOISTURE) c = CLASS_ID.bare;
      else if (m > FOREST_MOISTURE || e > FOREST_ELEVATION) c = CLASS_ID.forest;
      // Wetter ground favours irrigated crops over pasture, parcel by parcel.
      else c = parcelValue(gx, gy, cropSalt) < 0.45 + m ? CLASS_ID.crop : CLASS_ID.grass;
      if (scenario === "clearing" && c === CLASS_ID.forest && parcelValue(gx, gy, clearSalt) < 0.6)
        c = CLASS_ID.bare;
      out[i] = c;
    }
  }
  return out;
}
