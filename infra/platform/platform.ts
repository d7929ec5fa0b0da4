/**
 * The whole platform in one process tree, on embedded defaults: the composition root of
 * `lanemap start`. It wires the lanes together (they never import each other) and owns the order
 * of start-up and shut-down:
 *
 *   nats-server (embedded unless NATS_URL) -> sample archive (if the catalogue is empty) -> model
 *   (trained once, activated in NATS) -> first batch run (if no view yet) -> speed worker ->
 *   serving -> cron schedule -> a feeder of fresh acquisitions (flood, clearing) for the demo.
 *
 * Shut-down runs in reverse: nothing new is fed or scheduled, an active batch run is aborted
 * (its staging is never published), in-flight tiles finish, the server and NATS close last.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import {
  addArchiveFolder,
  scheduleBatchRuns,
  type BatchRunner,
  type BatchSchedule,
} from "../../batch/index.js";
import { LabelStore } from "../../shared/adapters/archive/index.js";
import { openTileArchive } from "./storage.js";
import { connectNats, drainWithin, speedLaneStatus } from "../../shared/adapters/nats/index.js";
import {
  LANDSAT_DEFAULT_MASK,
  createFeatureSpec,
  dataPaths,
  decodeGeoTiff,
  parseCellKey,
  TrainPool,
  labelInputCrs,
  parseLabelFeatures,
  trainModel,
  type ClassCatalogue,
  type Config,
  type Model,
  type TileArchive,
} from "../../shared/index.js";
import { generateArchive, generateTile } from "../../sample/index.js";
import { isFedEntry, startFeeder } from "./feeder.js";
import { createServer, type Listening } from "../../serving/index.js";
import { publishTile, startSpeedWorker, type SpeedWorker } from "../../speed/index.js";
import { startNatsServer, type NatsServer } from "../nats/launcher.js";
import { batchTriggerFor } from "./batch-trigger.js";
import { modelTrainerFor } from "./trainer.js";
import { buildBatchRunner } from "./batch-runners.js";
import { openModelRegistry } from "./models.js";
import { openPublishedViews } from "./views.js";
import { ingestStreamBehindRecord, refuseIngestStreamBehind } from "./ingest-clock.js";

/** The sample archive `lanemap start` generates when the catalogue is empty. */
export const SAMPLE = {
  grid: { width: 8, height: 8 },
  tileSize: 128,
  seed: 1,
  red: 3,
  nir: 4,
  // Tiles carry a Landsat C2 QA_PIXEL band (band 7): the model masks clouds by it (issue 13).
  quality: true,
} as const;
/** Share of each fed acquisition under cloud: partly cloudy, so per-pixel compositing shows. */
export const FEED_CLOUD_COVER = 0.35;
/** The QA band of the sample's 6 + 1 band tiles and its mask (the usual cloud mask). */
const SAMPLE_QUALITY = { band: 7, kind: "landsat-c2-qa-pixel", mask: [...LANDSAT_DEFAULT_MASK] } as const;

export interface Platform extends AsyncDisposable {
  readonly url: string;
  readonly natsUrl: string;
  readonly operatorToken: string;
  readonly model: Model;
  readonly embeddedNats: boolean;
  /**
   * True when the sample feeder runs: feeding is on and the archive has generated grid cells to feed
   * (a real archive's cells are its scenes: nothing is fed there).
   */
  readonly feeding: boolean;
  /** Sample acquisitions earlier runs fed into this data directory (they count against the cap). */
  readonly alreadyFed: number;
  /** Publishes one fresh acquisition of a cell (what the feeder does on its timer). */
  feedOnce(scenario?: "flood" | "clearing" | "none"): Promise<{ cell: string; tileId: string; seq: number }>;
  /**
   * Rejects when the speed worker stopped by itself (the ingest stream deleted, or recreated behind
   * lanemap's record, while it ran: INGEST_STREAM_BEHIND or NATS_SETUP); never resolves.
   */
  readonly failed: Promise<never>;
  stop(): Promise<void>;
}

async function catalogueIsEmpty(store: TileArchive): Promise<boolean> {
  for await (const _ of store.entries()) return false;
  return true;
}

