import { readFile, readdir, stat } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import { userInfo } from "node:os";
import type { Command } from "commander";
import {
  LanemapError,
  TrainingDataError,
  applyPam,
  crsFromEpsg,
  createFeatureSpec,
  parseQualityOption,
  decodeGeoTiff,
  featureNames,
  parseConfig,
  DEFAULT_MAX_SAMPLES_PER_FEATURE,
  balanceSamples,
  collectSamples,
  parseExtras,
  readPamSidecar,
  resolveEpsgCrs,
  saveModelFile,
  type Bounds,
  type Crs,
  type FeatureExtra,
  type FeatureSpec,
  type QualitySpec,
  type LabelCoverage,
  type Raster,
  type TrainingLabels,
  type ClassCatalogue,
  type Model,
} from "../../../shared/index.js";
import { geoJsonCrs, modelFromSamples } from "../../../shared/internal.js";
import { UsageError, positiveInt } from "../usage.js";
import { withModelRegistry } from "../../platform/models.js";
import { commandSummary } from "./index.js";

const TIFF = /\.(tif|tiff|gtif)$/i;

/** A decoded tile and where it came from. */
export interface LoadedTile {
  readonly path: string;
  readonly raster: Raster;
}

async function statOrNull(path: string): Promise<Awaited<ReturnType<typeof stat>> | null> {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

/**
 * The GeoTIFF tiles of a folder (.tif, .tiff, .gtif; sorted by name, as the peer sorts them), or the
 * one file given.
 * @throws UsageError when the path does not exist or holds no tile.
 */
export async function listTiles(option: string, path: string | undefined): Promise<string[]> {
  if (!path) throw new UsageError(`${option} <dir> is required`);
  const s = await statOrNull(path);
  if (s === null) throw new UsageError(`${option}: ${path} does not exist`);
  if (s.isFile()) return [path];
  const names = (await readdir(path)).filter((n) => TIFF.test(n)).sort();
  if (names.length === 0) throw new UsageError(`${option}: no GeoTIFF tiles (.tif, .tiff, .gtif) in ${path}`);
  return names.map((n) => join(path, n));
}

/** Reads and decodes one GeoTIFF within the configured pixel budget; errors name the file. */
export async function readRaster(path: string): Promise<Raster> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    // The file's .aux.xml (GDAL PAM) band nodata/scale/offset apply as GDAL applies them.
    const pam = await readPamSidecar(path);
    return applyPam(await decodeGeoTiff(bytes, { maxPixels: parseConfig().maxPixels }), pam);
  } catch (err) {
    // The same code and message, prefixed with the file: the CLI prints one line naming both.
    if (err instanceof LanemapError)
      throw new LanemapError(err.code, `${basename(path)}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Reads every tile of `--tiles`. */
export async function readTiles(option: string, path: string | undefined): Promise<LoadedTile[]> {
  const paths = await listTiles(option, path);
  const tiles: LoadedTile[] = [];
  for (const p of paths) tiles.push({ path: p, raster: await readRaster(p) });
  return tiles;
}

/** Parses "1=forest,2=water" into a names map for label raster values. */
export function parseLabelNames(value: string | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const item of value.split(",")) {
    const m = /^\s*(-?\d+)\s*=\s*(.+?)\s*$/.exec(item);
    if (!m) throw new UsageError(`--label-names must look like 1=forest,2=water; "${item}" does not`);
    out[String(Number(m[1]))] = m[2] as string;
  }
  return out;
}

/** Parses "EPSG:32615" (or "32615") into a CRS. */
export function parseCrsOption(value: string | undefined): Crs | undefined {
  if (value === undefined) return undefined;
  const m = /^(?:EPSG:)?(\d+)$/i.exec(value.trim());
  if (!m) throw new UsageError(`--crs must look like EPSG:32615, got "${value}"`);
  try {
    return crsFromEpsg(Number(m[1]));
  } catch (err) {
    throw new UsageError(`--crs: ${(err as Error).message}`, { cause: err });
  }
}

/** The bounding box of every coordinate pair in a GeoJSON value, or null when it has none. */
function geoJsonBounds(value: unknown): Bounds | null {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  const walk = (v: unknown): void => {
    if (!Array.isArray(v)) {
      if (v !== null && typeof v === "object")
        for (const [k, child] of Object.entries(v)) if (k !== "properties" && k !== "crs") walk(child);
      return;
    }
    if (v.length >= 2 && typeof v[0] === "number" && typeof v[1] === "number") {
      if (!Number.isFinite(v[0]) || !Number.isFinite(v[1])) return;
      minX = Math.min(minX, v[0]);
      maxX = Math.max(maxX, v[0]);
      minY = Math.min(minY, v[1]);
      maxY = Math.max(maxY, v[1]);
      return;
    }
    for (const child of v) walk(child);
  };
  walk(value);
  return minX <= maxX ? { minX, minY, maxX, maxY } : null;
}

/**
 * The CRS of GeoJSON label coordinates (its legacy `crs` member, else --crs, else WGS 84) as PROJ reads
 * it, with proj4js checked against PROJ over the labels' own bounding box: labels are reprojected
 * into each tile's CRS by the same engine that read the tile.
 * @throws TrainingDataError when PROJ cannot transform the labels' CRS.
 */
async function labelsCrs(geojson: unknown, option: Crs | undefined): Promise<Crs | undefined> {
  const named = geoJsonCrs(geojson) ?? option;
  if (named === undefined || named.epsg === null || named.epsg === 4326) return named;
  try {
    return await resolveEpsgCrs(named.epsg, geoJsonBounds(geojson));
  } catch (err) {
    throw new TrainingDataError(`the labels' CRS cannot be used: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Training labels from a file: GeoJSON (.geojson, .json) or a label raster (.tif, .tiff, .gtif).
 * @throws UsageError for a missing file or an unknown extension; TrainingDataError for bad GeoJSON.
 */
export async function readLabels(
  option: string,
  path: string | undefined,
  opts: { classProperty?: string; labelNames?: string; crs?: string },
): Promise<TrainingLabels> {
  if (!path) throw new UsageError(`${option} <labels.geojson|labels.tif> is required`);
  const s = await statOrNull(path);
  if (s === null || !s.isFile()) throw new UsageError(`${option}: ${path} is not a file`);
  const ext = extname(path).toLowerCase();
  if (ext === ".geojson" || ext === ".json") {
    let geojson: unknown;
    try {
      geojson = JSON.parse(await readFile(path, "utf8"));
    } catch (err) {
      throw new TrainingDataError(`${basename(path)} is not valid JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return {
      kind: "geojson",
      geojson,
      classProperty: opts.classProperty ?? "class",
      crs: await labelsCrs(geojson, parseCrsOption(opts.crs)),
    };
  }
  if (TIFF.test(path))
    return { kind: "raster", raster: await readRaster(path), names: parseLabelNames(opts.labelNames) };
  throw new UsageError(
    `${option}: ${path} must be GeoJSON (.geojson, .json) or a label raster (.tif, .tiff, .gtif)`,
  );
}

/** A 1-based band option, or the fallback. */
export function bandOption(name: string, value: string | undefined, fallback: number | null): number | null {
  if (value === undefined) return fallback;
  return positiveInt(name, value, 1);
}

interface TrainFlags {
  tiles?: string;
  train?: string;
  red?: string;
  nir?: string;
  green?: string;
  k?: string;
  classProperty?: string;
  extras?: string;
  quality?: string;
  labelNames?: string;
  crs?: string;
  out?: string;
  json?: boolean;
  strict?: boolean;
  maxPerFeature?: string;
  seed?: string;
  activate?: boolean;
  dataDir?: string;
  nats?: string;
}

/** The human summary's lines about labels left out (none when every label was used). */
export function coverageLines(c: LabelCoverage): string[] {
  const lines: string[] = [];
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (c.featuresOutside > 0)
    lines.push(`left out: ${c.featuresOutside} of ${plural(c.features, "feature")} outside every tile`);
  if (c.pointsOutside > 0)
    lines.push(`left out: ${c.pointsOutside} of ${plural(c.points, "point")} on no tile`);
  if (c.onNodata > 0)
    lines.push(`left out: ${c.onNodata} of ${plural(c.labelledPixels, "labelled pixel")} on nodata`);
  if ((c.maskedByQuality ?? 0) > 0)
    lines.push(
      `left out: ${c.maskedByQuality} of ${plural(c.labelledPixels, "labelled pixel")} masked by the quality band (clouds, shadow, ...)`,
    );
  if (c.classesWithoutSamples.length > 0)
    lines.push(
      `classes without samples (not in the model): ${c.classesWithoutSamples.map((n) => `"${n}"`).join(", ")}`,
    );
  return lines;
}

/** Who trains, for the registry entry: the OS user running the CLI. */
function trainer(): string {
  try {
    return `${userInfo().username} (lanemap train)`;
  } catch {
    return "lanemap train";
  }
}

/** `lanemap train`: a model from tiles and labelled polygons, points or a label raster. */
export function registerTrain(program: Command): void {
  program
    .command("train")
    .description(commandSummary("train"))
    .option("--tiles <dir>", "folder of GeoTIFF tiles (or one tile)")
    .option("--train <file>", "labels: GeoJSON (.geojson) or a label raster aligned with a tile (.tif)")
    .option("--red <band>", "1-based red band (default 3 with 4+ bands)")
    .option("--nir <band>", "1-based near-infrared band (default 4 with 4+ bands)")
    .option("--green <band>", "1-based green band (needed by the ndwi extra)")
    .option("--k <n>", "neighbours", "5")
    .option("--class-property <name>", "GeoJSON property holding the class name", "class")
    .option("--extras <list>", "extra features: ndwi, mean3x3[:feature], std3x3[:feature] (comma-separated)")
    .option(
      "--quality <band:kind[:mask]>",
      "quality band read for a mask, never a feature: 7:landsat-c2-qa-pixel[:cloud+cloud-shadow...] or 13:sentinel2-scl[:3+8+9+10]",
    )
    .option("--label-names <map>", "class names of label raster values, e.g. 1=forest,2=water")
    .option("--crs <EPSG:code>", "CRS of GeoJSON coordinates without a crs member (default EPSG:4326)")
    .option("--out <model.json>", "also (or only) write the model to this file")
    .option(
      "--activate",
      "store the model in the data directory's model registry and make it the active model of both lanes " +
        "(the first model stored is activated even without it)",
    )
    .option(
      "--data-dir <dir>",
      "store the model in this data directory's registry (default with --activate: LANEMAP_DATA_DIR, else ./data)",
    )
    .option(
      "--nats <url>",
      "registry in NATS (default NATS_URL, else the embedded server of `lanemap start`; without one, files)",
    )
    .option("--json", "print the summary as JSON")
    .option(
      "--max-per-feature <n>",
      "use at most this many samples of one label feature, a seeded random subsample (default: every " +
        `sample, as scikit-learn and the peer do; the web map's training jobs use ${DEFAULT_MAX_SAMPLES_PER_FEATURE})`,
    )
    .option("--seed <n>", "seed of the --max-per-feature subsample", "1")
    .option(
      "--strict",
      "refuse the labels when any feature lies outside every tile or a class ends without a sample",
    )
    .action(async (flags: TrainFlags) => {
      const intoRegistry = flags.activate === true || flags.dataDir !== undefined;
      if (!flags.out && !intoRegistry)
        throw new UsageError(
          "--out <model.json> is required (or --activate / --data-dir to store it in the data directory's registry)",
        );
      if (flags.out) {
        const outDir = await statOrNull(dirname(resolve(flags.out)));
        if (outDir === null || !outDir.isDirectory())
          throw new UsageError(`--out: the folder of ${flags.out} does not exist`);
      }
      const k = positiveInt("--k", flags.k, 5);
      let extras: FeatureExtra[];
      try {
        extras = flags.extras === undefined ? [] : parseExtras(flags.extras);
      } catch (err) {
        throw new UsageError(`--extras: ${(err as Error).message}`, { cause: err });
      }
      const labels = await readLabels("--train", flags.train, flags);
      const tiles = await readTiles("--tiles", flags.tiles);
      const first = tiles[0] as LoadedTile;
      const bandCount = first.raster.bands.length;
      for (const t of tiles)
        if (t.raster.bands.length !== bandCount)
          throw new UsageError(
            `--tiles: ${basename(t.path)} has ${t.raster.bands.length} bands, ${basename(first.path)} has ${bandCount}; a model needs tiles of one layout`,
          );
      const fallbackRed = bandCount >= 4 ? 3 : null;
      const fallbackNir = bandCount >= 4 ? 4 : null;
      const red = bandOption("--red", flags.red, fallbackRed);
      const nir = bandOption("--nir", flags.nir, fallbackNir);
      if (red === null || nir === null)
        throw new UsageError(
          `--red and --nir are required for tiles with ${bandCount} band${bandCount === 1 ? "" : "s"}`,
        );
      const green = bandOption("--green", flags.green, null);
      if (extras.some((e) => e.kind === "ndwi") && green === null)
        throw new UsageError("--extras ndwi needs --green <band>");
      let quality: QualitySpec | undefined;
      try {
        quality = flags.quality === undefined ? undefined : parseQualityOption(flags.quality);
      } catch (err) {
        throw new UsageError(`--quality: ${(err as Error).message}`, { cause: err });
      }
      let spec: FeatureSpec;
      try {
        spec = createFeatureSpec(bandCount, { red, nir, green, extras, ...(quality ? { quality } : {}) });
      } catch (err) {
        throw new UsageError((err as Error).message, { cause: err });
      }
      // A file of labels is the analyst's deliberate sample: keep every pixel unless asked (the peer,
      // rasterio + scikit-learn, does). Drawn polygons in the web map are capped by the training job.
      const maxPerFeature = positiveInt("--max-per-feature", flags.maxPerFeature, Number.MAX_SAFE_INTEGER);
      const seed = Number(flags.seed ?? "1");
      if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got "${flags.seed}"`);
      const { samples, warnings } = balanceSamples(
        collectSamples(
          tiles.map((t) => t.raster),
          labels,
          spec,
          tiles.map((t) => basename(t.path)),
          { strict: flags.strict === true },
        ),
        { maxPerFeature, seed },
      );
      const train = (catalogue?: ClassCatalogue) =>
        modelFromSamples(samples, {
          features: spec,
          k,
          source: basename(flags.train as string),
          ...(catalogue ? { catalogue } : {}),
        });
      const { coverage } = samples;
      let model: Model;
      let stored: { backend: string; created: boolean; activated: boolean; revision: number | null } | null =
        null;
      if (intoRegistry) {
        const config = parseConfig(
          flags.dataDir ? { ...process.env, LANEMAP_DATA_DIR: flags.dataDir } : process.env,
        );
        // Class ids come from the data directory's catalogue: a name keeps its id across trainings.
        const out = await withModelRegistry(config, flags.nats, "lanemap-train", async (registry) => {
          const trained = train(await registry.classes());
          const { created } = await registry.put(trained, { trainedBy: trainer() });
          // The first model of a data directory is activated: there is nothing else to apply.
          const activate = flags.activate === true || (await registry.active()) === null;
          const pointer = activate ? await registry.activate(trained.version) : null;
          return {
            model: trained,
            stored: {
              backend: registry.backend,
              created,
              activated: pointer !== null,
              revision: pointer?.revision ?? null,
            },
          };
        });
        model = out.model;
        stored = out.stored;
      } else model = train();
      if (flags.out) await saveModelFile(flags.out, model);
      const summary = {
        model: model.version,
        out: flags.out ?? null,
        registry: stored?.backend ?? null,
        activated: stored?.activated ?? false,
        tiles: tiles.length,
        samples: model.samples.y.length,
        k: model.k,
        features: featureNames(model.features),
        classes: model.classes.map((c) => ({
          id: c.id,
          name: c.name,
          colour: c.colour,
          samples: model.training.samplesPerClass[c.name],
        })),
        labels: coverage,
        warnings,
      };
      if (flags.json) {
        console.log(JSON.stringify(summary, null, 2));
        return;
      }
      const where = stored ? `the ${stored.backend} model registry` : null;
      console.log(`model ${model.version} -> ${[flags.out, where].filter(Boolean).join(", ")}`);
      if (stored?.activated)
        console.log(
          `active (revision ${stored.revision}) for both lanes: the next batch run applies it, running speed workers switch for their next tile`,
        );
      else if (stored)
        console.log(
          `stored, not active: \`lanemap model activate ${model.version}\` switches both lanes to it`,
        );
      console.log(`classes: ${summary.classes.map((c) => `${c.id} ${c.name} (${c.samples})`).join(", ")}`);
      console.log(
        `samples: ${summary.samples} from ${tiles.length} tile${tiles.length === 1 ? "" : "s"}; k = ${k}; features: ${summary.features.join(", ")}`,
      );
      for (const line of coverageLines(coverage)) console.log(line);
      for (const w of warnings) console.error(`warning: ${w}`);
    });
}
