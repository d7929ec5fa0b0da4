/**
 * Batch runners are built here and nowhere else: `lanemap start`, serve's operator trigger,
 * `lanemap batch run` and `batch schedule` all call `buildBatchRunner`, so every runner that can
 * reach NATS takes the speed consumer's ack floor as its watermark (tiles the speed lane has not
 * acknowledged stay with it; see the README's view contract) and applies the model registry's active
 * model, the same pointer the speed lane follows. Before, only `start` and `serve` wired the ack
 * floor, and `batch run`/`schedule` fell back to the catalogue's highest sequence.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  createBatchRunner,
  type BatchRunner,
  type BatchTestHooks,
  type ProgressSink,
  type WatermarkProvider,
} from "../../batch/index.js";
import { speedLaneStatus } from "../../shared/adapters/nats/index.js";
import type { Config, ModelRegistry, TileArchive } from "../../shared/index.js";
import { openModelRegistry } from "./models.js";
import { openTileArchive } from "./storage.js";
import { openPublishedViews } from "./views.js";

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

/**
 * The speed lane's ack floor as a watermark: the highest stream sequence below which every message
 * was acknowledged by the speed consumer. Without a speed consumer yet (no speed worker ever ran)
 * nothing is pending with the speed lane, so the whole catalogue is the batch lane's.
 */
export function ackFloorWatermark(nc: NatsConnection): WatermarkProvider {
  let jsm: Awaited<ReturnType<typeof jetstreamManager>> | undefined;
  return async () => {
    jsm ??= await jetstreamManager(nc);
    const s = await speedLaneStatus(jsm);
    return s.consumer ? s.consumer.ackFloorSeq : Number.MAX_SAFE_INTEGER;
  };
}

/** Builds a batch runner with the deployment's watermark and model registry. */
export async function buildBatchRunner(
  config: Config,
  setup: BatchRunnerSetup,
): Promise<{ readonly runner: BatchRunner; readonly models: ModelRegistry }> {
  const models = setup.models ?? (await openModelRegistry(config, setup.nc, setup.logger));
  const archive = setup.archive ?? (await openTileArchive(config, setup.nc, setup.logger));
  const runner = createBatchRunner(config, {
    logger: setup.logger,
    models,
    archive,
    // Where versions are published and CURRENT moves (LANEMAP_STORAGE: files, or NATS via `nc`).
    views: await openPublishedViews(config, setup.nc, setup.logger),
    ...(setup.nc ? { watermark: ackFloorWatermark(setup.nc), nc: setup.nc } : {}),
    ...(setup.progress ? { progress: setup.progress } : {}),
    ...(setup.hooks ? { hooks: setup.hooks } : {}),
  });
  return { runner, models };
}
