/**
 * The scheduled rebuild: node-cron fires `config.batch.cron` in `config.batch.timezone` (default
 * nightly at 02:00 UTC) and each tick runs one batch run through the runner. Overlap is refused by the
 * runner's lock, which also covers runs started by other processes (a manual `lanemap batch run`, a
 * second scheduler): such a tick is logged and skipped, never queued.
 */
import { schedule, validate, type ScheduledTask } from "node-cron";
import type { Logger } from "pino";
import { ConfigError, LanemapError, describeError, type Config } from "../shared/index.js";
import type { BatchRunOptions, BatchRunner, RunReport } from "./runner.js";

/** A running schedule. */
export interface BatchSchedule {
  /** The next time the rebuild fires, or null. */
  nextRun(): Date | null;
  /** Runs one tick now, as the schedule would (used by tests and `--now`). */
  tick(): Promise<RunReport | undefined>;
  stop(): Promise<void>;
}

/**
 * Schedules batch runs. `options` apply to every run (e.g. a fixed `around`). Throws a ConfigError
 * when the cron expression is invalid.
 */
export function scheduleBatchRuns(
  runner: BatchRunner,
  config: Config,
  deps: { logger: Logger; options?: BatchRunOptions },
): BatchSchedule {
  const { cron, timezone } = config.batch;
  if (!validate(cron)) throw new ConfigError(`LANEMAP_BATCH_CRON="${cron}" is not a valid cron expression`);
  const log = deps.logger;

  const tick = async (): Promise<RunReport | undefined> => {
    log.info({ cron, timezone }, "scheduled batch run firing");
    try {
      const report = await runner.run(deps.options ?? {});
      log.info(
        { runId: report.runId, version: report.version, tiles: report.tiles, durationMs: report.durationMs },
        "scheduled batch run finished",
      );
      return report;
    } catch (err) {
      if (err instanceof LanemapError && err.code === "BATCH_RUN_ACTIVE") {
        log.warn({ err: describeError(err) }, "scheduled batch run skipped: another run is active");
        return undefined;
      }
      log.error({ err: describeError(err) }, "scheduled batch run failed");
      return undefined;
    }
  };

  let task: ScheduledTask;
  try {
    task = schedule(cron, () => tick(), {
      timezone,
      name: "lanemap-batch",
      noOverlap: true,
      // node-cron's own messages (e.g. a tick blocked by overlap prevention) go to our log, not the console.
      logger: {
        info: (m) => log.debug({ source: "node-cron" }, m),
        warn: (m) => log.warn({ source: "node-cron" }, m),
        error: (m, err) =>
          log.error({ source: "node-cron", err: err ? describeError(err) : undefined }, describeError(m)),
        debug: (m) => log.debug({ source: "node-cron" }, describeError(m)),
      },
    });
  } catch (cause) {
    throw new ConfigError(`cannot schedule "${cron}" in time zone "${timezone}": ${describeError(cause)}`, {
      cause,
    });
  }
  log.info({ cron, timezone, next: task.getNextRun()?.toISOString() ?? null }, "batch schedule started");
  return {
    nextRun: () => task.getNextRun(),
    tick,
    async stop() {
      await task.stop();
      await task.destroy();
    },
  };
}
