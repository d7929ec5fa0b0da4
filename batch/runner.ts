/**
 * The batch runner: one run reads the catalogue up to the watermark, reuses what the current version
 * already has (same content, same model), classifies the rest on a worker pool in the chosen order,
 * and publishes a new frozen version atomically. `createBatchRunner` is what infra and serving call;
 * the CLI's `lanemap batch run` and the cron schedule go through it too.
 *
 * Overlap is prevented by the batch lock (lock.ts), across processes; a crash leaves only a staging
 * folder whose DuckDB file is the checkpoint the next run resumes from (staging.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ArchiveStore, FileModelRegistry, FilePublishedViews } from "../shared/adapters/archive/index.js";
import {
  BATCH_VIEW_FILES,
  LanemapError,
  dataPaths,
  describeError,
  serializeModel,
  versionName,
  type CatalogueEntry,
  type Config,
  type ClassifiedTile,
  type ErrorCode,
  type ModelClass,
  type ModelRegistry,
  type StreamReplay,
  type PublishedViews,
} from "../shared/index.js";
import type { TileArchive } from "../shared/index.js";
import { BatchLeases, retryTransient, type HeldBatchLease } from "../shared/adapters/nats/index.js";
import type { BatchVersion } from "../shared/adapters/archive/index.js";
import { rowsToArrowIpc } from "./arrow-export.js";
import { readRunSet, type QuarantinedTile, type RunSet, type WatermarkProvider } from "./catalogue.js";
import { acquireBatchLock, type BatchLock } from "./lock.js";
import { resolveRunModel } from "./models.js";
import { chooseOrdering, orderEntries, placeEntries, resolveAround, type OrderKind } from "./ordering.js";
import { createProgressSink, type ProgressSink, type RunProgress } from "./progress.js";
import {
  applyRetention,
  nextVersionNumber,
  publishStagedView,
  readCurrentVersion,
  type PointerLease,
  type RetentionReport,
} from "./publisher.js";
import { openStaging } from "./staging.js";
import { removeQueuedTasks } from "./stream-executor.js";
import { NO_TEST_HOOKS, type BatchTestHooks } from "./test-hooks.js";
import { readStreamRunSet } from "./stream-run-set.js";
import { StagingViewStore, type TileFailure } from "./view-store.js";
import { createTilePool } from "./worker-pool.js";
import { checkExecutor, openTileExecutor, type ExecutorKind } from "./executor.js";
import type { TilePool } from "../shared/index.js";

/** Options of one run. */
export interface BatchRunOptions {
  /** Recompute every tile instead of reusing unchanged ones from the current version. */
  readonly full?: boolean;
  /** Point of interest: a tile id, a cell key or "lon,lat"; implies hilbert-around unless `order` is given. */
  readonly around?: string;
  /** Processing order (default config.batch.order, or hilbert-around with `around`). */
  readonly order?: OrderKind;
  /** Model to apply: a stored version or a model file (default: the registry's active model). */
  readonly model?: string;
  /** Stops the run: no more tiles are dispatched, nothing is published, the checkpoint is kept. */
  readonly signal?: AbortSignal;
  /**
   * Progressive publish: classify the viewport's tiles first, publish an interim view that carries
   * the current view's rows for every other tile, then go on to the final view (see
   * {@link InterimRequest}). Without a current view to carry from there is no interim.
   */
  readonly interim?: InterimRequest;
  /**
   * Kappa mode: take the run set from the ingest stream, from `fromSeq` (default 1) up to the
   * watermark, instead of the catalogue (stream-run-set.ts). Needs `deps.nc`.
   */
  readonly fromStream?: {
    readonly fromSeq?: number;
    /**
     * Publish even when catalogue tiles up to the watermark are not in the replayed range (bulk
     * loads with `lanemap archive add` never are): the view then lacks them. Without it such a run
     * refuses with REPLAY_INCOMPLETE before classifying anything (see takeRunSet).
     */
    readonly allowPartial?: boolean;
  };
  /** Where tiles are classified (default config.batch.executor; `stream` needs `deps.nc`). */
  readonly executor?: ExecutorKind;
}

/** Which tiles an interim view waits for. */
export interface InterimRequest {
  /**
   * The analyst's viewport in WGS 84 degrees: the tiles it shows at least 5 % of (by their lon/lat
   * bounds; a tile that only touches an edge is outside). Without it, the first `tiles` of the
   * run's order.
   */
  readonly viewport?: {
    readonly minLon: number;
    readonly minLat: number;
    readonly maxLon: number;
    readonly maxLat: number;
  };
  /** Tiles to wait for without a viewport (default {@link DEFAULT_INTERIM_TILES}). */
  readonly tiles?: number;
}

/** Tiles an interim view waits for when the request names no viewport: a 4×4 map of cells. */
export const DEFAULT_INTERIM_TILES = 16;

