import type { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { Registry, collectDefaultMetrics } from "prom-client";
import {
  brokerError,
  connectNats,
  retryTransient,
  speedLaneStatus,
  drainWithin,
} from "../../../shared/adapters/nats/index.js";
import { createServer, type BatchTrigger } from "../../../serving/index.js";
import { batchTriggerFor } from "../../platform/batch-trigger.js";
import { buildBatchRunner } from "../../platform/batch-runners.js";
import { openModelRegistry } from "../../platform/models.js";
import { openTileArchive } from "../../platform/storage.js";
import { openPublishedViews } from "../../platform/views.js";
import { refuseIngestStreamBehind } from "../../platform/ingest-clock.js";
import { modelTrainerFor } from "../../platform/trainer.js";
import { TrainPool } from "../../../shared/index.js";
import { STOP_DRAIN_MS, stopSignal } from "../stop.js";
import { embeddedNatsUrl } from "../nats-connect.js";
import { UsageError } from "../usage.js";
import { cliConfig } from "../config.js";
import { cliLogger } from "../logger.js";
import { commandSummary } from "./index.js";

interface ServeFlags {
  port?: string;
  host?: string;
  nats?: string;
  natsLive?: boolean;
  batchRuns?: boolean;
}

async function natsFor(
  flags: ServeFlags,
  url: string | undefined,
  logger: Logger,
): Promise<NatsConnection | undefined> {
  if (flags.natsLive === false) return undefined;
  if (!url) {
    logger.warn(
      "no NATS server (set NATS_URL or --nats, or run `lanemap start`): serving the batch view only",
    );
    return undefined;
  }
  return connectNats({ servers: url, name: `lanemap-serve ${process.pid}`, logger });
}

/** How long each start-up step retries transient broker errors: longer than an R3 leader election. */
const START_RETRY_MS = 20_000;

/**
 * `lanemap serve`: the serving layer alone, against NATS_URL (or the embedded server of a running
 * `lanemap start`) for the live view; without NATS it serves the batch view only. Operator batch
 * runs are wired in-process when LANEMAP_OPERATOR_TOKEN is set (unless --no-batch-runs).
 * SIGTERM/SIGINT finish the requests in flight, release the views and exit 0.
 */
export function registerServe(program: Command): void {
  program
    .command("serve")
    .description(commandSummary("serve"))
    .option("--port <port>", "HTTP port (default PORT, else 8080; 0 = any free port)")
    .option("--host <host>", "interface to listen on (default HOST, else 127.0.0.1)")
    .option(
      "--nats <url>",
      "NATS server for the live view (default NATS_URL, else the embedded server of `lanemap start`)",
    )
    .option("--no-nats-live", "do not follow the live view (batch view only)")
    .option("--no-batch-runs", "do not wire batch runs to POST /v1/batch/runs")
    .action(async (flags: ServeFlags) => {
      if (flags.port !== undefined && (!/^\d{1,5}$/.test(flags.port) || Number(flags.port) > 65535))
        throw new UsageError(`--port must be a port number (0..65535), got "${flags.port}"`);
      const config = cliConfig({ PORT: flags.port, HOST: flags.host });
      const logger = await cliLogger(config.logLevel, { role: "serve", pid: process.pid });
      const url = flags.nats ?? config.natsUrl ?? (await embeddedNatsUrl(config.dataDir));
      const nc = await natsFor(flags, url, logger);
      // Each start-up step on NATS is idempotent (opens, creates what is absent): retried through a
      // leader election, and named when it still fails, never a bare "timeout".
      const startStep = <T>(what: string, op: () => Promise<T>) =>
        nc ? retryTransient(`serve start-up: ${what}`, op, { logger, deadlineMs: START_RETRY_MS }) : op();
      const jsm = nc ? await startStep("reaching JetStream", () => jetstreamManager(nc)) : undefined;
      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      const models = await startStep("opening the model registry", () =>
        openModelRegistry(config, nc, logger),
      );
      const archive = await startStep("opening the tile archive", () => openTileArchive(config, nc));
      const views = await startStep("opening the published views", () =>
        openPublishedViews(config, nc, logger),
      );
      // With the live view, merged by ingest sequence against W: a recreated ingest stream is refused.
      if (nc) await refuseIngestStreamBehind(nc, { views, archive }, { what: "serve start-up", logger });
      let batchTrigger: BatchTrigger | undefined;
      // Stops a triggered run at shutdown: nothing is published, its checkpoint is kept for the next run.
      const batchAbort = new AbortController();
      if (flags.batchRuns !== false && config.operatorToken) {
        const { runner } = await buildBatchRunner(config, {
          logger: logger.child({ role: "batch" }),
          models,
          archive,
          ...(nc ? { nc } : {}),
        });
        batchTrigger = batchTriggerFor(runner, batchAbort.signal);
      }
      const trainPool = new TrainPool({ timeoutMs: 10 * 60_000 });
      const server = createServer(config, {
        logger,
        ...(nc ? { nc } : {}),
        ...(batchTrigger ? { batchTrigger } : {}),
        // POST /v1/models trains in one worker thread started on the first job.
        ...(config.operatorToken
          ? {
              modelTrainer: modelTrainerFor({
                dataDir: config.dataDir,
                registry: models,
                pool: trainPool,
                maxPixels: config.maxPixels,
                archive,
              }),
            }
          : {}),
        metricsRegistry: registry,
        models,
        archive,
        views,
        ...(jsm ? { consumerLag: async () => (await speedLaneStatus(jsm)).consumer?.pending } : {}),
      });
      // The view follower's reads retry on their own (guarded.ts); what still fails is named here.
      const listening = await server.listen().catch((err: unknown) => {
        throw nc ? brokerError("serve start-up: loading the current batch view and the live view", err) : err;
      });
      // Listening for the stop signal before saying "serving": a supervisor may stop it at once.
      const stopping = stopSignal(logger);
      console.log(`lanemap serving at ${listening.url}${nc ? "" : " (batch view only)"}`);
      // Bounded (stop.ts): keep-alive and half-sent requests closed after a second, NATS drained
      // for at most STOP_DRAIN_MS, the whole within STOP_DEADLINE_MS.
      await stopping;
      batchAbort.abort();
      await listening.close();
      await trainPool.close();
      if (nc) await drainWithin(nc, STOP_DRAIN_MS);
    });
}