async function trainSampleModel(
  sampleDir: string,
  logger: Logger,
  catalogue: ClassCatalogue,
): Promise<Model> {
  const names = (await readdir(join(sampleDir, "tiles"))).filter((n) => n.endsWith(".tif")).sort();
  const rasters = [];
  for (const n of names)
    rasters.push(await decodeGeoTiff(new Uint8Array(await readFile(join(sampleDir, "tiles", n)))));
  const geojson: unknown = JSON.parse(await readFile(join(sampleDir, "training.geojson"), "utf8"));
  const model = trainModel(
    rasters,
    { kind: "geojson", geojson },
    {
      features: createFeatureSpec(rasters[0]?.bandCount ?? 6, {
        red: SAMPLE.red,
        nir: SAMPLE.nir,
        // An archive generated before the QA band has 6 bands and no mask.
        ...(rasters[0]?.bandCount === SAMPLE_QUALITY.band
          ? { quality: { ...SAMPLE_QUALITY, mask: [...SAMPLE_QUALITY.mask] } }
          : {}),
      }),
      k: 5,
      source: "sample/training.geojson",
      tileNames: names,
      catalogue,
    },
  );
  logger.info(
    { version: model.version, classes: model.classes.map((c) => c.name) },
    "trained the sample model",
  );
  return model;
}

/** Deadline of one training job (POST /v1/models): decode, train and assess in its thread. */
const TRAIN_TIMEOUT_MS = 10 * 60_000;