/** What a finished run did. */
export interface RunReport {
  readonly runId: string;
  /** The published version's name (e.g. "v000007") and folder. */
  readonly version: string;
  readonly dir: string;
  readonly watermark: number;
  readonly modelVersion: string;
  /** Where the tiles came from; for "stream", the range replayed and the messages left out. */
  readonly source: "catalogue" | "stream";
  readonly stream?: StreamReplay;
  /** The ordering, e.g. "hilbert" or "hilbert-around@12.5,3.5". */
  readonly order: string;
  readonly tiles: {
    /** Tiles in this run (catalogue entries up to the watermark). */
    readonly total: number;
    /** Classified by this run's workers. */
    readonly classified: number;
    /** Copied from the previous version (same content hash and model). */
    readonly reused: number;
    /** Taken from the checkpoint of an interrupted run. */
    readonly resumed: number;
    readonly failed: number;
    /** Catalogue entries above the watermark, left to the speed lane. */
    readonly excluded: number;
    /** Entries up to the watermark left out as the speed lane's permanent dead letters (not in `total`). */
    readonly quarantined: number;
  };
  readonly cells: number;
  /** Pixels (width x height) classified by this run's workers. */
  readonly pixels: number;
  /** Of those, the valid ones (not nodata), which is what the peer counts. */
  readonly validPixels: number;
  readonly failures: readonly TileFailure[];
  /** The quarantined entries, by tile id: not failures of this run, so they leave the exit code 0. */
  readonly quarantined: readonly QuarantinedTile[];
  /**
   * Who classified: with the threads executor the worker threads the run used (its slots); with the
   * stream executor the distinct `lanemap worker` processes that returned results, not the window.
   */
  readonly workers: number;
  /** Threads: worker threads replaced after a deadline or a crash. Stream: always 0 (see below). */
  readonly replacedWorkers: number;
  /**
   * Stream executor only: tiles whose result came from a redelivered task, i.e. a `lanemap worker`
   * was lost holding it (or missed its deadline) and another took it. Absent for threads.
   */
  readonly redeliveredTasks?: number;
  readonly resumedFrom: string | undefined;
  /** The interim view published on the way (progressive publish), if any. */
  readonly interim?: { readonly version: string; readonly tiles: number; readonly carried: number };
  readonly retention: RetentionReport;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
}

/** A run's lifecycle. */
export type RunState = "queued" | "running" | "succeeded" | "failed";

/** What `status()` tells about a run. */
export interface RunStatus {
  readonly runId: string;
  readonly state: RunState;
  readonly queuedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly progress?: { readonly done: number; readonly total: number; readonly failed: number };
  readonly report?: RunReport;
  readonly error?: { readonly code: ErrorCode; readonly message: string };
}

/** What a runner needs besides the configuration. */
export interface BatchRunnerDeps {
  readonly logger: Logger;
  /**
   * The speed lane's acknowledged floor (infra wires the JetStream consumer's ack floor when NATS is
   * configured). Without it the watermark is the highest ingest sequence in the catalogue.
   */
  readonly watermark?: WatermarkProvider;
  /**
   * The model registry whose active model runs apply (default: the data directory's file registry;
   * infra passes the NATS one when NATS is configured, so both lanes read one pointer).
   */
  readonly models?: ModelRegistry;
  /**
   * The master archive runs read (default: the files archive in config.dataDir; infra passes the
   * one `config.storage.backend` names, see infra/platform/storage.ts).
   */
  readonly archive?: TileArchive;
  /**
   * Where versions are published and CURRENT moves (default: the data directory's views/batch/;
   * infra passes the NATS store with LANEMAP_STORAGE=nats). The previous version is read through it.
   */
  readonly views?: PublishedViews;
  /** Progress of each run (default: structured log lines). */
  readonly progress?: ProgressSink;
  /** Test hooks, parsed by the composition root (default: none). */
  readonly hooks?: BatchTestHooks;
  /** The deployment's NATS connection: `fromStream` runs replay its ingest stream. */
  /** The NATS connection the stream executor publishes tasks on (executor.ts). */
  readonly nc?: NatsConnection;
}

/** Starts and reports batch runs. */
export interface BatchRunner {
  /** Runs now and resolves with the report; throws BatchRunningError when a run is active anywhere. */
  run(options?: BatchRunOptions): Promise<RunReport>;
  /**
   * Starts a run in the background and resolves with its id once it holds the coordinator lease
   * (at once for a run that takes none), so a caller never hears of a run another machine's
   * coordinator refuses. Follow it with `status(runId)`.
   * @throws BatchRunningError (BATCH_RUN_ACTIVE) when this data directory's lock is held (a run of
   *   this runner, or another process on this machine); BatchLeaseHeldError (BATCH_RUN_ACTIVE,
   *   naming the holder) when another coordinator holds the lease; STORAGE when the lease cannot
   *   be taken for want of JetStream.
   */
  trigger(options?: BatchRunOptions): Promise<{ runId: string }>;
  /** A run of this runner (the last 100 are remembered), or undefined. */
  status(runId: string): RunStatus | undefined;
  /** The run this runner has queued or running, or undefined when it is idle. */
  current(): RunStatus | undefined;
  /**
   * Terminates the tile threads the runner keeps warm between runs (idle ones do not keep the
   * process alive, so this is for an orderly stop). A later run starts new ones. Stop a run in
   * progress with its `signal` first.
   */
  close(): Promise<void>;
}

