import { drainWithin } from "../../../shared/adapters/nats/index.js";
import type { Command } from "commander";
import { Registry, collectDefaultMetrics } from "prom-client";
import { parseConfig } from "../../../shared/index.js";
import { STOP_DRAIN_MS, stopSignal } from "../stop.js";
import { startLanemapWorker } from "../../platform/worker.js";
import { connectForCli } from "../nats-connect.js";
import { cliLogger } from "../logger.js";
import { parseTestHooks } from "../test-hooks.js";
import { UsageError, positiveInt } from "../usage.js";
import { metricsPortFlag, startMetricsServer } from "../metrics-server.js";
import { commandSummary } from "./index.js";

interface WorkerFlags {
  threads?: string;
  metricsPort?: string;
  nats?: string;
  name?: string;
}

/**
 * `lanemap worker`: one process for both lanes (infra/platform/worker.ts): the speed consumer and
 * the batch work queue on one pool of LANEMAP_BATCH_WORKERS threads, live tiles first. Run as many
 * as needed, on any machines. SIGTERM/SIGINT stop pulling, finish the tiles in flight (result +
 * ack), hand back a task pulled early (one info line each, `lanemap_batch_tasks_handed_back_total`),
 * drain the connection and exit 0. `--metrics-port` serves both lanes' metrics at /metrics.
 */
export function registerWorker(program: Command): void {
  program
    .command("worker")
    .description(commandSummary("worker"))
    .option("--threads <n>", "tile threads shared by both lanes (default LANEMAP_BATCH_WORKERS)")
    .option("--metrics-port <port>", "serve Prometheus metrics on this port at /metrics (0 = any free port)")
    .option("--nats <url>", "NATS server (default NATS_URL, else the embedded server of `lanemap start`)")
    .option("--name <name>", "worker name in logs and results (default host:pid)")
    .action(async (flags: WorkerFlags) => {
      let config = parseConfig();
      if (flags.threads !== undefined) {
        const n = positiveInt("--threads", flags.threads, config.batch.workers);
        if (n > 256) throw new UsageError(`--threads must be at most 256, got ${n}`);
        config = { ...config, batch: { ...config.batch, workers: n } };
      }
      const metricsPort = metricsPortFlag(flags.metricsPort);
      const logger = await cliLogger(config.logLevel, { role: "worker", pid: process.pid });
      const { tileDelayMs } = parseTestHooks(process.env);
      if (tileDelayMs > 0)
        logger.warn(
          { delayMs: tileDelayMs },
          "test hook LANEMAP_TEST_TILE_DELAY_MS is set: every batch tile is slowed down",
        );
      const nc = await connectForCli(
        config,
        flags.nats,
        `lanemap-worker ${flags.name ?? process.pid}`,
        logger,
      );
      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      const worker = await startLanemapWorker(config, {
        nc,
        logger,
        registry,
        batchTileDelayMs: tileDelayMs,
        ...(flags.name ? { name: flags.name } : {}),
      });
      worker.speed.on((e) => {
        if (e.type === "tile-classified")
          logger.info(
            { lane: "live", tileId: e.tileId, streamSeq: e.streamSeq, model: e.modelVersion },
            "tile classified",
          );
      });
      const stopping = stopSignal(logger, "stopping: finishing the tiles in flight");
      const metricsServer = await startMetricsServer(registry, metricsPort, config.host, logger);
      logger.info({ threads: config.batch.workers, name: worker.name }, "worker ready: speed + batch");
      // Tiles still in flight at the deadline are not acknowledged: JetStream redelivers them (stop.ts).
      // A stream deleted under it (or the ingest stream recreated behind lanemap's record) ends it
      // too, after its tiles in flight: exit 1 with the line its start-up would print.
      const failure = await Promise.race([stopping.then(() => null), worker.ended]);
      await worker.stop();
      metricsServer.close();
      await drainWithin(nc, STOP_DRAIN_MS);
      if (failure) throw failure;
    });
}
