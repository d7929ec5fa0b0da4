/**
 * The whole platform in one test process, with real components: a nats-server of its own, a
 * generated sample archive registered in a temporary data directory, a model trained from the
 * archive's training polygons, one published batch view, the model active in the registry, a speed
 * worker following the ingest stream and the serving layer on a free port. `stop()` (or
 * `await using`) takes it all down and removes every file it wrote.
 *
 * Browser and smoke tests use it to watch the lambda architecture end to end: a fresh acquisition
 * published through NATS is classified by the speed lane and wins its cell in the merged view.
 */
import { mkdir, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino, type Logger } from "pino";
import { addArchiveFolder, createBatchRunner, type RunReport } from "../../batch/index.js";
import { ArchiveStore } from "../../shared/adapters/archive/index.js";
import { NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import {
  createFeatureSpec,
  dataPaths,
  decodeGeoTiff,
  describeTile,
  parseCellKey,
  parseConfig,
  saveModelFile,
  serializeModel,
  trainModel,
  type Config,
  type Model,
} from "../../shared/index.js";
import {
  SAMPLE_NIR_BAND,
  SAMPLE_RED_BAND,
  generateArchive,
  generateTile,
  type Scenario,
} from "../../sample/index.js";
import { createServer } from "../../serving/index.js";
import {
  publishTile,
  startSpeedWorker,
  type SpeedWorker,
  type TileClassifiedEvent,
} from "../../speed/index.js";
import { natsFixture } from "./nats.js";

/** What platform to start. */
export interface TestPlatformOptions {
  /** Tiles across and down (default 3 x 3). */
  readonly grid?: { readonly width: number; readonly height: number };
  /**
   * Pixels per tile side (default 128). With the default grid and seed, 128 is the smallest size whose
   * training polygons cover all six sample classes, water included, so a "flood" shows as water.
   */
  readonly tileSize?: number;
  /** Sample archive seed (default 7). */
  readonly seed?: number;
  /** Where the components log (default silent, or LANEMAP_TEST_LOG's level). */
  readonly logger?: Logger;
}

/** A fresh acquisition sent to the speed lane. */
export interface PublishedAcquisition {
  readonly cell: string;
  readonly tileId: string;
  readonly acquired: string;
  readonly scenario: Scenario;
  /** Stream sequence of the ingest message: the tile's ingest sequence. */
  readonly seq: number;
}

/** A running platform. */
export interface TestPlatform extends AsyncDisposable {
  /** Base URL of the serving layer, e.g. http://127.0.0.1:40123 (no trailing slash). */
  readonly url: string;
  /** The test's own connection to the platform's nats-server. */
  readonly nc: NatsConnection;
  /** The temporary data directory (archive, catalogue, batch views, models). */
  readonly dataDir: string;
  /** The configuration every component was started with. */
  readonly config: Config;
  /** The model both lanes apply. */
  readonly model: Model;
  /** What the one batch run published. */
  readonly batch: RunReport;
  /** Every cell of the archive, in key order. */
  readonly cells: readonly string[];
  /**
   * Generates a new acquisition of `cell` (later than any before it; `scenario` "flood" by default)
   * and publishes it to the ingest stream. Resolves once JetStream stored it; the speed lane
   * classifies it moments later (see `waitClassified`). Its clouds follow the acquisition time
   * (none to a sixth of the tile, sample/tile.ts) unless `cloudCover` (0..1) fixes their share:
   * a test that reads the merged map needs 0, or older pixels show through under the clouds.
   */
  publish(cell: string, scenario?: Scenario, cloudCover?: number): Promise<PublishedAcquisition>;
  /** Resolves when the speed worker has written `tileId` to the live view (bounded by `timeoutMs`). */
  waitClassified(tileId: string, timeoutMs?: number): Promise<TileClassifiedEvent>;
  /** Stops the server, the worker and nats-server, and removes the temporary folder. Idempotent. */
  stop(): Promise<void>;
}

/** Starts the platform; everything started so far is stopped again if a step fails. */
export async function startTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const grid = options.grid ?? { width: 3, height: 3 };
  const tileSize = options.tileSize ?? 128;
  const seed = options.seed ?? 7;
  const logger = options.logger ?? pino({ level: process.env["LANEMAP_TEST_LOG"] ?? "silent" });
  // Teardown steps in the order they must run: last started, first stopped.
  const teardown: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const step of teardown.splice(0).reverse()) await step().catch((err: unknown) => errors.push(err));
    if (errors.length) throw new AggregateError(errors, "stopping the test platform failed");
  };

  try {
    const root = await mkdtemp(join(tmpdir(), "lanemap-platform-"));
    teardown.push(() => rm(root, { recursive: true, force: true }));
    const dataDir = join(root, "data");
    const sampleDir = join(root, "sample");

    const nats = await natsFixture();
    teardown.push(async () => await nats[Symbol.asyncDispose]());
    const { nc } = nats;

    const config = parseConfig({
      LANEMAP_DATA_DIR: dataDir,
      NATS_URL: nats.server.url,
      PORT: "0",
      HOST: "127.0.0.1",
      LANEMAP_LOG_LEVEL: "silent",
      LANEMAP_BATCH_WORKERS: "2",
      LANEMAP_SPEED_CONCURRENCY: "2",
      LANEMAP_ACK_WAIT_S: "5",
    });

    await generateArchive({ out: sampleDir, grid, tileSize, seed });
    const tilesDir = join(sampleDir, "tiles");
    const archive = new ArchiveStore(dataDir);
    const added = await addArchiveFolder(archive, tilesDir, { logger, maxPixels: config.maxPixels });
    if (added.bad.length)
      throw new Error(`the sample archive has unusable tiles: ${JSON.stringify(added.bad)}`);

    const model = await trainSampleModel(sampleDir, tilesDir);
    // The batch runner applies the newest artifact in data/models/, as an operator's would.
    const modelsDir = dataPaths(dataDir).models;
    await mkdir(modelsDir, { recursive: true });
    await saveModelFile(join(modelsDir, `${model.version}.json`), model);
    const batch = await createBatchRunner(config, { logger }).run();

    const registry = await NatsModelRegistry.open(nc);
    await registry.upload(model.version, new TextEncoder().encode(serializeModel(model)));
    await registry.activate(model.version);

    const worker: SpeedWorker = await startSpeedWorker(config, { nc, logger, name: "test-platform" });
    teardown.push(() => worker.stop());
    // Every classification since start, so a waiter never misses one that finished before it asked.
    const classified = new Map<string, TileClassifiedEvent>();
    const waiters = new Set<() => void>();
    const unsubscribe = worker.on((e) => {
      if (e.type !== "tile-classified") return;
      classified.set(e.tileId, e);
      for (const w of [...waiters]) w();
    });
    teardown.push(async () => unsubscribe());

    const server = createServer(config, { logger, nc }, { pollIntervalMs: 200 });
    const listening = await server.listen();
    teardown.push(() => listening.close());

    const cells = [...new Set((await readdir(tilesDir)).map((n) => n.replace(/\.tif$/, "")))].sort();
    const js = jetstream(nc);
    let lastAcquiredMs = 0;

    const publish = async (
      cell: string,
      scenario: Scenario = "flood",
      cloudCover?: number,
    ): Promise<PublishedAcquisition> => {
      const at = parseCellKey(cell);
      if (!at || !cells.includes(cell)) throw new Error(`"${cell}" is not a cell of the test archive`);
      // Now, to the second (tile ids carry seconds), and always later than the previous acquisition,
      // so the new tile wins its cell over the batch result and over earlier publishes.
      const ms = Math.max(Math.floor(Date.now() / 1000) * 1000, lastAcquiredMs + 1000);
      lastAcquiredMs = ms;
      const acquired = new Date(ms).toISOString();
      const tile = generateTile({
        seed,
        col: at.col,
        row: at.row,
        tileSize,
        acquired,
        scenario,
        ...(cloudCover === undefined ? {} : { cloudCover }),
      });
      // The tile id a producer would state, derived exactly as `lanemap ingest` derives it.
      const entry = await describeTile(tile.bytes, { cell, acquired, ingestSeq: 0, source: "stream" });
      const sent = await publishTile(js, tile.bytes, { tileId: entry.tileId, cell, acquired });
      return { cell, tileId: entry.tileId, acquired, scenario, seq: sent.seq };
    };

    const waitClassified = (tileId: string, timeoutMs = 30_000): Promise<TileClassifiedEvent> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = classified.get(tileId);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`tile ${tileId} was not classified within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });

    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> => (stopped ??= stopAll());
    return {
      url: listening.url,
      nc,
      dataDir,
      config,
      model,
      batch,
      cells,
      publish,
      waitClassified,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

/** Trains the kNN model from the archive's training polygons over its tiles (what `lanemap train` does). */
async function trainSampleModel(sampleDir: string, tilesDir: string): Promise<Model> {
  const names = (await readdir(tilesDir)).filter((n) => n.endsWith(".tif")).sort();
  const rasters = await Promise.all(
    names.map(async (n) => decodeGeoTiff(new Uint8Array(await readFile(join(tilesDir, n))))),
  );
  const first = rasters[0];
  if (!first) throw new Error("the sample archive has no tiles");
  const geojson: unknown = JSON.parse(await readFile(join(sampleDir, "training.geojson"), "utf8"));
  return trainModel(
    rasters,
    { kind: "geojson", geojson },
    {
      features: createFeatureSpec(first.bandCount, { red: SAMPLE_RED_BAND, nir: SAMPLE_NIR_BAND }),
      source: "training.geojson",
      tileNames: names,
    },
  );
}
