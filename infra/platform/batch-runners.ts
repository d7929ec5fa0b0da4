/**
 * Batch runners are built here and nowhere else: `lanemap start`, serve's operator trigger,
 * `lanemap batch run` and `batch schedule` all call `buildBatchRunner`, so every runner that can
 * reach NATS takes the speed consumer's ack floor as its watermark (tiles the speed lane has not
 * acknowledged stay with it; see the README's view contract) and applies the model registry's active
 * model, the same pointer the speed lane follows. Before, only `start` and `serve` wired the ack
 * floor, and `batch run`/`schedule` fell back to the catalogue's highest sequence.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  createBatchRunner,
  type BatchRunner,
  type BatchTestHooks,
  type ProgressSink,
} from "../../batch/index.js";
import type { Config, ModelRegistry, TileArchive } from "../../shared/index.js";
import { openModelRegistry } from "./models.js";
import { openTileArchive } from "./storage.js";
import { openPublishedViews } from "./views.js";
import { ingestClockWatermark } from "./ingest-clock.js";

/** What a runner is built from besides the configuration. */
export interface BatchRunnerSetup {
  readonly logger: Logger;
  /** The NATS connection of the process, when NATS is configured or embedded. */
  readonly nc?: NatsConnection;
  /** The registry the process already opened (default: opened here, NATS when `nc`, else files). */
  readonly models?: ModelRegistry;
  /** The archive the process already opened (default: opened here as `config.storage.backend` says). */
  readonly archive?: TileArchive;
  readonly progress?: ProgressSink;
  readonly hooks?: BatchTestHooks;
}

/** Builds a batch runner with the deployment's watermark and model registry. */
export async function buildBatchRunner(
  config: Config,
  setup: BatchRunnerSetup,
): Promise<{ readonly runner: BatchRunner; readonly models: ModelRegistry }> {
  const models = setup.models ?? (await openModelRegistry(config, setup.nc, setup.logger));
  const archive = setup.archive ?? (await openTileArchive(config, setup.nc, setup.logger));
  // Where versions are published and CURRENT moves (LANEMAP_STORAGE: files, or NATS via `nc`).
  const views = await openPublishedViews(config, setup.nc, setup.logger);
  const runner = createBatchRunner(config, {
    logger: setup.logger,
    models,
    archive,
    views,
    // Every run first checks the ingest stream against lanemap's record (a recreated stream is refused).
    ...(setup.nc ? { watermark: ingestClockWatermark(setup.nc, { views, archive }), nc: setup.nc } : {}),
    ...(setup.progress ? { progress: setup.progress } : {}),
    ...(setup.hooks ? { hooks: setup.hooks } : {}),
  });
  return { runner, models };
}
