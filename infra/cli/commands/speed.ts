import type { Command } from "commander";
import type { Logger } from "pino";
import { Registry, collectDefaultMetrics } from "prom-client";
import { parseConfig, type Config } from "../../../shared/index.js";
import { STOP_DRAIN_MS, stopSignal } from "../stop.js";
import { startSpeedWorker, type SpeedWorkerHooks } from "../../../speed/index.js";
import { drainWithin } from "../../../shared/adapters/nats/index.js";
import { connectForCli } from "../nats-connect.js";
import { openModelRegistry } from "../../platform/models.js";
import { ingestStreamBehindRecord, refuseIngestStreamBehind } from "../../platform/ingest-clock.js";
import { openTileArchive } from "../../platform/storage.js";
import { openPublishedViews } from "../../platform/views.js";
import { UsageError, positiveInt } from "../usage.js";
import { metricsPortFlag, startMetricsServer } from "../metrics-server.js";
import { cliLogger } from "../logger.js";
import { parseTestHooks } from "../test-hooks.js";
import { commandSummary } from "./index.js";

interface SpeedFlags {
  concurrency?: string;
  metricsPort?: string;
  nats?: string;
  name?: string;
}

/**
 * Test hook: LANEMAP_TEST_TILE_DELAY_MS=<ms> makes every tile wait that long after it is registered
 * and before it is decoded (heartbeats keep going), so fault tests can kill a worker mid-tile.
 * Never set it in production.
 */
function testHooks(logger: Logger): SpeedWorkerHooks {
  const ms = parseTestHooks(process.env).tileDelayMs;
  if (ms === 0) return {};
  logger.warn({ delayMs: ms }, "test hook LANEMAP_TEST_TILE_DELAY_MS is set: every tile is slowed down");
  return {
    beforeClassify: async (tile) => {
      logger.info({ tileId: tile.tileId, streamSeq: tile.streamSeq }, "tile started (test delay)");
      await new Promise((r) => setTimeout(r, ms));
    },
  };
}

function withConcurrency(config: Config, flag: string | undefined): Config {
  if (flag === undefined) return config;
  const n = positiveInt("--concurrency", flag, config.speed.concurrency);
  if (n > 64) throw new UsageError(`--concurrency must be at most 64, got ${n}`);
  return { ...config, speed: { ...config.speed, concurrency: n } };
}

/**
 * `lanemap speed`: one speed worker process. Run as many as needed, on any machines: they share
 * the durable consumer. SIGTERM/SIGINT stop pulling, finish the tiles in flight, drain the
 * connection (closing it when it has not drained within DRAIN_TIMEOUT_MS: its server may be gone
 * too) and exit 0.
 */
export function registerSpeed(program: Command): void {
  program
    .command("speed")
    .description(commandSummary("speed"))
    .option("--concurrency <n>", "tiles in flight in this process (default LANEMAP_SPEED_CONCURRENCY)")
    .option("--metrics-port <port>", "serve Prometheus metrics on this port at /metrics (0 = any free port)")
    .option("--nats <url>", "NATS server (default NATS_URL, else the embedded server of `lanemap start`)")
    .option("--name <name>", "worker name in logs (default host:pid)")
    .action(async (flags: SpeedFlags) => {
      const config = withConcurrency(parseConfig(), flags.concurrency);
      const metricsPort = metricsPortFlag(flags.metricsPort);
      const logger = await cliLogger(config.logLevel, { role: "speed", pid: process.pid });
      const hooks = testHooks(logger);
      const nc = await connectForCli(
        config,
        flags.nats,
        `lanemap-speed ${flags.name ?? process.pid}`,
        logger,
      );
      // A recreated ingest stream (sequences from 1 again) is refused before anything is consumed.
      const archive = await openTileArchive(config, nc, logger);
      const records = { views: await openPublishedViews(config, nc, logger), archive };
      await refuseIngestStreamBehind(nc, records, { what: "speed start-up", logger });
      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      // Listening for the stop signal before the worker says it started: a supervisor may stop it at
      // once (a signal during the start is answered right after it).
      const stopping = stopSignal(logger, "stopping: finishing the tiles in flight");
      const worker = await startSpeedWorker(config, {
        nc,
        logger,
        registry,
        models: await openModelRegistry(config, nc, logger),
        archive,
        hooks,
        // The same check again when the consumer vanishes under the running worker.
        ingestClock: () => ingestStreamBehindRecord(nc, records),
        ...(flags.name ? { name: flags.name } : {}),
      });
      worker.on((e) => {
        // One line per tile outcome, so an operator (and the fault tests) can see who did what.
        if (e.type === "tile-classified")
          logger.info(
            {
              tileId: e.tileId,
              cell: e.cell,
              streamSeq: e.streamSeq,
              model: e.modelVersion,
              latencyMs: Math.round(e.latencyMs),
            },
            "tile classified",
          );
        else if (e.type === "tile-duplicate")
          logger.info({ tileId: e.tileId, streamSeq: e.streamSeq }, "tile already classified; acknowledged");
      });
      const metricsServer = await startMetricsServer(registry, metricsPort, config.host, logger);
      // Tiles still in flight at the deadline are not acknowledged: JetStream redelivers them (stop.ts).
      // The ingest stream deleted (or recreated behind lanemap's record) under the running worker
      // ends it too, after its tiles in flight: exit 1 with the line its start-up would print.
      const failure = await Promise.race([stopping.then(() => null), worker.ended]);
      await worker.stop();
      metricsServer.close();
      // Bounded: with nats-server stopping at the same moment, drain() alone never ends.
      if ((await drainWithin(nc, STOP_DRAIN_MS)) === "closed")
        logger.warn("the NATS connection did not drain in time; closed it");
      if (failure) throw failure;
    });
}