const KEEP_STATUSES = 100;
/** Results appended per committed checkpoint batch, and the longest a result waits unwritten. */
const FLUSH_ROWS = 32;
const FLUSH_MS = 1000;

/** A new run id: UTC start time (so ids sort by age) and a random suffix. */
export function newRunId(now = new Date()): string {
  const t = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${t}-${randomBytes(3).toString("hex")}`;
}

/** Creates a runner for the data directory and batch settings of `config`. */
export function createBatchRunner(config: Config, deps: BatchRunnerDeps): BatchRunner {
  const statuses = new Map<string, RunStatus>();
  let active: string | undefined;
  const hooks = deps.hooks ?? NO_TEST_HOOKS;
  // One set of tile threads for every run of this runner, started by the first run and kept warm
  // (idle threads keep the process alive no more than a closed pool): a run after a model
  // activation starts classifying at once instead of after ~2 s of CPU per thread spent loading
  // modules. A run that fails or is stopped closes it; the next run starts a new one.
  let warm: TilePool | undefined;
  const warmPool = {
    get: (): TilePool =>
      (warm ??= createTilePool({ size: config.batch.workers, deadlineMs: config.decodeTimeoutMs })),
    drop: async (): Promise<void> => {
      const w = warm;
      warm = undefined;
      await w?.close();
    },
  };

  const setStatus = (s: RunStatus) => {
    statuses.set(s.runId, s);
    while (statuses.size > KEEP_STATUSES) {
      const oldest = statuses.keys().next().value;
      if (oldest === undefined || oldest === active) break;
      statuses.delete(oldest);
    }
  };
  const patch = (runId: string, p: Partial<RunStatus>) => {
    const s = statuses.get(runId);
    if (s) setStatus({ ...s, ...p });
  };

  /** Takes the lock synchronously so that a second trigger is refused at once. */
  const begin = (): { runId: string; lock: BatchLock } => {
    const runId = newRunId();
    const lock = acquireBatchLock(config.dataDir, { runId, logger: deps.logger });
    active = runId;
    setStatus({ runId, state: "queued", queuedAt: new Date().toISOString() });
    return { runId, lock };
  };

  /** One run under `lock`; `onLeased` hears when it holds its coordinator lease (or needs none). */
  const execute = async (
    runId: string,
    lock: BatchLock,
    options: BatchRunOptions,
    onLeased: () => void = () => {},
  ): Promise<RunReport> => {
    const log = deps.logger.child({ runId });
    patch(runId, { state: "running", startedAt: new Date().toISOString() });
    let lease: HeldBatchLease | undefined;
    try {
      lease = await takeCoordinatorLease(config, deps, runId, options, log);
      onLeased();
      // A lost lease stops the run as a stop signal would: nothing published, the checkpoint kept.
      const signal =
        lease && options.signal
          ? AbortSignal.any([options.signal, lease.signal])
          : (lease?.signal ?? options.signal);
      const report = await executeRun(
        config,
        { ...deps, hooks, logger: log, warmPool, ...(lease ? { lease } : {}) },
        runId,
        { ...options, ...(signal ? { signal } : {}) },
        (p) => {
          patch(runId, { progress: { done: p.done, total: p.total, failed: p.failed } });
          lease?.note({ progress: { done: p.done, total: p.total } });
        },
      );
      patch(runId, { state: "succeeded", finishedAt: report.finishedAt, report });
      return report;
    } catch (thrown) {
      // The run's own abort error says less than why its lease was lost.
      const err: unknown =
        lease?.signal.aborted && !options.signal?.aborted ? (lease.signal.reason as unknown) : thrown;
      await warmPool.drop();
      const code = err instanceof LanemapError ? err.code : "BATCH_FAILED";
      // A refusal (another coordinator holds the lease) is the caller's one line to say, as the lock's is.
      if (code !== "BATCH_RUN_ACTIVE") log.error({ code, err: describeError(err) }, "batch run failed");
      patch(runId, {
        state: "failed",
        finishedAt: new Date().toISOString(),
        error: { code, message: describeError(err) },
      });
      throw err;
    } finally {
      await lease?.release();
      lock.releaseSync();
      if (active === runId) active = undefined;
    }
  };

  return {
    run(options = {}) {
      let started: { runId: string; lock: BatchLock };
      try {
        started = begin();
      } catch (err) {
        return Promise.reject(err);
      }
      return execute(started.runId, started.lock, options);
    },
    async trigger(options = {}) {
      const { runId, lock } = begin();
      // The caller hears of the run once it holds the coordinator lease: refused by another
      // machine's coordinator, it is the caller's BATCH_RUN_ACTIVE naming the holder, as `lanemap
      // batch run` says it, not the id of a run that fails in the background a moment later.
      let leased = () => {};
      const holding = new Promise<void>((resolve) => (leased = resolve));
      const run = execute(runId, lock, options, leased);
      // The outcome is kept in the run's status; the background promise must not go unhandled.
      run.catch(() => undefined);
      await Promise.race([holding, run]);
      return { runId };
    },
    status: (runId) => statuses.get(runId),
    current: () => (active ? statuses.get(active) : undefined),
    close: () => warmPool.drop(),
  };
}

