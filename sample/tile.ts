/**
 * One generated tile: the land cover of its cell, rendered into Landsat-like surface reflectance with
 * spatial texture and sensor noise, clouds as nodata, encoded as a deflate GeoTIFF in UTM 15N; plus
 * its ground-truth class raster. A pure function of its request: any cell can be regenerated alone,
 * and a fresh acquisition of a cell (another time, a scenario) shares the cell's base land cover.
 */
import {
  ConfigError,
  cellKey,
  createRandom,
  encodeGeoTiff,
  hashSeed,
  type GeoTransform,
} from "../shared/internal.js";
import { landCover, type Scenario } from "./landcover.js";
import { fbm, latticeValue, mixSalt } from "./noise.js";
import {
  SAMPLE_BAND_NAMES,
  SAMPLE_CLASSES,
  SAMPLE_REFLECTANCE_SCALE,
  SAMPLE_SPECTRA,
  type ClassSpectrum,
} from "./spectra.js";

/**
 * Where generated archives sit: UTM zone 15N, 30 m pixels, north-west corner at about 17.7 N 93.6 W,
 * so a 32 x 32 archive of 256-pixel tiles (246 km square) covers most of Chiapas.
 */
export const SAMPLE_EPSG = 32615;
export const SAMPLE_PIXEL_SIZE = 30;
export const SAMPLE_ORIGIN = { x: 440000, y: 1960000 } as const;
/** Nodata value of every band of generated tiles (0 in all bands: cloud or gap). */
export const SAMPLE_NODATA = 0;
/** First acquisition of an archive; see {@link archiveAcquisition}. */
export const SAMPLE_BASE_TIME = Date.UTC(2024, 0, 15, 16, 40, 0);

/** Cloud field level above which a pixel is clouded: about 3 % of pixels on average. */
const CLOUD_LEVEL = 0.44;
/** The texture field's standard deviation is about 0.31; this brings it to about 1. */
const TEXTURE_GAIN = 3.25;
/**
 * Per-pixel deviation from the class mean, in class standard deviations: a part shared by all bands
 * (brightness), a spatially coherent part (texture) and an independent part per band (sensor noise).
 * The squares sum to about 1, so pixel spread matches the real class spread.
 */
const SHARED = 0.6;
const TEXTURE = 0.55;
const SENSOR = 0.58;

/** A tile to generate. */
export interface TileRequest {
  /** Archive seed: the same seed gives the same land cover everywhere. */
  readonly seed: number;
  readonly col: number;
  readonly row: number;
  /** Pixels per side (default 256). */
  readonly tileSize?: number;
  /** How many of the six bands to write (default 6: SR_B1..SR_B7; 4 = blue, green, red, NIR). */
  readonly bands?: number;
  /** Acquisition time, ISO 8601: it drives the clouds and sensor noise of this acquisition. */
  readonly acquired: string;
  /** A change to the base land cover (default "none"). */
  readonly scenario?: Scenario;
  /**
   * Append a Landsat Collection 2 QA_PIXEL band (default false). Clouds are then bright pixels
   * flagged in it (cloud, dilated cloud around them, cloud shadow cast south-east), as in a real
   * Level-2 scene, instead of nodata; `valid` is 0 where the band flags a pixel.
   */
  readonly quality?: boolean;
  /** Share of the tile under cloud, 0..1 (default: the field's own, about 3 %). */
  readonly cloudCover?: number;
}

/** Name of the QA band generated tiles carry with `quality`. */
export const SAMPLE_QA_BAND_NAME = "QA_PIXEL";
/** QA_PIXEL codes written (USGS LSDS-1619 Table 6-3): clear, cloud (high confidence), dilated, shadow. */
export const SAMPLE_QA = {
  clear: 1 << 6,
  cloud: (1 << 3) | (3 << 8),
  dilated: 1 << 1,
  shadow: 1 << 4,
} as const;
/** Cloud field margin flagged as dilated cloud around a cloud. */
const DILATE = 0.04;
/** Shadows fall this many pixels south-east of their cloud (a sun in the north-west). */
const SHADOW_SHIFT = 6;
/** Surface reflectance x 1e4 of a cloud top: bright and flat across the bands. */
const CLOUD_REFLECTANCE = 5200;

/** A generated tile: the image and truth GeoTIFFs and what an archive needs to know about them. */
export interface GeneratedTile {
  readonly cell: string;
  readonly col: number;
  readonly row: number;
  readonly acquired: string;
  readonly scenario: Scenario;
  readonly tileSize: number;
  readonly geoTransform: GeoTransform;
  /** The image: uint16 reflectance x 1e4, deflate, nodata 0. */
  readonly bytes: Uint8Array;
  /** The truth raster as a uint8 GeoTIFF with the class colour table. */
  readonly truthBytes: Uint8Array;
  /**
   * Class id per pixel (row-major). Truth describes the ground, also under clouds: mask it with
   * `valid` when scoring a classification of the image.
   */
  readonly truth: Uint8Array;
  /** 1 where the image has usable data, 0 where it is nodata (cloud) or flagged by the QA band. */
  readonly valid: Uint8Array;
  /** Pixels per class id (index 0 unused). */
  readonly classCounts: readonly number[];
  readonly nodataPixels: number;
}

