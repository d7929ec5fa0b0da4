/**
 * Fixtures of the batch lane tests: a generated sample archive (shared/sample), registered into a
 * fresh data directory, and a model trained from its training polygons, saved in data/models/.
 * Everything is real: GeoTIFF files, catalogue JSON, DuckDB files, worker threads.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { StreamTileExecutor, addArchiveFolder, startBatchTaskWorker } from "../../batch/index.js";
import { ArchiveStore, readCurrentBatch } from "../../shared/adapters/archive/index.js";
import { DuckDbDatabase } from "../../shared/adapters/duckdb/index.js";
import {
  BATCH_VIEW_FILES,
  createFeatureSpec,
  decodeGeoTiff,
  parseConfig,
  saveModelFile,
  serializeModel,
  TilePool,
  trainModel,
  type CatalogueEntry,
  type Config,
  type Model,
} from "../../shared/index.js";
import { SAMPLE_NIR_BAND, SAMPLE_RED_BAND, generateArchive } from "../../sample/index.js";
import { projectRoot } from "../helpers/env.js";

/** A generated sample archive and the model trained on it, made once per test file. */
export interface SampleSet {
  readonly root: string;
  /** OUT of generateArchive: tiles/, truth/, training.geojson, archive.json. */
  readonly sampleDir: string;
  readonly tilesDir: string;
  readonly model: Model;
  /** The model artifact (outside any data dir). */
  readonly modelPath: string;
  /** Removes everything. */
  dispose(): void;
}

