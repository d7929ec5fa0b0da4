/**
 * Operator endpoints: trigger a batch rebuild and read a run's status. Triggering needs the
 * operator bearer token (compared in constant time); serving without a token or without a wired
 * BatchTrigger says so with 503 rather than pretending.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { RunAcceptedBody, RunStatusBody } from "../api/schemas.js";
import { errorCode } from "../../shared/index.js";
import { BatchRunActiveError, NotFoundError, ProblemError } from "../errors.js";
import type { BatchTrigger, InterimRequest, RunStatus } from "../batch-trigger.js";
import type { ServingContext } from "./context.js";
import type { LeaseHolder } from "../../shared/adapters/nats/index.js";

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/** Checks `Authorization: Bearer <token>`: 503 when operator endpoints are off, 401 / 403 otherwise. */
export function authorizeOperator(ctx: ServingContext, authorization: string | undefined): void {
  const token = ctx.config.operatorToken;
  if (!token)
    throw new ProblemError(
      503,
      "operator-disabled",
      "Operator endpoints disabled",
      "this server has no operator token (set LANEMAP_OPERATOR_TOKEN to enable operator endpoints)",
    );
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  if (!m)
    throw new ProblemError(
      401,
      "unauthorized",
      "Unauthorized",
      "this endpoint needs Authorization: Bearer <operator token>",
      {
        headers: { "WWW-Authenticate": 'Bearer realm="lanemap-operator"' },
      },
    );
  // Digests first: timingSafeEqual needs equal lengths, and the length must not leak either.
  if (!timingSafeEqual(digest(m[1] ?? ""), digest(token)))
    throw new ProblemError(403, "forbidden", "Forbidden", "the bearer token is not the operator token");
}

function noTrigger(): ProblemError {
  return new ProblemError(
    503,
    "batch-unavailable",
    "Batch runs unavailable",
    "this serving process has no batch runner wired (run `lanemap start`, or a process that has one)",
  );
}

/**
 * Starts a run; 409 when one is active: this server's (`active_run_id`), or another coordinator's
 * holding the batch lease (`holder`: host, pid, run, start, the version it builds), checked before
 * the 202 (the trigger resolves once its run holds the lease).
 */
export async function triggerRun(
  ctx: ServingContext,
  full: boolean,
  base: string,
  around?: { lon: number; lat: number },
  interim?: InterimRequest,
): Promise<RunAcceptedBody> {
  if (!ctx.batchTrigger) throw noTrigger();
  try {
    const { runId } = await ctx.batchTrigger.trigger({
      full,
      ...(around ? { around } : {}),
      ...(interim ? { interim } : {}),
    });
    ctx.batchRuns?.track(runId);
    ctx.logger.info({ runId, full, around }, "batch run triggered");
    return { runId, status: `${base}/v1/batch/runs/${encodeURIComponent(runId)}` };
  } catch (err) {
    if (errorCode(err) === "BATCH_RUN_ACTIVE") {
      const active = (err as { activeRunId?: unknown }).activeRunId;
      const holder = err instanceof BatchRunActiveError && err.holder ? publicHolder(err.holder) : undefined;
      if (holder)
        ctx.logger.info({ holder }, "batch run not triggered: another batch coordinator holds the lease");
      throw new ProblemError(409, "batch-run-active", "Batch run active", (err as Error).message, {
        cause: err,
        extensions: {
          ...(typeof active === "string" ? { active_run_id: active } : {}),
          ...(holder ? { holder } : {}),
        },
      });
    }
    throw err;
  }
}

/**
 * The holder as the 409 names it: host, pid, runId, startedAt, building, progress (README). Its
 * process start stamp (boot id, PID namespace) is for proving a holder gone on its own machine.
 */
function publicHolder(h: LeaseHolder): Omit<LeaseHolder, "processStart"> {
  const { processStart, ...shown } = h;
  void processStart;
  return shown;
}

/** A run's status; 404 for an unknown id. */
export async function runStatus(ctx: ServingContext, runId: string): Promise<RunStatusBody> {
  if (!ctx.batchTrigger) throw noTrigger();
  const s = await ctx.batchTrigger.status(runId);
  if (!s) throw new NotFoundError(`no batch run ${runId}`, "run-not-found");
  ctx.batchRuns?.settle(s);
  return { ...s, ...(s.progress ? { progress: { ...s.progress } } : {}) };
}

/** The states after which a run changes no more. */
const FINAL_STATES: ReadonlySet<RunStatus["state"]> = new Set(["succeeded", "failed", "cancelled"]);

/** Most runs followed at once; the batch runner itself remembers its last 100. */
const MAX_TRACKED_RUNS = 100;

/**
 * The batch runs this server triggered, followed until each ends so /metrics can count it once:
 * `track` on trigger, `refresh` at scrape time (asks the trigger about the runs still open) and
 * `settle` whenever a status is read anyway. `onFinished` hears each run exactly once.
 */
export class BatchRunLedger {
  private readonly open = new Set<string>();
  private refreshing: Promise<void> | null = null;

  constructor(
    private readonly trigger: BatchTrigger,
    private readonly onFinished: (s: RunStatus) => void,
  ) {}

  /** Follows a run just triggered. */
  track(runId: string): void {
    if (this.open.size >= MAX_TRACKED_RUNS) {
      // The oldest open run is the one the runner has most likely forgotten.
      const oldest = this.open.values().next();
      if (!oldest.done) this.open.delete(oldest.value);
    }
    this.open.add(runId);
  }

  /** Counts a run that reached a final state, once. */
  settle(s: RunStatus): void {
    if (!FINAL_STATES.has(s.state) || !this.open.delete(s.runId)) return;
    this.onFinished(s);
  }

  /** Asks the trigger about every open run (concurrent callers share one pass). */
  refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const pass = (async () => {
      for (const runId of [...this.open]) {
        // A status that cannot be read now is asked again at the next scrape, never failing this one.
        const s = await this.trigger.status(runId).catch(() => null);
        if (s === null) continue;
        if (s === undefined) this.open.delete(runId);
        else this.settle(s);
      }
    })();
    // Cleared after the pass settles (never inside it: a pass with nothing to ask ends at once).
    this.refreshing = pass.finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
}
