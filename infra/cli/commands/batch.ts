import { mkdir } from "node:fs/promises";
import type { Command } from "commander";
import type { Logger } from "pino";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  ORDER_KINDS,
  createProgressSink,
  scheduleBatchRuns,
  type BatchRunOptions,
  type OrderKind,
  type RunReport,
} from "../../../batch/index.js";
import { connectNats, drainWithin } from "../../../shared/adapters/nats/index.js";
import { LanemapError, type Config } from "../../../shared/index.js";
import { STOP_DRAIN_MS, stopSignal } from "../stop.js";
import { buildBatchRunner } from "../../platform/batch-runners.js";
import { embeddedNatsUrl } from "../nats-connect.js";
import { UsageError, positiveInt } from "../usage.js";
import { cliConfig } from "../config.js";
import { cliLogger } from "../logger.js";
import { parseTestHooks } from "../test-hooks.js";
import { commandSummary } from "./index.js";

interface BatchFlags {
  dataDir?: string;
  full?: boolean;
  around?: string;
  order?: string;
  model?: string;
  nats?: string;
  workers?: string;
  executor?: string;
  json?: boolean;
  fromStream?: boolean;
  fromSeq?: string;
  allowPartial?: boolean;
}

/**
 * How long an interrupted `batch run` may take to stop before the process exits anyway (ms): the run
 * stops between tiles and its close is bounded (CLOSE_WITHIN_MS), but a store that never answers
 * must not make the first SIGTERM ignored (issue 14, F3: a resume hung 10 min, killed by a second).
 */
const RUN_STOP_MS = 30_000;

/** After a stop signal: exits (code 1, saying so) unless the process has ended within `ms`. */
function exitIfStillRunning(logger: Logger, ms: number): void {
  setTimeout(() => {
    logger.error(
      { withinMs: ms },
      "the interrupted batch run did not stop in time: exiting, its checkpoint kept",
    );
    process.stderr.write(
      `lanemap: interrupted, and the run did not stop within ${ms / 1000} s: exiting; its checkpoint is kept and the next run resumes from it\n`,
    );
    process.exit(1);
  }, ms).unref();
}

async function setup(flags: BatchFlags): Promise<{ config: Config; logger: Logger }> {
  const config = cliConfig({
    LANEMAP_DATA_DIR: flags.dataDir,
    LANEMAP_BATCH_WORKERS:
      flags.workers === undefined ? undefined : String(positiveInt("--workers", flags.workers, 1)),
  });
  const logger = await cliLogger(config.logLevel, { role: "batch" });
  return { config, logger };
}

function runOptions(flags: BatchFlags): BatchRunOptions {
  if (flags.order !== undefined && !(ORDER_KINDS as readonly string[]).includes(flags.order))
    throw new UsageError(`--order must be one of ${ORDER_KINDS.join(", ")}, got "${flags.order}"`);
  if (flags.executor !== undefined && flags.executor !== "threads" && flags.executor !== "stream")
    throw new UsageError(`--executor must be threads or stream, got "${flags.executor}"`);
  return {
    ...(flags.executor ? { executor: flags.executor } : {}),
    full: flags.full ?? false,
    around: flags.around,
    order: flags.order as OrderKind | undefined,
    model: flags.model,
  };
}

/** Kappa mode (`--from-stream [--from-seq N]`): the run set from the ingest stream. */
function streamOption(flags: BatchFlags): Pick<BatchRunOptions, "fromStream"> {
  if (!flags.fromStream) {
    if (flags.fromSeq !== undefined) throw new UsageError("--from-seq goes with --from-stream");
    if (flags.allowPartial) throw new UsageError("--allow-partial goes with --from-stream");
    return {};
  }
  return {
    fromStream: {
      ...(flags.fromSeq === undefined ? {} : { fromSeq: positiveInt("--from-seq", flags.fromSeq, 1) }),
      ...(flags.allowPartial ? { allowPartial: true } : {}),
    },
  };
}

/**
 * NATS when this deployment has it (`--nats`, NATS_URL, or the embedded server of a running `lanemap
 * start`): the runner then takes the speed consumer's ack floor as watermark and the NATS model
 * registry's active model. A configured server that cannot be reached fails the command rather than
 * running without the ack floor (the race the watermark exists to prevent).
 */