/** Generates a `width` x `height` archive of `tileSize` px tiles and trains a model from it. */
export async function makeSampleSet(
  options: { width?: number; height?: number; tileSize?: number; seed?: number } = {},
): Promise<SampleSet> {
  const root = mkdtempSync(join(tmpdir(), "lanemap-batch-"));
  const sampleDir = join(root, "sample");
  await generateArchive({
    out: sampleDir,
    grid: { width: options.width ?? 3, height: options.height ?? 3 },
    tileSize: options.tileSize ?? 64,
    seed: options.seed ?? 7,
  });
  const tilesDir = join(sampleDir, "tiles");
  const names = readdirSync(tilesDir)
    .filter((n) => n.endsWith(".tif"))
    .sort();
  const rasters = await Promise.all(
    names.map((n) => decodeGeoTiff(new Uint8Array(readFileSync(join(tilesDir, n))))),
  );
  const first = rasters[0];
  if (!first) throw new Error("the sample archive has no tiles");
  const model = trainModel(
    rasters,
    { kind: "geojson", geojson: JSON.parse(readFileSync(join(sampleDir, "training.geojson"), "utf8")) },
    {
      features: createFeatureSpec(first.bandCount, { red: SAMPLE_RED_BAND, nir: SAMPLE_NIR_BAND }),
      source: "training.geojson",
      tileNames: names,
    },
  );
  const modelPath = join(root, `model-${model.version}.json`);
  await saveModelFile(modelPath, model);
  return {
    root,
    sampleDir,
    tilesDir,
    model,
    modelPath,
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A data directory with the sample registered and the model installed in data/models/. */
export interface DataDirFixture {
  readonly dataDir: string;
  readonly store: ArchiveStore;
  readonly logger: Logger;
  /** The configuration for this data dir, with overrides of environment variables. */
  config(env?: Record<string, string>): Config;
}

/** A silent logger, or one that keeps every line for assertions. */
export function testLogger(lines?: { msg: string; [k: string]: unknown }[]): Logger {
  if (!lines) return pino({ level: "silent" });
  return pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
}

/** A fresh data dir under the sample set's root, with every sample tile registered. */
export async function makeDataDir(set: SampleSet, name: string): Promise<DataDirFixture> {
  const dataDir = join(set.root, name);
  mkdirSync(join(dataDir, "models"), { recursive: true });
  cpSync(set.modelPath, join(dataDir, "models", `${set.model.version}.json`));
  const store = new ArchiveStore(dataDir);
  const logger = testLogger();
  await addArchiveFolder(store, set.tilesDir, { logger, maxPixels: 1e8 });
  return {
    dataDir,
    store,
    logger,
    config: (env = {}) =>
      parseConfig({
        LANEMAP_DATA_DIR: dataDir,
        LANEMAP_BATCH_WORKERS: "2",
        LANEMAP_BATCH_KEEP: "3",
        LANEMAP_LOG_LEVEL: "silent",
        ...env,
      }),
  };
}

/** A `lanemap` child process with its output collected. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the exit code (null when killed by a signal) once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when stderr has a line containing `text`; rejects if the process ends first. */
  waitForStderr(text: string): Promise<void>;
}

/** Runs `node infra/bin/lanemap.js ...args` with extra environment variables. */
export function lanemap(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [join(projectRoot, "infra", "bin", "lanemap.js"), ...args], {
    cwd: projectRoot,
    env: { ...process.env, LANEMAP_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: { text: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    for (const w of [...waiters])
      if (err.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      for (const w of waiters.splice(0))
        w.reject(
          new Error(`lanemap ${args.join(" ")} ended (code ${code}, ${signal}) before "${w.text}":\n${err}`),
        );
      resolve({ code, signal });
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForStderr: (text) =>
      err.includes(text)
        ? Promise.resolve()
        : child.exitCode !== null || child.signalCode !== null
          ? Promise.reject(new Error(`lanemap ${args.join(" ")} already ended before "${text}":\n${err}`))
          : new Promise<void>((resolve, reject) => waiters.push({ text, resolve, reject })),
  };
}

type TaskWorkerOptions = Parameters<typeof startBatchTaskWorker>[1];

/**
 * One worker's batch consumer in this process, as `lanemap worker` runs it: one tile thread, one
 * task at a time (`extra` overrides, e.g. tileDelayMs); stop() ends the consumer, then the thread.
 */
export async function oneTaskWorker(
  config: Config,
  nc: TaskWorkerOptions["nc"],
  models: TaskWorkerOptions["models"],
  archive: TaskWorkerOptions["archive"],
  extra: Partial<TaskWorkerOptions> = {},
) {
  const pool = new TilePool({ size: 1, timeoutMs: config.decodeTimeoutMs });
  const worker = await startBatchTaskWorker(config, {
    nc,
    logger: testLogger(),
    pool,
    concurrency: 1,
    models,
    archive,
    name: "w1",
    ...extra,
  });
  return {
    worker,
    async stop() {
      await worker.stop();
      await pool.close();
    },
  };
}

/** A run's coordinator (the stream executor) with `set`'s model, for `tileIds`. */
export function coordinator(
  set: SampleSet,
  config: Config,
  nc: TaskWorkerOptions["nc"],
  models: TaskWorkerOptions["models"],
  runId: string,
  tileIds: Iterable<string>,
  logger: Logger = testLogger(),
) {
  return StreamTileExecutor.start({
    nc,
    config,
    logger,
    runId,
    artifact: new TextEncoder().encode(serializeModel(set.model)),
    models,
    tileIds: new Set(tileIds),
  });
}

/**
 * A data directory of `set` named `name`, its config on the nats-server at `natsUrl` (10 s decode
 * deadline, `env` on top), and its catalogue entries sorted by tile id.
 */
export async function catalogued(
  set: SampleSet,
  name: string,
  natsUrl: string,
  env: Record<string, string> = {},
) {
  const fx = await makeDataDir(set, name);
  const config = fx.config({ NATS_URL: natsUrl, LANEMAP_DECODE_TIMEOUT_MS: "10000", ...env });
  const entries: CatalogueEntry[] = [];
  for await (const e of fx.store.entries()) entries.push(e);
  entries.sort((a, b) => a.tileId.localeCompare(b.tileId));
  return { fx, config, entries };
}

/** tile id -> the stored class raster blob of the batch view in folder `viewDir` (its DuckDB file). */
export async function viewRasters(viewDir: string): Promise<Map<string, Buffer>> {
  const db = await DuckDbDatabase.open(join(viewDir, BATCH_VIEW_FILES.duckdb), { readOnly: true });
  try {
    const rows = await db.all<{ tile_id: string; raster: { bytes: Uint8Array } }>(
      "SELECT tile_id, raster FROM rasters ORDER BY tile_id",
    );
    return new Map(rows.map((r) => [r.tile_id, Buffer.from(r.raster.bytes)]));
  } finally {
    db.closeSync();
  }
}

/** tile id -> the stored class raster blob of the current view of `dataDir`. */
export async function currentViewRasters(dataDir: string): Promise<Map<string, Buffer>> {
  const current = await readCurrentBatch(dataDir);
  assert.ok(current, "a view is published");
  return viewRasters(current.dir);
}