/**
 * Checks the integer options every generator entry point shares.
 * @throws ConfigError naming the first option out of range.
 */
export function checkSampleOptions(o: { seed: number; tileSize: number; bands: number }): void {
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff)
    throw new ConfigError(`seed must be an integer in 0..4294967295, got ${o.seed}`);
  if (!Number.isInteger(o.tileSize) || o.tileSize < 16 || o.tileSize > 4096)
    throw new ConfigError(`tile size must be an integer in 16..4096, got ${o.tileSize}`);
  if (!Number.isInteger(o.bands) || o.bands < 1 || o.bands > SAMPLE_BAND_NAMES.length)
    throw new ConfigError(`bands must be an integer in 1..${SAMPLE_BAND_NAMES.length}, got ${o.bands}`);
}

/** The geotransform of a cell: tiles lie edge to edge, row 0 at the north. */
export function sampleGeoTransform(col: number, row: number, tileSize: number): GeoTransform {
  const span = tileSize * SAMPLE_PIXEL_SIZE;
  return [
    SAMPLE_ORIGIN.x + col * span,
    SAMPLE_PIXEL_SIZE,
    0,
    SAMPLE_ORIGIN.y - row * span,
    0,
    -SAMPLE_PIXEL_SIZE,
  ];
}

/**
 * The acquisition time of a cell in a generated archive. Like Landsat, a column is one orbital path:
 * its tiles are taken the same day, about a second apart along the track; neighbouring paths are
 * seven days apart in a 16-day cycle; each path gets a seeded jitter of up to two minutes.
 */
export function archiveAcquisition(seed: number, col: number, row: number): string {
  const day = (col * 7) % 16;
  const jitter = Math.floor(((latticeValue(col, 0, mixSalt(seed, 9)) + 1) / 2) * 120);
  return new Date(SAMPLE_BASE_TIME + day * 86_400_000 + (jitter + row) * 1000).toISOString();
}

let normalTable: Float32Array | undefined;
/**
 * 4096 standard normal deviates, standardised to mean 0 and variance 1 exactly. Looking one up with
 * 12 random bits is an order of magnitude cheaper than Box–Muller, and billions of samples are drawn.
 */
function normals(): Float32Array {
  if (normalTable) return normalTable;
  const rnd = createRandom("lanemap-sample-normals");
  const t = new Float64Array(4096).map(() => rnd.normal());
  const mean = t.reduce((a, b) => a + b, 0) / t.length;
  const sd = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / t.length);
  normalTable = Float32Array.from(t, (v) => (v - mean) / sd);
  return normalTable;
}

/** The spectra as a flat table indexed by class id, for the per-pixel loop. */
const SPECTRA_BY_ID: readonly (ClassSpectrum | undefined)[] = (() => {
  const out: (ClassSpectrum | undefined)[] = [undefined];
  for (const c of SAMPLE_CLASSES) out[c.id] = SAMPLE_SPECTRA[c.name];
  return out;
})();

/** The truth palette: 0 black (nodata), then each class's colour at its id. */
export const SAMPLE_TRUTH_COLORS: readonly (readonly [number, number, number])[] = (() => {
  const out: [number, number, number][] = [[0, 0, 0]];
  for (const c of SAMPLE_CLASSES) out[c.id] = [...c.color];
  return out;
})();

/**
 * Generates one tile (image and truth) of a cell. Deterministic in its request.
 * @throws ConfigError when an option, the time or the scenario is invalid.
 */