/**
 * Takes the batch coordinator lease when the run is distributed (its views in NATS, or its tiles
 * on the stream executor's work queue, so other machines' coordinators share its state; the batch
 * lock, lock.ts, only covers this data directory): undefined for a run on this machine alone.
 * @throws BatchLeaseHeldError (BATCH_RUN_ACTIVE) naming the holder when another coordinator holds it.
 */
async function takeCoordinatorLease(
  config: Config,
  deps: BatchRunnerDeps,
  runId: string,
  options: BatchRunOptions,
  log: Logger,
): Promise<HeldBatchLease | undefined> {
  const kind = options.executor ?? config.batch.executor;
  if (!deps.nc || (deps.views?.backend !== "nats" && kind !== "stream")) return undefined;
  const leases = await BatchLeases.open(deps.nc, {
    ttlMs: config.batch.leaseTtlMs,
    replicas: config.storage.replicas,
    logger: log,
  });
  const building = versionName(await nextVersionNumber(config.dataDir, deps.views));
  return leases.acquire({ runId, startedAt: new Date().toISOString(), building });
}

/** The runner's warm tile threads (see createBatchRunner). */
interface WarmPool {
  get(): TilePool;
  drop(): Promise<void>;
}

/** One run, under the lock (and the coordinator lease, `deps.lease`, when it is distributed). */
async function executeRun(
  config: Config,
  deps: BatchRunnerDeps & { hooks: BatchTestHooks; warmPool?: WarmPool; lease?: HeldBatchLease },
  runId: string,
  options: BatchRunOptions,
  onProgress: (p: RunProgress) => void,
): Promise<RunReport> {
  const log = deps.logger;
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const signal = options.signal;
  checkExecutor(options.executor ?? config.batch.executor, deps.nc);
  const store = deps.archive ?? new ArchiveStore(config.dataDir);

  const registry = deps.models ?? (await FileModelRegistry.open(config.dataDir));
  const views = deps.views ?? new FilePublishedViews(config.dataDir);
  // The reads before the run starts, each retried through a leader election and named when it fails
  // (the operator's `batch run` ended with a bare "lanemap: timeout", issue 14). A replay registers
  // tiles, so it is only named, not retried.
  const model = await runStep("resolving the run's model", () => resolveRunModel(registry, options.model), {
    log,
    signal,
  });
  const modelVersion = model.version;
  const runSet = await runStep(
    options.fromStream ? "reading the ingest stream's run set" : "reading the catalogue up to the watermark",
    () => takeRunSet(config, deps, store, options),
    { log, signal, retry: !options.fromStream },
  );
  if (runSet.entries.length === 0)
    throw new LanemapError(
      "ARCHIVE_EMPTY",
      runSet.stream
        ? `no tile in ${runSet.stream.stream} from sequence ${runSet.stream.fromSeq} up to watermark ${runSet.watermark}`
        : runSet.quarantined?.length
          ? `every catalogue entry up to watermark ${runSet.watermark} is quarantined (${runSet.quarantined.length} dead-lettered by the speed lane; lanemap archive list --bad)`
          : `no catalogue entry up to watermark ${runSet.watermark}; add tiles first (lanemap archive add DIR)`,
    );
  const provenance = {
    source: runSet.source ?? "catalogue",
    ...(runSet.stream ? { stream: runSet.stream } : {}),
  };

  const placement = placeEntries(runSet.entries);
  const around = options.around === undefined ? undefined : resolveAround(options.around, placement);
  const ordering = chooseOrdering(options.order, around, config.batch.order, runId);
  const orderName =
    "around" in ordering ? `${ordering.kind}@${ordering.around.x},${ordering.around.y}` : ordering.kind;
  const ordered = orderEntries(placement, ordering);
  log.info(
    {
      watermark: runSet.watermark,
      tiles: runSet.entries.length,
      excluded: runSet.excluded,
      quarantined: runSet.quarantined?.length ?? 0,
      model: modelVersion,
      order: orderName,
      full: options.full ?? false,
    },
    "batch run started",
  );

  // --full recomputes every tile: an interrupted run's checkpoint is dropped, not resumed.
  const staging = await openStaging(config.dataDir, runId, { logger: log, discard: options.full ?? false });
  if (staging.discarded) {
    const d = staging.discarded;
    // Its tasks still queued would be classified for nobody: a resume takes them back, --full does not.
    const tasksRemoved =
      deps.nc && (options.executor ?? config.batch.executor) === "stream"
        ? await removeQueuedTasks(deps.nc, d.runId, log, "discarded")
        : 0;
    const done = d.tiles ? `${d.tiles.done} of ${d.tiles.total ?? "?"} tiles done` : "tiles done unknown";
    const ageS = Math.max(0, Math.round((Date.now() - Date.parse(d.modifiedAt)) / 1000));
    log.warn(
      { discardedRun: d.runId, tiles: d.tiles, modifiedAt: d.modifiedAt, tasksRemoved },
      `--full: discarded the checkpoint of interrupted run ${d.runId} (${done}, last written ${ageS} s ago` +
        (tasksRemoved > 0 ? `, ${tasksRemoved} of its tasks removed from the queue` : "") +
        "); every tile is recomputed",
    );
  }
  const view = staging.view;
  let closed = false;
  // The artifact goes into the version folder first: the workers load it from there, and the
  // published view carries exactly the model that made it.
  const modelPath = join(staging.dir, BATCH_VIEW_FILES.model);
  await writeFile(modelPath, serializeModel(model));
  try {
    await view.setRunSet(runSet.entries);
    const resumed = await view.pruneCheckpoint(modelVersion);
    let reused = 0;
    // CURRENT as the run found it: its publishes move the pointer only from this revision.
    const { version: previous, lease } = await readCurrentVersion(views);
    if (!options.full && previous) {
      reused = await view.reuseFrom(join(previous.dir, BATCH_VIEW_FILES.duckdb), modelVersion);
    }
    const finished = await view.finishedTileIds();
    const todo = ordered.filter((e) => !finished.has(e.tileId));
    // Progressive publish: the viewport's tiles (and any tile the current view cannot stand in for)
    // first, then an interim view, then the rest.
    let phases: (readonly CatalogueEntry[])[] = [todo];
    let between: ((failures: readonly TileFailure[]) => Promise<void>) | undefined;
    let interim: RunReport["interim"];
    if (options.interim && previous) {
      const carryable = await view.carryableTileIds(join(previous.dir, BATCH_VIEW_FILES.duckdb));
      const first = interimFirst(ordered, options.interim);
      const phase1 = todo.filter((e) => first.has(e.tileId) || !carryable.has(e.tileId));
      const phase2 = todo.filter((e) => !first.has(e.tileId) && carryable.has(e.tileId));
      if (phase2.length > 0) {
        phases = [phase1, phase2];
        between = async (failures) => {
          signal?.throwIfAborted();
          // Nor an interim view without them (see throwIfObjectsUnreadable).
          throwIfObjectsUnreadable(failures);
          log.info({ tiles: phase1.length }, "batch viewport classified; publishing the interim view");
          interim = await publishInterim(config, log, {
            runId,
            staging: view,
            previous,
            views,
            lease,
            ...(deps.lease ? { holding: deps.lease } : {}),
            model,
            draft: {
              watermark: runSet.watermark,
              startedAt,
              order: orderName,
              total: runSet.entries.length,
              provenance,
            },
            failures,
          });
        };
      }
    }
    log.info(
      {
        resumed,
        reused,
        todo: todo.length,
        previous: previous?.name ?? null,
        ...(phases.length > 1 ? { interimAfter: phases[0]?.length } : {}),
      },
      "batch work planned",
    );

    const outcome = await classifyAll(
      config,
      deps,
      runId,
      modelPath,
      phases,
      between,
      view,
      signal,
      onProgress,
      // A resumed run keeps its work-queue id, so the old incarnation's tasks and results count.
      { kind: options.executor ?? config.batch.executor, runId: staging.resumedFrom ?? runId },
    );
    signal?.throwIfAborted();
    throwIfObjectsUnreadable(outcome.failures);
    if (outcome.failures.length) await view.appendFailures(outcome.failures);

    const { cells, composited, clipped } = await view.finalizeComposites(model.classes);
    // A union grid over its bound keeps the covering tile's extent: pixels beyond it are left out.
    if (clipped.length)
      log.warn(
        { cells: clipped.slice(0, 10), count: clipped.length },
        "composite grid is the covering tile's, not the union of the cell's tiles",
      );
    const tally = await view.tally();
    if (tally.tiles === 0)
      throw new LanemapError(
        "BATCH_FAILED",
        `every one of the ${runSet.entries.length} tiles failed (first: ${outcome.failures[0]?.reason ?? "?"}); nothing published`,
      );

    log.info(
      { tiles: tally.tiles, cells, composited },
      "batch view complete; writing exports and publishing",
    );
    await view.exportParquet(join(staging.dir, BATCH_VIEW_FILES.parquet));
    const { columns, rows } = await view.tileRows();
    await writeFile(join(staging.dir, BATCH_VIEW_FILES.arrow), rowsToArrowIpc(columns, rows));
    closed = true;
    await view.closeCheckpointed();

    const finishedAt = new Date().toISOString();
    const classified = tally.tiles - tally.reused;
    const published = await publishStagedView(
      config.dataDir,
      staging.dir,
      {
        watermark: runSet.watermark,
        modelVersion,
        startedAt,
        finishedAt,
        order: orderName,
        tiles: { total: runSet.entries.length, classified, reused: tally.reused, failed: tally.failed },
        cells,
        failures: outcome.failures,
        ...provenance,
      },
      {
        logger: log,
        views,
        lease,
        holding: deps.lease ? () => deps.lease!.confirm() : undefined,
        beforeRename: deps.hooks.publishDelayMs
          ? async () => {
              log.info(
                { delayMs: deps.hooks.publishDelayMs },
                "test hook: pausing before the publish rename",
              );
              await sleep(deps.hooks.publishDelayMs);
            }
          : undefined,
      },
    );
    const retention = await applyRetention(config.dataDir, config.batch.keep, { logger: log, views });
    const report: RunReport = {
      runId,
      version: published.name,
      dir: published.dir,
      watermark: runSet.watermark,
      modelVersion,
      ...provenance,
      order: orderName,
      tiles: {
        total: runSet.entries.length,
        classified: classified - resumed,
        reused: tally.reused,
        resumed,
        failed: tally.failed,
        excluded: runSet.excluded,
        quarantined: runSet.quarantined?.length ?? 0,
      },
      cells,
      pixels: outcome.pixels,
      validPixels: outcome.validPixels,
      failures: outcome.failures,
      quarantined: runSet.quarantined ?? [],
      workers: outcome.workers,
      replacedWorkers: outcome.replaced,
      ...(outcome.redelivered === undefined ? {} : { redeliveredTasks: outcome.redelivered }),
      resumedFrom: staging.resumedFrom,
      ...(interim ? { interim } : {}),
      retention,
      startedAt,
      finishedAt,
      durationMs: Math.round(performance.now() - t0),
    };
    log.info(
      { version: report.version, tiles: report.tiles, durationMs: report.durationMs },
      "batch run succeeded",
    );
    return report;
  } finally {
    // On failure the staging file stays as the checkpoint; closing without CHECKPOINT keeps the WAL.
    if (!closed) view.closeSync();
  }
}

