/**
 * The scheduled rebuild: node-cron fires `config.batch.cron` in `config.batch.timezone` (default
 * nightly at 02:00 UTC) and each tick runs one batch run through the runner. Overlap is refused by the
 * runner's lock, which also covers runs started by other processes (a manual `lanemap batch run`, a
 * second scheduler), and for a distributed run by the coordinator lease, which covers other
 * machines (shared/adapters/nats/batch-lease.ts): such a tick is logged in one line naming the
 * holder and skipped, never queued nor retried. A run whose lease was taken over stops
 * (BATCH_LEASE_LOST) and is not retried either: the coordinator that took it builds the version.
 *
 * A tick whose run fails transiently (a NATS node lost mid-run, a stalled queue, storage for a
 * moment unreachable: any error whose code is not "permanent" in shared/errors.ts) runs again after
 * 30 s, 2 min and 10 min (`SCHEDULE_RETRY_DELAYS_MS`), in the same process: the run resumes from its
 * checkpoint (batch/staging.ts), so only the tiles it had not finished are classified again. Why
 * here and not by exiting for systemd to restart: a restarted scheduler waits for its next cron
 * tick (tomorrow), so the README's promise — a run in progress resumes — would not hold. A
 * permanent failure, or the last retry's failure, is logged at error and waits for the next tick.
 * The stop signal (`options.signal`) ends the wait between retries at once.
 */
import { schedule, validate, type ScheduledTask } from "node-cron";
import type { Logger } from "pino";
import { ConfigError, ERROR_CODES, LanemapError, describeError, type Config } from "../shared/index.js";
import type { BatchRunOptions, BatchRunner, RunReport } from "./runner.js";

/** Waits before each retry of a scheduled run that failed transiently (see the module comment). */
export const SCHEDULE_RETRY_DELAYS_MS: readonly number[] = [30_000, 120_000, 600_000];

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
  deps: {
    logger: Logger;
    options?: BatchRunOptions;
    /** Waits before each retry of a transiently failed run (default SCHEDULE_RETRY_DELAYS_MS). */
    retryDelaysMs?: readonly number[];
  },
): BatchSchedule {
  const { cron, timezone } = config.batch;
  if (!validate(cron)) throw new ConfigError(`LANEMAP_BATCH_CRON="${cron}" is not a valid cron expression`);
  const log = deps.logger;

  const delays = deps.retryDelaysMs ?? SCHEDULE_RETRY_DELAYS_MS;
  const signal = deps.options?.signal;

  /** Resolves after `ms`, or at once when the stop signal fires. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => (clearTimeout(t), signal?.removeEventListener("abort", done), resolve());
      const t = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
    });

  const tick = async (): Promise<RunReport | undefined> => {
    log.info({ cron, timezone }, "scheduled batch run firing");
    for (let attempt = 0; ; attempt++) {
      try {
        const report = await runner.run(deps.options ?? {});
        log.info(
          {
            runId: report.runId,
            version: report.version,
            tiles: report.tiles,
            durationMs: report.durationMs,
          },
          "scheduled batch run finished",
        );
        return report;
      } catch (err) {
        if (err instanceof LanemapError && err.code === "BATCH_RUN_ACTIVE") {
          // Another coordinator (this machine's lock, or another machine's lease) is building: one
          // line per tick, no retry, never a second version.
          log.warn(
            { code: err.code, err: describeError(err) },
            "scheduled batch run skipped: another run is active",
          );
          return undefined;
        }
        if (err instanceof LanemapError && err.code === "BATCH_LEASE_LOST") {
          // Another coordinator took over this run's lease (it was paused or cut off past the TTL):
          // it builds the version now, so retrying would only be refused.
          log.warn(
            { code: err.code, err: describeError(err) },
            "scheduled batch run stopped: another coordinator took over its lease; the next cron tick runs again",
          );
          return undefined;
        }
        if (signal?.aborted) {
          // A stop (SIGTERM from systemd): not a failure; the process exits 0 and the checkpoint stays.
          log.info({ err: describeError(err) }, "scheduled batch run stopped; its checkpoint is kept");
          return undefined;
        }
        const permanent = err instanceof LanemapError && ERROR_CODES[err.code].permanent;
        const delayMs = delays[attempt];
        if (permanent || delayMs === undefined) {
          log.error(
            { err: describeError(err), attempts: attempt + 1 },
            "scheduled batch run failed; the next cron tick runs it again",
          );
          return undefined;
        }
        log.warn(
          { err: describeError(err), attempt: attempt + 1, retryInMs: delayMs },
          "scheduled batch run failed; retrying, it resumes from its checkpoint",
        );
        await pause(delayMs);
        if (signal?.aborted) return undefined;
      }
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