/** Starts everything; resolves once serving listens. */
export async function startPlatform(config: Config, logger: Logger): Promise<Platform> {
  const stack: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    while (stack.length) {
      const fn = stack.pop()!;
      await fn().catch((err: unknown) => logger.warn({ err }, "shutdown step failed"));
    }
  };
  try {
    const paths = dataPaths(config.dataDir);
    await mkdir(config.dataDir, { recursive: true });

    // 1. NATS: the configured server, or our own child process in the data directory.
    let server: NatsServer | undefined;
    let natsUrl = config.natsUrl;
    if (!natsUrl) {
      server = await startNatsServer({ storeDir: paths.nats });
      stack.push(() => server!.stop());
      natsUrl = server.url;
      logger.info({ url: natsUrl, store: paths.nats }, "embedded nats-server started");
    }
    const nc: NatsConnection = await connectNats({ servers: natsUrl, name: "lanemap-start", logger });
    stack.push(async () => {
      // A server that went away would keep drain() waiting for a reconnect that never comes.
      await drainWithin(nc);
    });
    // Fails fast on a server without JetStream (or one gone again), before the sample and model.
    const jsm = await jetstreamManager(nc);

    // 2. The master archive: a generated sample when the catalogue is empty.
    // The embedded default is files (LANEMAP_STORAGE); nats puts the archive in this NATS.
    const store = await openTileArchive(config, nc);
    const sampleDir = join(config.dataDir, "sample");
    if (await catalogueIsEmpty(store)) {
      logger.info({ dir: sampleDir, ...SAMPLE }, "empty archive: generating a sample archive");
      await generateArchive({ out: sampleDir, ...SAMPLE, overwrite: true });
      const report = await addArchiveFolder(store, join(sampleDir, "tiles"), {
        logger,
        maxPixels: config.maxPixels,
      });
      logger.info({ report }, "sample archive registered");
      // The sample's training polygons start the label set, so the map's labelling loop has labels
      // to add to (they are the analyst's to remove).
      const labels = new LabelStore(config.dataDir);
      if ((await labels.read()).version === 0) {
        const geojson: unknown = JSON.parse(await readFile(join(sampleDir, "training.geojson"), "utf8"));
        const drafts = parseLabelFeatures(geojson, {
          crs: await labelInputCrs(geojson),
          author: "lanemap start (sample)",
          now: new Date().toISOString(),
        });
        const added = await labels.add(drafts);
        logger.info(
          { labelSetVersion: added.version, labels: added.ids.length },
          "label set started from the sample",
        );
      }
    }

    // 3. The model: the registry's active one (NATS, mirrored to the data directory; models trained
    //    with `lanemap train --activate` before this start are adopted), else train one on the sample.
    const models = await openModelRegistry(config, nc, logger);
    const active = await models.active();
    let model: Model;
    if (active) model = await models.model(active.version);
    else {
      model = await trainSampleModel(sampleDir, logger, await models.classes());
      await models.put(model, { trainedBy: "lanemap start", labelSet: "sample/training.geojson" });
      await models.activate(model.version);
      logger.info({ version: model.version }, "model activated for both lanes");
    }

    // 4. The batch lane: the watermark is the speed consumer's ack floor (see README, view contract).
    const { runner }: { runner: BatchRunner } = await buildBatchRunner(config, {
      logger,
      nc,
      models,
      archive: store,
    });
    stack.push(() => runner.close());
    const batchAbort = new AbortController();
    stack.push(async () => batchAbort.abort());
    // The published views (LANEMAP_STORAGE): the batch lane publishes there, serving follows them.
    const views = await openPublishedViews(config, nc, logger);
    // Both lanes and serving go by the ingest stream's sequences: a recreated stream (from 1 again,
    // a lost store under data/nats with the data directory kept) is refused before any of them starts.
    await refuseIngestStreamBehind(nc, { views, archive: store }, { what: "start", logger });
    if (!(await views.current())) {
      logger.info("no batch view yet: running the first batch");
      const report = await runner.run({ signal: batchAbort.signal });
      logger.info({ version: report.version, watermark: report.watermark }, "first batch view published");
    }

    // 5. The speed lane.
    const metricsRegistry = new Registry();
    const worker: SpeedWorker = await startSpeedWorker(config, {
      nc,
      logger,
      registry: metricsRegistry,
      models,
      archive: store,
      ingestClock: () => ingestStreamBehindRecord(nc, { views, archive: store }),
    });
    stack.push(() => worker.stop());
    const failed = worker.ended.then((why) => (why ? Promise.reject(why) : new Promise<never>(() => {})));
    failed.catch(() => undefined); // start.ts awaits it

    // 6. Serving, with the batch runner and the trainer (one worker thread) behind its operator endpoints.
    const trainPool = new TrainPool({ timeoutMs: TRAIN_TIMEOUT_MS });
    stack.push(() => trainPool.close());
    const operatorToken = config.operatorToken ?? randomBytes(24).toString("base64url");
    const server2 = createServer(
      { ...config, operatorToken },
      {
        logger,
        nc,
        metricsRegistry,
        models,
        archive: store,
        views,
        batchTrigger: batchTriggerFor(runner, batchAbort.signal),
        modelTrainer: modelTrainerFor({
          dataDir: config.dataDir,
          registry: models,
          pool: trainPool,
          maxPixels: config.maxPixels,
          archive: store,
        }),
        consumerLag: async () => (await speedLaneStatus(jsm)).consumer?.pending,
      },
    );
    const listening: Listening = await server2.listen();
    stack.push(() => server2.close());

    // 7. The nightly rebuild.
    const schedule: BatchSchedule = scheduleBatchRuns(runner, config, {
      logger,
      options: { signal: batchAbort.signal },
    });
    stack.push(() => schedule.stop());

    // 8. Fresh acquisitions so both lanes show on the map.
    const js = jetstream(nc);
    const cells = [] as { col: number; row: number }[];
    let alreadyFed = 0;
    for await (const e of store.entries()) {
      if (isFedEntry(e)) alreadyFed++;
      const c = parseCellKey(e.cell);
      if (c && !cells.some((x) => x.col === c.col && x.row === c.row)) cells.push(c);
    }
    cells.sort((a, b) => a.row - b.row || a.col - b.col);
    let fed = 0;
    const scenarios = ["flood", "clearing", "none"] as const;
    const feedOnce = async (scenario?: "flood" | "clearing" | "none") => {
      const where = cells[(fed * 7919) % Math.max(1, cells.length)];
      if (!where) throw new Error("no grid cells in the archive to feed");
      const s = scenario ?? scenarios[fed % scenarios.length]!;
      fed++;
      const acquired = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      const tile = generateTile({
        seed: SAMPLE.seed,
        col: where.col,
        row: where.row,
        tileSize: SAMPLE.tileSize,
        acquired,
        scenario: s,
        // Partly cloudy: flagged in a QA band when the model reads one, else clouds as nodata.
        quality: model.features.quality !== undefined,
        cloudCover: FEED_CLOUD_COVER,
      });
      const tileId = `${tile.cell}-${acquired.replace(/[-:]/g, "")}`;
      const published = await publishTile(js, tile.bytes, { tileId, cell: tile.cell, acquired });
      logger.info({ cell: tile.cell, tileId, scenario: s, seq: published.seq }, "fed a fresh acquisition");
      return { cell: tile.cell, tileId, seq: published.seq };
    };
    const feeding = config.feedIntervalS > 0 && cells.length > 0;
    if (feeding) {
      const feeder = startFeeder({
        intervalS: config.feedIntervalS,
        maxTiles: config.feedMaxTiles,
        alreadyFed,
        feedOnce: () => feedOnce(),
        logger,
      });
      stack.push(async () => feeder.stop());
    }

    let stopped: Promise<void> | undefined;
    const stop = () => (stopped ??= cleanup());
    return {
      url: listening.url,
      natsUrl,
      operatorToken,
      model,
      embeddedNats: server !== undefined,
      feeding,
      alreadyFed,
      feedOnce,
      failed,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