/**
 * Fails the run, before anything is published, when some catalogued tiles' objects could not be
 * read (OBJECT_MISSING after every delivery): storage lost sight of them (a replica that diverged
 * after node restarts, issue 14), the tiles are not bad, so a view without them must not replace
 * the current one. Not recorded as the checkpoint's failures: a re-run (resumed) tries them again.
 * @throws LanemapError ARCHIVE_OBJECTS_UNREADABLE naming how many tiles and the first one's cause.
 */
function throwIfObjectsUnreadable(failures: readonly TileFailure[]): void {
  const missing = failures.filter((f) => f.code === "OBJECT_MISSING");
  const first = missing[0];
  if (!first) return;
  throw new LanemapError(
    "ARCHIVE_OBJECTS_UNREADABLE",
    `archive objects unreadable: ${missing.length} tiles (e.g. ${first.tileId}: ${first.reason}); ` +
      "the previous view stays current; check `lanemap ops status`",
  );
}

/** How long a step before the run starts is retried after its first transient broker error (ms). */
const STEP_RETRY_MS = 30_000;

/**
 * Runs one step of a run's start-up through transient broker errors (a leader election:
 * retryTransient, for {@link STEP_RETRY_MS}; not at all with `retry: false`); a failure not already
 * lanemap's is thrown as `"<what>: <message>"`, NATS_CONNECT when transient, else BATCH_FAILED.
 */
