/**
 * Serving's view of the batch lane: infra adapts the batch runner to serving's BatchTrigger
 * interface (serving may not import batch/).
 */
import type { BatchRunner, RunStatus as BatchRunStatus } from "../../batch/index.js";
import { BatchRunActiveError, type BatchTrigger, type RunStatus } from "../../serving/index.js";
import { BatchLeaseHeldError } from "../../shared/adapters/nats/index.js";
import { errorCode, parseVersionName } from "../../shared/index.js";

/** Serving's status shape for a batch run status. */
export function toServingStatus(s: BatchRunStatus): RunStatus {
  const version = s.report ? (parseVersionName(s.report.version) ?? undefined) : undefined;
  const failed = s.report?.tiles.failed ?? s.progress?.failed;
  return {
    runId: s.runId,
    state: s.state,
    ...(s.startedAt ? { startedAt: s.startedAt } : {}),
    ...(s.finishedAt ? { finishedAt: s.finishedAt } : {}),
    ...(s.progress ? { progress: { done: s.progress.done, total: s.progress.total } } : {}),
    ...(failed !== undefined ? { failedTiles: failed } : {}),
    ...(version !== undefined && Number.isFinite(version) ? { publishedVersion: version } : {}),
    ...(s.error ? { error: `${s.error.code}: ${s.error.message}` } : {}),
  };
}

/** Wraps a runner; `signal` aborts triggered runs at shutdown. */
export function batchTriggerFor(runner: BatchRunner, signal?: AbortSignal): BatchTrigger {
  return {
    async trigger(opts) {
      try {
        return await runner.trigger({
          ...(opts.full === undefined ? {} : { full: opts.full }),
          ...(opts.around === undefined ? {} : { around: `${opts.around.lon},${opts.around.lat}` }),
          ...(opts.interim === undefined ? {} : { interim: opts.interim }),
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        // Another coordinator holds the batch lease: its holder and the CLI's line, not a run of ours.
        if (err instanceof BatchLeaseHeldError)
          throw new BatchRunActiveError(undefined, {
            cause: err,
            detail: err.message,
            ...(err.holder ? { holder: err.holder } : {}),
          });
        if (errorCode(err) === "BATCH_RUN_ACTIVE")
          throw new BatchRunActiveError(runner.current()?.runId, { cause: err });
        throw err;
      }
    },
    async status(runId) {
      const s = runner.status(runId);
      return s ? toServingStatus(s) : undefined;
    },
  };
}
