/**
 * Writing a whole sample archive: a W x H grid of tiles, their truth rasters, one training GeoJSON
 * and an archive.json that describes it all. Tiles are generated and written one at a time, so
 * memory stays that of one tile (plus a bounded polygon reservoir) whatever the grid size.
 */
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, LanemapError, createRandom } from "../shared/internal.js";
import {
  SAMPLE_BAND_NAMES,
  SAMPLE_BAND_WAVELENGTHS,
  SAMPLE_CLASSES,
  SAMPLE_NIR_BAND,
  SAMPLE_RED_BAND,
  SAMPLE_REFLECTANCE_SCALE,
  type SampleClassName,
} from "./spectra.js";
import {
  SAMPLE_EPSG,
  SAMPLE_NODATA,
  SAMPLE_ORIGIN,
  SAMPLE_PIXEL_SIZE,
  archiveAcquisition,
  checkSampleOptions,
  generateTile,
} from "./tile.js";
import { PolygonReservoir, findPatches, patchPolygon, trainingGeoJson } from "./training.js";

/** What archive to generate, and where. */
export interface ArchiveOptions {
  /** Output folder; created if needed. */
  readonly out: string;
  /** Tiles across and down (default 4 x 4). */
  readonly grid?: { readonly width: number; readonly height: number };
  /** Pixels per tile side (default 256). */
  readonly tileSize?: number;
  /** Seed (default 1): the same seed gives byte-identical files. */
  readonly seed?: number;
  /** Bands per tile, 1..6 (default 6). */
  readonly bands?: number;
  /**
   * Append a Landsat C2 QA_PIXEL band to every tile (default false): clouds bright and flagged in it
   * rather than nodata (sample/tile.ts `quality`).
   */
  readonly quality?: boolean;
  /** Training polygons kept per class (default 25). */
  readonly polygonsPerClass?: number;
  /**
   * Write into a non-empty folder (default false: refuse). Replaces tiles/, truth/, training.geojson
   * and archive.json; nothing else in the folder is touched.
   */
  readonly overwrite?: boolean;
  /** Called after each tile is written. */
  readonly onTile?: (done: number, total: number, cell: string) => void;
}

/** What was generated. */
export interface ArchiveSummary {
  readonly out: string;
  readonly seed: number;
  readonly grid: { readonly width: number; readonly height: number };
  readonly tileSize: number;
  readonly bands: number;
  readonly tiles: number;
  readonly pixels: number;
  /** Bytes written (tiles, truth, training and archive.json). */
  readonly bytes: number;
  /** Share of pixels per class, 0..1, over the whole archive (truth, clouds included). */
  readonly classShare: Readonly<Record<SampleClassName, number>>;
  /** Share of image pixels that are nodata (clouds), 0..1. */
  readonly nodataShare: number;
  /** Training polygons per class. */
  readonly polygons: Readonly<Record<SampleClassName, number>>;
  readonly elapsedMs: number;
}

/** The shape of OUT/archive.json. */
export interface ArchiveManifest {
  readonly version: 1;
  readonly generator: "lanemap sample";
  readonly seed: number;
  readonly grid: { readonly width: number; readonly height: number };
  readonly tileSize: number;
  readonly crs: { readonly epsg: number; readonly urn: string };
  /** North-west corner of tile (0, 0), in CRS units. */
  readonly origin: { readonly x: number; readonly y: number };
  readonly pixelSize: number;
  readonly bounds: {
    readonly minX: number;
    readonly minY: number;
    readonly maxX: number;
    readonly maxY: number;
  };
  readonly dtype: "uint16";
  readonly nodata: number;
  readonly scale: number;
  readonly bands: readonly { readonly index: number; readonly name: string; readonly wavelength: number }[];
  readonly redBand: number;
  readonly nirBand: number;
  /** 1-based QA_PIXEL band, when the tiles carry one. */
  readonly qaBand?: number;
  readonly classes: readonly { readonly id: number; readonly name: string; readonly color: string }[];
  readonly training: string;
  readonly tiles: readonly {
    readonly cell: string;
    readonly col: number;
    readonly row: number;
    readonly acquired: string;
    readonly path: string;
    readonly truth: string;
  }[];
}

/** The output folder holds files already and overwriting was not asked for. */
export class ArchiveExistsError extends LanemapError {
  readonly path: string;
  constructor(path: string) {
    super("ARCHIVE_EXISTS", `${path} is not empty; refusing to overwrite it`);
    this.path = path;
  }
}

const hex = (rgb: readonly number[]) => "#" + rgb.map((c) => c.toString(16).padStart(2, "0")).join("");

/** Fails unless `out` is absent or empty, or clears the generated parts when overwriting. */
async function prepareOut(out: string, overwrite: boolean): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") entries = [];
    else throw new ConfigError(`cannot use ${out} as the output folder`, { cause: err });
  }
  if (entries.length > 0 && !overwrite) throw new ArchiveExistsError(out);
  // Stale tiles of a larger earlier grid must not survive beside the new archive.
  await rm(join(out, "tiles"), { recursive: true, force: true });
  await rm(join(out, "truth"), { recursive: true, force: true });
  await mkdir(join(out, "tiles"), { recursive: true });
  await mkdir(join(out, "truth"), { recursive: true });
}

