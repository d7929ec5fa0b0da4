/**
 * The serving layer's composition: view sources (batch always, live when a NATS connection is
 * given), the snapshot manager, the route table, the app, and listen/close. Everything comes in
 * through `config` and `deps`; nothing is a module singleton, so a test runs several servers side
 * by side, each on a port of its own (`PORT=0` gives a free one and `listen()` says which).
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Express } from "express";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { ArchiveStore, FileModelRegistry } from "../shared/adapters/archive/index.js";
import {
  LanemapError,
  type ClassRaster,
  type Config,
  type ModelRegistry,
  type PublishedViews,
} from "../shared/index.js";
import { buildOpenApi } from "./api/openapi.js";
import type { BatchTrigger } from "./batch-trigger.js";
import type { ModelTrainer } from "./model-trainer.js";
import { TrainJobs } from "./usecases/train-jobs.js";
import { createApp } from "./http/app.js";
import { EventHub } from "./http/events.js";
import { ServingMetrics } from "./http/metrics.js";
import type { RouteSpec } from "./api/route-spec.js";
import { buildRoutes } from "./http/routes/index.js";
import { BatchRunLedger } from "./usecases/batch-runs.js";
import type { ServingContext } from "./usecases/context.js";
import { SourceImagery } from "./usecases/source-image.js";
import { BatchViewSource } from "./view/batch-source.js";
import { DEFAULT_HELD_RASTER_BYTES } from "./view/batch-view.js";
import { LiveSource } from "./view/live-source.js";
import { LruCache } from "./view/lru-cache.js";
import { SnapshotManager } from "./view/snapshot.js";
import type { TileArchive } from "../shared/index.js";

/** What the serving layer is given by its composition root. */
export interface ServerDeps {
  readonly logger: Logger;
  /** A NATS connection: serving follows the live view through it. Absent: batch-only serving. */
  readonly nc?: NatsConnection;
  /** Starts batch runs (infra wraps the batch lane's runner). Absent: POST /v1/batch/runs is 503. */
  readonly batchTrigger?: BatchTrigger;
  /** Trains models from the label set (infra wires a worker thread and the registry). Absent: POST /v1/models is 503. */
  readonly modelTrainer?: ModelTrainer;
  /** Registry for /metrics; default a new one. */
  readonly metricsRegistry?: Registry;
  /**
   * The model registry both lanes read (infra passes the deployment's: NATS mirrored to files, or
   * files). Absent: the data directory's file registry.
   */
  readonly models?: ModelRegistry;
  /**
   * The published batch views serving follows (infra passes the deployment's: files or NATS with a
   * local cache). Absent: the data directory's views/batch/.
   */
  readonly views?: PublishedViews;
  /** The speed consumer's pending message count, shown by /v1/views when given. */
  readonly consumerLag?: () => Promise<number | undefined>;
  /**
   * The master archive source tiles are read from (infra passes the one `config.storage.backend`
   * names). Absent: the data directory's files.
   */
  readonly archive?: TileArchive;
}

/** Tuning with sensible defaults; tests shorten the intervals. */
export interface ServerOptions {
  /** Budget of decoded class rasters kept in memory (default 256 MiB). */
  readonly rasterCacheBytes?: number;
  /**
   * Budget of a batch view's class raster BLOBs (deflated, as stored) held in memory from its open,
   * so that no query reads DuckDB; a view with more reads them from DuckDB on demand (default 64
   * MiB; 0 holds none). While a publish switches versions, the old and the new one may both hold.
   */
  readonly heldRasterBytes?: number;
  /** Fallback check of the batch CURRENT pointer (default 2 s; fs.watch usually hears it first). */
  readonly pollIntervalMs?: number;
  /** How long a paged snapshot stays available to its cursor after the last page (default 10 min). */
  readonly cursorRetainMs?: number;
  /** Largest request body (default 1 MB). */
  readonly bodyLimit?: string | number;
  /** Most concurrent /v1/events streams (default 1000). */
  readonly maxEventStreams?: number;
}