async function natsIfConfigured(
  config: Config,
  flags: BatchFlags,
  logger: Logger,
): Promise<NatsConnection | undefined> {
  const url = flags.nats ?? config.natsUrl ?? (await embeddedNatsUrl(config.dataDir));
  if (url === undefined) {
    logger.info(
      "no NATS configured: the watermark is the catalogue's highest sequence, the model the data directory's active one",
    );
    return undefined;
  }
  return connectNats({ servers: url, name: "lanemap-batch", logger });
}

/**
 * Who classified, truthfully per executor: threads are the run's own, replaced when one crashes or
 * misses its deadline; `lanemap worker` processes are not replaced by the run, so for the stream
 * executor the line says how many returned results and how many tiles had to be redelivered (a
 * worker lost holding its task, or past its deadline).
 */
export function workersSummary(
  r: Pick<RunReport, "workers" | "replacedWorkers" | "redeliveredTasks">,
): string {
  if (r.redeliveredTasks === undefined) return `workers ${r.workers} (${r.replacedWorkers} replaced)`;
  return (
    `workers ${r.workers} lanemap worker process(es) returned results; ` +
    `${r.redeliveredTasks} tile(s) redelivered after a worker was lost or missed its deadline`
  );
}

function printReport(r: RunReport): void {
  const t = r.tiles;
  console.log(
    `published ${r.version} (watermark ${r.watermark}, model ${r.modelVersion}, order ${r.order}) in ${(r.durationMs / 1000).toFixed(1)} s`,
  );
  console.log(
    `  tiles  ${t.total} total: ${t.classified} classified, ${t.reused} reused, ${t.resumed} resumed from checkpoint, ${t.failed} failed` +
      (t.excluded ? `; ${t.excluded} above the watermark left to the speed lane` : "") +
      (t.quarantined ? `; ${t.quarantined} quarantined` : ""),
  );
  console.log(`  cells  ${r.cells}   pixels classified ${r.pixels}   ${workersSummary(r)}`);
  for (const f of r.failures) console.log(`  failed ${f.tileId}  ${f.code}: ${f.reason}`);
  // Left out, not failed: the speed lane dead-lettered this content as permanently bad.
  for (const q of r.quarantined)
    console.log(`  quarantined ${q.tileId}  ${q.code}: ${q.reason} (dead-lettered ${q.at})`);
  if (r.quarantined.length)
    console.log(
      "  (quarantined: `lanemap dlq retry` after a fix, or `lanemap archive remove TILE_ID` to drop them)",
    );
  const s = r.stream;
  if (s) {
    console.log(
      `  stream ${s.stream} sequences ${s.fromSeq}..${s.toSeq} (stored ${s.firstSeq}..${s.lastSeq}): ` +
        `${s.messages} messages, ${s.duplicates} duplicate${s.duplicates === 1 ? "" : "s"}, ${s.excluded.length} left out` +
        (s.removed?.length ? `, ${s.removed.length} of removed tiles` : ""),
    );
    for (const x of s.excluded)
      console.log(
        `  left out seq ${x.seq} ${x.tileId ?? "(no tile id)"}  ${x.code}: ${x.reason}` +
          (x.deadLetterSeq === null ? "" : ` (dead letter ${x.deadLetterSeq})`),
      );
    for (const x of s.removed ?? [])
      console.log(
        `  removed seq ${x.seq} ${x.tileId}  (\`lanemap archive remove\` at ${x.removedAt}` +
          (x.removedAtSeq === null ? ")" : `, stream at sequence ${x.removedAtSeq})`),
      );
  }
  if (r.retention.deletedVersions.length)
    console.log(`  retention removed ${r.retention.deletedVersions.join(", ")}`);
  if (r.retention.deferredVersions.length)
    console.log(
      `  retention could not remove ${r.retention.deferredVersions.join(", ")} (see the warning); the next run tries again`,
    );
}

const commonOptions = (c: Command): Command =>
  c
    .option("--data-dir <dir>", "data directory (default: LANEMAP_DATA_DIR, else ./data)")
    .option(
      "--full",
      "recompute every tile: an interrupted run's checkpoint is discarded, not resumed (default: resume it, and reuse tiles whose content and model are unchanged)",
    )
    .option(
      "--around <tile|lon,lat>",
      "process the area around a tile id, cell or WGS84 point first (hilbert-around)",
    )
    .option("--order <order>", `processing order: ${ORDER_KINDS.join(", ")} (default LANEMAP_BATCH_ORDER)`)
    .option(
      "--model <version|file>",
      "model to apply: a stored version or a model file (default: the registry's active model)",
    )
    .option(
      "--nats <url>",
      "NATS server whose speed consumer's ack floor is the watermark (default NATS_URL, else the embedded server of `lanemap start`)",
    )
    .option("--workers <n>", "worker threads (default LANEMAP_BATCH_WORKERS, else the number of cores)")
    .option(
      "--executor <threads|stream>",
      "where tiles are classified: this process's threads, or the JetStream work queue for `lanemap worker` processes (default LANEMAP_BATCH_EXECUTOR)",
    );