/**
 * Generates a sample archive into `options.out`: tiles/<cell>.tif, truth/<cell>.tif,
 * training.geojson and archive.json. Deterministic in its options; tiles are written one by one.
 * @throws ConfigError when an option is out of range.
 * @throws ArchiveExistsError when `out` is not empty and `overwrite` is not set.
 */
export async function generateArchive(options: ArchiveOptions): Promise<ArchiveSummary> {
  const t0 = performance.now();
  const grid = options.grid ?? { width: 4, height: 4 };
  const tileSize = options.tileSize ?? 256;
  const seed = options.seed ?? 1;
  const bandCount = options.bands ?? SAMPLE_BAND_NAMES.length;
  const perClass = options.polygonsPerClass ?? 25;
  checkSampleOptions({ seed, tileSize, bands: bandCount });
  for (const [name, v, max] of [
    ["grid width", grid.width, 9999],
    ["grid height", grid.height, 9999],
    ["polygons per class", perClass, 100000],
  ] as const)
    if (!Number.isInteger(v) || v < 1 || v > max)
      throw new ConfigError(`${name} must be an integer in 1..${max}, got ${v}`);
  await prepareOut(options.out, options.overwrite ?? false);

  const total = grid.width * grid.height;
  const classPixels = new Array<number>(SAMPLE_CLASSES.length + 1).fill(0);
  let nodata = 0;
  let bytes = 0;
  const polygonRnd = createRandom(`${seed}/training`);
  const reservoir = new PolygonReservoir(perClass, polygonRnd);
  const tiles: ArchiveManifest["tiles"][number][] = [];
  let done = 0;
  for (let row = 0; row < grid.height; row++)
    for (let col = 0; col < grid.width; col++) {
      const acquired = archiveAcquisition(seed, col, row);
      const tile = generateTile({
        seed,
        col,
        row,
        tileSize,
        bands: bandCount,
        acquired,
        quality: options.quality ?? false,
      });
      const path = `tiles/${tile.cell}.tif`;
      const truth = `truth/${tile.cell}.tif`;
      await writeFile(join(options.out, path), tile.bytes);
      await writeFile(join(options.out, truth), tile.truthBytes);
      bytes += tile.bytes.length + tile.truthBytes.length;
      tile.classCounts.forEach((n, c) => (classPixels[c] = (classPixels[c] ?? 0) + n));
      nodata += tile.nodataPixels;
      // Each tile draws from its own stream, so polygon shapes do not depend on earlier tiles.
      const tileRnd = createRandom(`${seed}/training/${tile.cell}`);
      for (const candidate of findPatches(tile.truth, tile.valid, tileSize, 2, tileRnd))
        reservoir.offer(patchPolygon(candidate, tile.cell, tile.geoTransform, tileRnd));
      tiles.push({ cell: tile.cell, col, row, acquired, path, truth });
      options.onTile?.(++done, total, tile.cell);
    }

  const polygons = reservoir.polygons();
  const training = JSON.stringify(trainingGeoJson(polygons, SAMPLE_EPSG)) + "\n";
  await writeFile(join(options.out, "training.geojson"), training);
  const span = tileSize * SAMPLE_PIXEL_SIZE;
  const manifest: ArchiveManifest = {
    version: 1,
    generator: "lanemap sample",
    seed,
    grid: { width: grid.width, height: grid.height },
    tileSize,
    crs: { epsg: SAMPLE_EPSG, urn: `urn:ogc:def:crs:EPSG::${SAMPLE_EPSG}` },
    origin: { ...SAMPLE_ORIGIN },
    pixelSize: SAMPLE_PIXEL_SIZE,
    bounds: {
      minX: SAMPLE_ORIGIN.x,
      minY: SAMPLE_ORIGIN.y - grid.height * span,
      maxX: SAMPLE_ORIGIN.x + grid.width * span,
      maxY: SAMPLE_ORIGIN.y,
    },
    dtype: "uint16",
    nodata: SAMPLE_NODATA,
    scale: SAMPLE_REFLECTANCE_SCALE,
    bands: SAMPLE_BAND_NAMES.slice(0, bandCount).map((name, i) => ({
      index: i + 1,
      name,
      wavelength: SAMPLE_BAND_WAVELENGTHS[i] ?? 0,
    })),
    redBand: SAMPLE_RED_BAND,
    nirBand: SAMPLE_NIR_BAND,
    ...(options.quality ? { qaBand: bandCount + 1 } : {}),
    classes: SAMPLE_CLASSES.map((c) => ({ id: c.id, name: c.name, color: hex(c.color) })),
    training: "training.geojson",
    tiles,
  };
  const manifestText = JSON.stringify(manifest, null, 2) + "\n";
  await writeFile(join(options.out, "archive.json"), manifestText);
  bytes += Buffer.byteLength(training) + Buffer.byteLength(manifestText);

  const pixels = total * tileSize * tileSize;
  const byName = <V>(f: (id: number) => V) =>
    Object.fromEntries(SAMPLE_CLASSES.map((c) => [c.name, f(c.id)])) as Record<SampleClassName, V>;
  return {
    out: options.out,
    seed,
    grid: { width: grid.width, height: grid.height },
    tileSize,
    bands: bandCount,
    tiles: total,
    pixels,
    bytes,
    classShare: byName((id) => (classPixels[id] ?? 0) / pixels),
    nodataShare: nodata / pixels,
    polygons: byName((id) => polygons.filter((p) => p.classId === id).length),
    elapsedMs: performance.now() - t0,
  };
}