/** A listening server: its URL (with the real port) and how to stop it. */
export interface Listening {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The serving layer before and after it listens. */
export interface LanemapServer {
  /** The Express app (routes are live at once; views load on start()). */
  readonly app: Express;
  /** The route table the app and /openapi.json are built from. */
  readonly routes: readonly RouteSpec[];
  /** The OpenAPI document. */
  openapi(): Record<string, unknown>;
  /** Opens the current batch view and starts following the live view (idempotent). */
  start(): Promise<void>;
  /** Starts, then listens on config.port (0 = any free port) at config.host. */
  listen(): Promise<Listening>;
  /** Stops listening (if it did), ends event streams and releases the views. */
  close(): Promise<void>;
}

/** Builds the serving layer. Nothing runs until start() or listen(). */
export function createServer(config: Config, deps: ServerDeps, options: ServerOptions = {}): LanemapServer {
  const logger = deps.logger.child({ component: "serving" });
  const cache = new LruCache<ClassRaster>(
    options.rasterCacheBytes ?? 256 * 2 ** 20,
    (r) => 2 * r.width * r.height + 64,
  );
  const batch = new BatchViewSource({
    dataDir: config.dataDir,
    ...(deps.views ? { views: deps.views } : {}),
    cache,
    logger,
    heldRasterBytes: options.heldRasterBytes ?? DEFAULT_HELD_RASTER_BYTES,
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
  });
  // A cluster deployment's serve may be the first to touch the live bucket: it creates it (or brings
  // it) at LANEMAP_NATS_REPLICAS, not R1; the default 1 leaves an existing bucket's replicas alone.
  const liveReplicas = config.storage.replicas > 1 ? { replicas: config.storage.replicas } : {};
  const live = deps.nc ? new LiveSource({ nc: deps.nc, cache, logger, ...liveReplicas }) : null;
  const snapshots = new SnapshotManager({
    batch,
    live,
    ...(options.cursorRetainMs === undefined ? {} : { cursorRetainMs: options.cursorRetainMs }),
  });
  const registry = deps.metricsRegistry ?? new Registry();
  let batchRuns: BatchRunLedger | undefined;
  const metrics = new ServingMetrics(registry, {
    batch,
    live,
    cache,
    refreshRuns: () => batchRuns?.refresh() ?? Promise.resolve(),
  });
  if (deps.batchTrigger)
    batchRuns = new BatchRunLedger(deps.batchTrigger, (s) => metrics.batchRunFinished(s));
  const archive = deps.archive ?? new ArchiveStore(config.dataDir);
  const sourceImages = new SourceImagery(archive, {
    maxPixels: config.maxPixels,
    deadline: config,
  });
  // Training jobs publish on the event hub, which is built after the context: a late-bound sink.
  let publishJob: (s: unknown) => void = () => undefined;
  const trainJobs = deps.modelTrainer
    ? new TrainJobs(
        deps.modelTrainer,
        (s) => publishJob(s),
        (s) => logger.info({ job: s.jobId, state: s.state, message: s.message }, "training job"),
      )
    : undefined;
  let modelsOpened: Promise<ModelRegistry> | undefined;
  const ctx: ServingContext = {
    config,
    logger,
    batch,
    live,
    snapshots,
    archive,
    sourceImages,
    batchTrigger: deps.batchTrigger,
    batchRuns,
    consumerLag: deps.consumerLag,
    trainJobs,
    models: () =>
      (modelsOpened ??= deps.models ? Promise.resolve(deps.models) : FileModelRegistry.open(config.dataDir)),
    startedAt: Date.now(),
  };
  const events = new EventHub({
    batch,
    live,
    ...(options.maxEventStreams === undefined ? {} : { maxClients: options.maxEventStreams }),
  });
  publishJob = (s) => events.publish("train-job", s);
  let listening: { server: Server; url: string } | null = null;
  let document: Record<string, unknown> | undefined;
  const routes = buildRoutes(ctx, {
    events,
    registry,
    openapi: () => (document ??= buildOpenApi(routes, { version: "1.0.0" })),
    fallbackBase: () => listening?.url ?? `http://${config.host}:${config.port}`,
  });
  const app = createApp({
    routes,
    logger,
    metrics,
    corsOrigins: config.serving.corsOrigins,
    bodyLimit: options.bodyLimit ?? "1mb",
  });

  let starting: Promise<void> | null = null;
  let closed = false;
  // The class catalogue names ids in every answer; it only grows when a model is stored, so a poll
  // at the batch pointer's pace is enough (an unreadable registry keeps the last catalogue).
  const refreshCatalogue = async (): Promise<void> => {
    try {
      snapshots.setCatalogue((await (await ctx.models()).classes()).classes);
    } catch (err) {
      logger.warn({ err }, "cannot read the class catalogue; answers keep the last one");
    }
  };
  let catalogueTimer: NodeJS.Timeout | undefined;
  const start = (): Promise<void> => {
    starting ??= (async () => {
      await batch.start();
      await live?.start();
      await refreshCatalogue();
      catalogueTimer = setInterval(() => void refreshCatalogue(), options.pollIntervalMs ?? 2000);
      catalogueTimer.unref();
    })();
    return starting;
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    trainJobs?.close();
    events.close();
    if (listening) {
      const { server } = listening;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets would hold close() open; the requests on them have been answered.
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
      listening = null;
    }
    await starting?.catch(() => undefined);
    clearInterval(catalogueTimer);
    live?.close();
    snapshots.close();
    await sourceImages.close();
    await batch.close();
    logger.info("serving stopped");
  };

  return {
    app,
    routes,
    openapi: () => (document ??= buildOpenApi(routes, { version: "1.0.0" })),
    start,
    async listen() {
      await start();
      const server = createHttpServer(app);
      // Slow clients must not pin sockets forever; the slowest legitimate answer is a stats query.
      server.requestTimeout = 60_000;
      server.headersTimeout = 20_000;
      // A socket that cannot listen releases what start() opened (views, watches, timers): the
      // caller gets the error, not a process kept alive by them.
      const bound = new Promise<void>((resolve, reject) => {
        server.once("error", (err: NodeJS.ErrnoException) => {
          // Named apart from the views start() has loaded: the socket is what failed.
          const why =
            err.code === "EADDRINUSE"
              ? "the address is in use (another process listens there: stop it or set PORT)"
              : err.code === "EACCES"
                ? "not allowed (a port below 1024 needs privileges: set PORT)"
                : err.message;
          reject(
            new LanemapError("LISTEN", `cannot listen on ${config.host}:${config.port ?? 0}: ${why}`, {
              cause: err,
            }),
          );
        });
        server.listen(config.port ?? 0, config.host, () => resolve());
      });
      try {
        await bound;
      } catch (err) {
        await close();
        throw err;
      }
      const addr = server.address() as AddressInfo;
      const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      const url = `http://${host}:${addr.port}`;
      listening = { server, url };
      logger.info({ url }, "serving listening");
      return { url, port: addr.port, close };
    },
    close,
  };
}