/** `lanemap batch run|schedule`: rebuild the batch view now, or on the cron schedule. */
export function registerBatch(program: Command): void {
  const batch = program.command("batch").description(commandSummary("batch"));
  commonOptions(
    batch
      .command("run")
      .description("rebuild the batch view now and publish it as a new version (one run at a time)"),
  )
    .option("--json", "print the run report as JSON")
    .option(
      "--from-stream",
      "kappa mode: rebuild from the ingest stream (replayed up to the watermark) instead of the catalogue",
    )
    .option("--from-seq <n>", "with --from-stream: the first stream sequence to replay (default 1)")
    .option(
      "--allow-partial",
      "with --from-stream: publish even when catalogue tiles (bulk loads) are not in the stream (default: refuse, REPLAY_INCOMPLETE)",
    )
    .action(async (flags: BatchFlags) => {
      const options = { ...runOptions(flags), ...streamOption(flags) };
      const { config, logger } = await setup(flags);
      const nc = await natsIfConfigured(config, flags, logger);
      if (options.fromStream && !nc)
        throw new UsageError(
          "--from-stream replays the ingest stream, and NATS is not configured: give --nats URL or NATS_URL (or run beside `lanemap start`)",
        );
      const { runner } = await buildBatchRunner(config, {
        logger,
        ...(nc ? { nc } : {}),
        progress: createProgressSink({ logger, stream: process.stderr }),
        hooks: parseTestHooks(process.env),
      }).catch(async (err: unknown) => {
        await nc?.close();
        throw err;
      });
      // Ctrl-C stops dispatching and keeps the checkpoint; the next run resumes from it.
      const ac = new AbortController();
      const onSignal = () => {
        ac.abort(new Error("interrupted"));
        exitIfStillRunning(logger, RUN_STOP_MS);
      };
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        const report = await runner.run({ ...options, signal: ac.signal });
        if (flags.json) console.log(JSON.stringify(report, null, 2));
        else printReport(report);
        // Published, but without some tiles: say so in the exit code, so a script or a cron job notices.
        if (report.tiles.failed > 0)
          throw new LanemapError(
            "BATCH_TILES_FAILED",
            `${report.tiles.failed} of ${report.tiles.total} tiles failed and are not in ${report.version} (see "failed" above)`,
          );
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        if (nc) await drainWithin(nc);
      }
    });
  commonOptions(
    batch
      .command("schedule")
      .description(
        "run the batch rebuild on LANEMAP_BATCH_CRON in LANEMAP_BATCH_TZ (default nightly 02:00 UTC) until stopped",
      ),
  )
    .option("--now", "also run once immediately")
    .action(async (flags: BatchFlags & { now?: boolean }) => {
      const options = runOptions(flags);
      const { config, logger } = await setup(flags);
      // A data directory that cannot be made is a start failure, not a failure of every nightly run.
      await mkdir(config.dataDir, { recursive: true });
      const nc = await natsIfConfigured(config, flags, logger);
      const { runner } = await buildBatchRunner(config, {
        logger,
        ...(nc ? { nc } : {}),
        hooks: parseTestHooks(process.env),
      });
      // The stop signal also stops a run in progress (its checkpoint kept for the next one), so a
      // stream run waiting for workers does not hold the process after SIGTERM.
      const ac = new AbortController();
      const schedule = scheduleBatchRuns(runner, config, {
        logger,
        options: { ...options, signal: ac.signal },
      });
      const stopping = stopSignal(logger);
      console.log(
        `batch schedule "${config.batch.cron}" (${config.batch.timezone}); next run ${schedule.nextRun()?.toISOString() ?? "never"}; Ctrl-C stops`,
      );
      if (flags.now) await schedule.tick();
      // A run in progress stops with its checkpoint kept; the whole within STOP_DEADLINE_MS (stop.ts).
      await stopping;
      ac.abort(new Error("interrupted"));
      await schedule.stop();
      if (nc) await drainWithin(nc, STOP_DRAIN_MS);
    });
}