function runStep<T>(
  what: string,
  op: () => Promise<T>,
  opts: { readonly log: Logger; readonly signal?: AbortSignal | undefined; readonly retry?: boolean },
): Promise<T> {
  return retryTransient(what, op, {
    deadlineMs: opts.retry === false ? 0 : STEP_RETRY_MS,
    logger: opts.log,
    ...(opts.signal ? { signal: opts.signal } : {}),
    failureCode: "BATCH_FAILED",
  });
}

/** The run set the options name: the catalogue up to the watermark, or a replay of the ingest stream. */
async function takeRunSet(
  config: Config,
  deps: BatchRunnerDeps,
  store: TileArchive,
  options: BatchRunOptions,
): Promise<RunSet> {
  if (!options.fromStream) return readRunSet(store, deps.watermark);
  if (!deps.nc)
    throw new LanemapError("CONFIG", "a run from the ingest stream needs NATS (NATS_URL or --nats)");
  // The catalogue as it was before the replay registers the stream's tiles in it.
  const catalogue: CatalogueEntry[] = [];
  for await (const e of store.entries()) catalogue.push(e);
  const runSet = await readStreamRunSet({
    nc: deps.nc,
    archive: store,
    maxPixels: config.maxPixels,
    logger: deps.logger,
    ...(deps.watermark ? { watermark: deps.watermark } : {}),
    ...(options.fromStream.fromSeq === undefined ? {} : { fromSeq: options.fromStream.fromSeq }),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // Kappa mode promises the catalogue run's view. A replay that lacks catalogue tiles would publish
  // a smaller map as CURRENT and every serve instance would drop the missing cells (issue 14: 9 of
  // 80 tiles, 72 cells gone), so it is refused unless the operator asked for it.
  const replayed = new Set(runSet.entries.map((e) => e.tileId));
  for (const x of runSet.stream?.excluded ?? []) if (x.tileId) replayed.add(x.tileId);
  for (const q of runSet.quarantined ?? []) replayed.add(q.tileId);
  const absent = catalogue.filter((e) => e.ingestSeq <= runSet.watermark && !replayed.has(e.tileId));
  if (absent.length > 0) {
    const bulk = absent.filter((e) => e.source === "bulk").length;
    const message =
      `${absent.length} of ${catalogue.length} catalogue tiles are not in the replayed range of ${runSet.stream?.stream ?? "the ingest stream"} ` +
      `(${bulk} bulk-loaded with \`lanemap archive add\`, e.g. ${absent[0]!.tileId}): a view from the stream would drop them`;
    if (!options.fromStream.allowPartial)
      throw new LanemapError(
        "REPLAY_INCOMPLETE",
        `${message}; run without --from-stream, or give --allow-partial to publish it anyway`,
      );
    deps.logger.warn({ absent: absent.length, catalogue: catalogue.length }, `${message} (--allow-partial)`);
  }
  return runSet;
}

/**
 * Classifies the tiles of each phase in turn on one worker pool, appending results to the checkpoint
 * as they arrive; once a phase is done and written, `between` runs (the interim publish) before the
 * next phase starts.
 */
async function classifyAll(
  config: Config,
  deps: BatchRunnerDeps & { hooks: BatchTestHooks; warmPool?: WarmPool },
  runId: string,
  modelPath: string,
  phases: readonly (readonly CatalogueEntry[])[],
  between: ((failures: readonly TileFailure[]) => Promise<void>) | undefined,
  view: { appendFinished(t: readonly ClassifiedTile[]): Promise<void> },
  signal: AbortSignal | undefined,
  onProgress: (p: RunProgress) => void,
  exec: { kind: ExecutorKind; runId: string },
): Promise<{
  failures: TileFailure[];
  pixels: number;
  validPixels: number;
  workers: number;
  replaced: number;
  redelivered: number | undefined;
}> {
  const failures: TileFailure[] = [];
  const total = phases.reduce((n, p) => n + p.length, 0);
  if (total === 0)
    return {
      failures,
      pixels: 0,
      validPixels: 0,
      workers: 0,
      replaced: 0,
      redelivered: exec.kind === "stream" ? 0 : undefined,
    };
  const log = deps.logger;
  const sink = deps.progress ?? createProgressSink({ logger: log });
  const pool = await openTileExecutor({
    kind: exec.kind,
    config,
    logger: log,
    modelPath,
    size: Math.min(config.batch.workers, total),
    tileDelayMs: deps.hooks.tileDelayMs,
    ...(deps.warmPool && exec.kind === "threads" ? { warm: deps.warmPool.get() } : {}),
    ...(deps.nc ? { nc: deps.nc } : {}),
    ...(deps.models ? { models: deps.models } : {}),
    ...(deps.archive ? { archive: deps.archive } : {}),
    runId: exec.runId,
    tileIds: new Set(phases.flatMap((p) => p.map((e) => e.tileId))),
    ...(signal ? { signal } : {}),
  });
  const size = Math.min(pool.slots, total);
  let pixels = 0;
  let validPixels = 0;
  let done = 0;
  let buffer: ClassifiedTile[] = [];
  let lastFlush = performance.now();
  // Checkpoint writes are serialised; a lane waits for its flush, which bounds what is held.
  let writing: Promise<void> = Promise.resolve();
  const flush = () => {
    const batch = buffer;
    buffer = [];
    lastFlush = performance.now();
    if (batch.length === 0) return writing;
    writing = writing.then(async () => {
      await view.appendFinished(batch);
      log.debug({ rows: batch.length }, "checkpoint written");
    });
    return writing;
  };
  const progress = (tileId?: string): RunProgress => ({
    runId,
    total,
    done,
    failed: failures.length,
    tileId,
  });
  sink.start(progress());
  let todo: readonly CatalogueEntry[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < todo.length) {
      signal?.throwIfAborted();
      const entry = todo[next++];
      if (!entry) break;
      const o = await pool.process(entry);
      done++;
      if (o.ok) {
        pixels += o.result.width * o.result.height;
        validPixels += o.result.validPixels;
        buffer.push({ result: o.result, k: o.k, raster: o.raster });
        if (buffer.length >= FLUSH_ROWS || performance.now() - lastFlush >= FLUSH_MS) await flush();
      } else {
        failures.push({ tileId: entry.tileId, code: o.code, reason: o.reason });
        log.warn({ tileId: entry.tileId, code: o.code, reason: o.reason }, "tile failed");
      }
      const p = progress(entry.tileId);
      onProgress(p);
      sink.update(p);
    }
  };
  try {
    for (const [i, phase] of phases.entries()) {
      if (i > 0 && between) {
        await flush();
        await between(failures);
      }
      todo = phase;
      next = 0;
      await Promise.all(Array.from({ length: Math.min(size, Math.max(1, phase.length)) }, lane));
    }
  } finally {
    await flush();
    sink.stop(progress());
    // A stopped run's tiles in flight are cancelled, as before: the warm threads go with them. A
    // run that ends otherwise (done, or failed) leaves no task on the work queue; a stopped one
    // keeps them for its resume.
    const stopped = signal?.aborted ?? false;
    await pool.close({ force: stopped, purge: !stopped });
  }
  return {
    failures,
    pixels,
    validPixels,
    workers: pool.workers ?? size,
    replaced: pool.replaced,
    redelivered: pool.redelivered,
  };
}

/**
 * Least share of a tile's WGS 84 bounds a viewport must cover for the tile to count as visible: the
 * lon/lat bounds of tiles in a projected CRS are boxes around a slightly curved footprint, so
 * neighbours' boxes overlap by a sliver, and a viewport fitted to 4×4 cells would otherwise also
 * wait for the ring around them.
 */
const VIEWPORT_SHARE = 0.05;

/** The tile ids an interim view waits for (see InterimRequest). */
function interimFirst(ordered: readonly CatalogueEntry[], request: InterimRequest): Set<string> {
  const v = request.viewport;
  if (!v) return new Set(ordered.slice(0, request.tiles ?? DEFAULT_INTERIM_TILES).map((e) => e.tileId));
  return new Set(
    ordered
      .filter((e) => {
        const b = e.boundsWgs84;
        if (b === null) return false;
        const w = Math.min(b.maxX, v.maxLon) - Math.max(b.minX, v.minLon);
        const h = Math.min(b.maxY, v.maxLat) - Math.max(b.minY, v.minLat);
        return w > 0 && h > 0 && w * h >= VIEWPORT_SHARE * (b.maxX - b.minX) * (b.maxY - b.minY);
      })
      .map((e) => e.tileId),
  );
}

/**
 * Publishes an interim view: the rows the run has so far (its checkpoint) plus, for every other
 * run-set tile, the current view's row as it is, with the union of both models' classes. The same
 * publisher as the final view (atomic rename, next version number, same watermark); the checkpoint
 * is not touched. A failure is logged and the run goes on to its final view: the interim only ever
 * makes the viewport appear sooner.
 */
async function publishInterim(
  config: Config,
  log: Logger,
  p: {
    runId: string;
    staging: StagingViewStore;
    previous: BatchVersion;
    views: PublishedViews;
    lease: PointerLease;
    /** The coordinator lease of a distributed run, confirmed before the interim moves CURRENT. */
    holding?: HeldBatchLease;
    model: Parameters<typeof serializeModel>[0];
    draft: {
      watermark: number;
      startedAt: string;
      order: string;
      total: number;
      provenance: Pick<RunReport, "source" | "stream">;
    };
    failures: readonly TileFailure[];
  },
): Promise<RunReport["interim"]> {
  // Named to sort before run ids, so a crash's leftover is never adopted as the run's checkpoint.
  const dir = join(dataPaths(config.dataDir).batchStaging, `.interim-${p.runId}`);
  try {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const dbPath = join(dir, BATCH_VIEW_FILES.duckdb);
    (await StagingViewStore.open(dbPath)).closeSync();
    const { carried, previousClasses } = await p.staging.copyInterim(
      dbPath,
      join(p.previous.dir, BATCH_VIEW_FILES.duckdb),
    );
    const classes = new Map<number, ModelClass>(previousClasses.map((c) => [c.id, c]));
    for (const c of p.model.classes) classes.set(c.id, c);
    const iv = await StagingViewStore.open(dbPath);
    let closed = false;
    let cells: number;
    let tally: { tiles: number; reused: number };
    let modelVersions: string[];
    try {
      ({ cells } = await iv.finalizeComposites([...classes.values()].sort((a, b) => a.id - b.id)));
      tally = await iv.tally();
      modelVersions = await iv.modelVersions();
      await iv.exportParquet(join(dir, BATCH_VIEW_FILES.parquet));
      const { columns, rows } = await iv.tileRows();
      await writeFile(join(dir, BATCH_VIEW_FILES.arrow), rowsToArrowIpc(columns, rows));
      closed = true;
      await iv.closeCheckpointed();
    } finally {
      if (!closed) iv.closeSync();
    }
    await writeFile(join(dir, BATCH_VIEW_FILES.model), serializeModel(p.model));
    const published = await publishStagedView(
      config.dataDir,
      dir,
      {
        watermark: p.draft.watermark,
        modelVersion: p.model.version,
        startedAt: p.draft.startedAt,
        finishedAt: new Date().toISOString(),
        order: p.draft.order,
        tiles: {
          total: p.draft.total,
          classified: tally.tiles - tally.reused,
          reused: tally.reused - carried,
          failed: p.failures.length,
        },
        cells,
        failures: [...p.failures],
        carried: { tiles: carried, fromVersion: p.previous.name, modelVersions },
        ...p.draft.provenance,
      },
      {
        logger: log,
        views: p.views,
        lease: p.lease,
        holding: p.holding ? () => p.holding!.confirm() : undefined,
      },
    );
    log.info(
      { version: published.name, tiles: tally.tiles - carried, carried, fromVersion: p.previous.name },
      "batch interim view published",
    );
    return { version: published.name, tiles: tally.tiles - carried, carried };
  } catch (err) {
    log.warn({ err: describeError(err) }, "batch interim view not published; the run goes on");
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    return undefined;
  }
}
