/**
 * The catalogue of `lanemap` commands. Each command file exports a function that adds its command
 * to the program; this table names them with their one-line summary and loads a command's module
 * only when that command runs. `lanemap --help` thus loads no command at all (no DuckDB, NATS,
 * Express, Arrow...), and `lanemap views list` loads only what views needs.
 */
import type { Command } from "commander";

/** Each command file exports a function that adds its command to the program. */
export type RegisterCommand = (program: Command) => void;

/** One top-level command: its name, positional arguments, summary, and how to load it. */
export interface CommandEntry {
  readonly name: string;
  /** Positional arguments as commander writes them, e.g. "<tile>". */
  readonly args?: string;
  /** The one line shown by `lanemap --help` and as the command's own description. */
  readonly summary: string;
  readonly load: () => Promise<RegisterCommand>;
}

export const commands: readonly CommandEntry[] = [
  {
    name: "start",
    summary:
      "run the whole platform: embedded nats-server (unless NATS_URL), sample archive, model, batch, speed worker, serving, feeder",
    load: async () => (await import("./start.js")).registerStart,
  },
  {
    name: "config",
    summary: "print the configuration reference and the effective, validated configuration",
    load: async () => (await import("./config.js")).registerConfig,
  },
  {
    name: "generate",
    summary:
      "write a deterministic sample archive: GeoTIFF tiles (UTM 15N, Landsat-like reflectance), " +
      "truth rasters, training polygons and archive.json",
    load: async () => (await import("./generate.js")).registerGenerate,
  },
  {
    name: "archive",
    summary: "the master archive (raw tiles and their catalogue)",
    load: async () => (await import("./archive.js")).registerArchive,
  },
  {
    name: "train",
    summary: "train a k-NN model from GeoTIFF tiles and labels (GeoJSON polygons/points or a label raster)",
    load: async () => (await import("./train.js")).registerTrain,
  },
  {
    name: "labels",
    summary: "the versioned label set of the data directory: add GeoJSON labels, list, export, remove",
    load: async () => (await import("./labels.js")).registerLabels,
  },
  {
    name: "classify",
    args: "<tile>",
    summary:
      "classify a GeoTIFF tile with a model: writes a uint8 class raster (deflate, colour table, the " +
      "tile's own georeferencing tags, class names in <out>.aux.xml) and prints per-class pixels and areas as JSON",
    load: async () => (await import("./classify.js")).registerClassify,
  },
  {
    name: "info",
    args: "<tile>",
    summary:
      "what lanemap reads from a GeoTIFF: size, bands, sample type, nodata, scale/offset, CRS (EPSG, " +
      "WKT2, PROJJSON as PROJ reads it), geotransform, corners native and lon/lat, acquisition time " +
      "and its source; --json uses gdalinfo -json's field names",
    load: async () => (await import("./info.js")).registerInfo,
  },
  {
    name: "evaluate",
    summary:
      "accuracy against reference labels: the model itself, or (--holdout / --folds) models with its " +
      "features and k trained on part of the reference; prints OA, kappa, confusion matrix, PA/UA/F1 as JSON",
    load: async () => (await import("./evaluate.js")).registerEvaluate,
  },
  {
    name: "batch",
    summary: "the batch lane: rebuild and publish the batch view",
    load: async () => (await import("./batch.js")).registerBatch,
  },
  {
    name: "views",
    summary: "published batch view versions",
    load: async () => (await import("./views.js")).registerViews,
  },
  {
    name: "serve",
    summary: "serve the merged view over HTTP (JSON, GeoJSON, Arrow, PNG, GeoTIFF, STAC, SSE)",
    load: async () => (await import("./serve.js")).registerServe,
  },
  {
    name: "ingest",
    args: "<files...>",
    summary: "publish GeoTIFF tiles to the speed lane (JetStream stream LANEMAP_TILES)",
    load: async () => (await import("./ingest.js")).registerIngest,
  },
  {
    name: "speed",
    summary: "run a speed-lane worker: classify fresh tiles from JetStream into the live view",
    load: async () => (await import("./speed.js")).registerSpeed,
  },
  {
    name: "worker",
    summary:
      "run a worker for both lanes: the speed consumer and the batch work queue on one pool of threads, live tiles first",
    load: async () => (await import("./worker.js")).registerWorker,
  },
  {
    name: "model",
    summary:
      "the model registry (NATS, else the data directory): stored versions and the one both lanes apply",
    load: async () => (await import("./model.js")).registerModel,
  },
  {
    name: "dlq",
    summary: "dead letters of the speed lane: tiles that could not be classified, with the reason",
    load: async () => (await import("./dlq.js")).registerDlq,
  },
  {
    name: "ops",
    summary:
      "operator scripts: status, diff, expire, replay, repair-replicas, advance-ingest-stream; dlq, views and model administration",
    load: async () => (await import("./ops.js")).registerOps,
  },
];

/** The summary of command `name` (a command file's description, kept in this one table). */
export function commandSummary(name: string): string {
  const entry = commands.find((c) => c.name === name);
  if (!entry) throw new Error(`no command "${name}" in the catalogue`);
  return entry.summary;
}