export function generateTile(request: TileRequest): GeneratedTile {
  const { seed, col, row, acquired } = request;
  const tileSize = request.tileSize ?? 256;
  const bandCount = request.bands ?? SAMPLE_BAND_NAMES.length;
  const scenario = request.scenario ?? "none";
  const quality = request.quality ?? false;
  checkSampleOptions({ seed, tileSize, bands: bandCount });
  const cover = request.cloudCover;
  if (cover !== undefined && !(cover >= 0 && cover <= 1))
    throw new ConfigError(`cloud cover must lie in 0..1, got ${cover}`);
  const cell = cellKey(col, row);
  const time = Date.parse(acquired);
  if (!Number.isFinite(time)) throw new ConfigError(`acquired must be an ISO 8601 time, got "${acquired}"`);
  if (scenario !== "none" && scenario !== "flood" && scenario !== "clearing")
    throw new ConfigError(`scenario must be none, flood or clearing, got "${String(scenario)}"`);

  const win = { x0: col * tileSize, y0: row * tileSize, width: tileSize, height: tileSize };
  const n = tileSize * tileSize;
  const truth = landCover(seed, win, scenario);
  // Clouds and sensor noise belong to the acquisition, not to the ground: they change with the time.
  // They do not depend on the scenario, so a scenario changes exactly the pixels whose class changes.
  const acquisitionSalt = mixSalt(seed, 7, hashSeed(acquired));
  const cloud = fbm(win, acquisitionSalt, [192, 96, 48, 24, 12]);
  const texture = fbm(win, mixSalt(seed, 8), [8, 4], 0.7);
  const rnd = createRandom(`${seed}/${cell}/${acquired}`);
  const table = normals();

  const bands = Array.from({ length: bandCount }, () => new Uint16Array(n));
  const qa = new Uint16Array(quality ? n : 0);
  const valid = new Uint8Array(n);
  const classCounts = new Array<number>(SAMPLE_CLASSES.length + 1).fill(0);
  let nodataPixels = 0;
  // A requested cover is the field's own quantile, so a tile is clouded by exactly that share.
  const level =
    cover === undefined
      ? CLOUD_LEVEL
      : cover >= 1
        ? -Infinity
        : (Float32Array.from(cloud).sort()[Math.min(n - 1, Math.floor((1 - cover) * n))] ?? CLOUD_LEVEL);
  for (let i = 0; i < n; i++) {
    const c = truth[i] ?? 0;
    classCounts[c] = (classCounts[c] ?? 0) + 1;
    const f = cloud[i] ?? 0;
    if (f > level) {
      nodataPixels++;
      // Without a QA band clouded pixels stay 0 in every band (nodata); with one they are bright.
      if (quality) {
        qa[i] = SAMPLE_QA.cloud;
        for (let b = 0; b < bandCount; b++)
          (bands[b] as Uint16Array)[i] = CLOUD_REFLECTANCE + (rnd.uint32() >>> 24);
      }
      continue;
    }
    let dim = 1;
    if (quality) {
      const x = i % tileSize;
      const y = (i - x) / tileSize;
      const sx = x - SHADOW_SHIFT;
      const sy = y - SHADOW_SHIFT;
      const shadow = sx >= 0 && sy >= 0 && (cloud[sy * tileSize + sx] ?? 0) > level;
      const near = f > level - DILATE;
      qa[i] = shadow
        ? SAMPLE_QA.shadow | (near ? SAMPLE_QA.dilated : 0)
        : near
          ? SAMPLE_QA.dilated
          : SAMPLE_QA.clear;
      if (shadow) dim = 0.45;
      if (shadow || near) nodataPixels++;
      else valid[i] = 1;
    } else valid[i] = 1;
    const spectrum = SPECTRA_BY_ID[c];
    if (!spectrum) continue;
    const common = SHARED * (table[rnd.uint32() >>> 20] ?? 0) + TEXTURE * TEXTURE_GAIN * (texture[i] ?? 0);
    for (let b = 0; b < bandCount; b++) {
      const z = common + SENSOR * (table[rnd.uint32() >>> 20] ?? 0);
      const v = Math.round(((spectrum.mean[b] ?? 0) + (spectrum.std[b] ?? 0) * z) * dim);
      // Valid reflectance is never 0, so 0 stays unambiguous nodata.
      (bands[b] as Uint16Array)[i] = v < 1 ? 1 : v > 65535 ? 65535 : v;
    }
  }

  const geoTransform = sampleGeoTransform(col, row, tileSize);
  const georef = { geoTransform, epsg: SAMPLE_EPSG, crsKind: "projected", nodata: SAMPLE_NODATA } as const;
  const bytes = encodeGeoTiff(
    {
      width: tileSize,
      height: tileSize,
      bands: quality ? [...bands, qa] : bands,
      ...georef,
      scale: [...new Array<number>(bandCount).fill(SAMPLE_REFLECTANCE_SCALE), ...(quality ? [1] : [])],
      offset: new Array<number>(bandCount + (quality ? 1 : 0)).fill(0),
      bandNames: [...SAMPLE_BAND_NAMES.slice(0, bandCount), ...(quality ? [SAMPLE_QA_BAND_NAME] : [])],
      acquired,
      description: `lanemap sample tile ${cell} (seed ${seed})`,
      metadata: { LANEMAP_CELL: cell, LANEMAP_SEED: String(seed), LANEMAP_SCENARIO: scenario },
    },
    // Horizontal differencing shrinks the smooth parts of reflectance; noise limits the gain.
    { predictor: 2 },
  );
  const truthBytes = encodeGeoTiff(
    {
      width: tileSize,
      height: tileSize,
      bands: [truth],
      ...georef,
      colorMap: SAMPLE_TRUTH_COLORS,
      description: `lanemap sample truth ${cell} (seed ${seed})`,
      metadata: {
        LANEMAP_CELL: cell,
        LANEMAP_SEED: String(seed),
        LANEMAP_SCENARIO: scenario,
        LANEMAP_CLASSES: SAMPLE_CLASSES.map((c) => `${c.id}=${c.name}`).join(","),
      },
    },
    { predictor: 1 },
  );
  return {
    cell,
    col,
    row,
    acquired,
    scenario,
    tileSize,
    geoTransform,
    bytes,
    truthBytes,
    truth,
    valid,
    classCounts,
    nodataPixels,
  };
}
