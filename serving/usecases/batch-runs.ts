/**
 * Operator endpoints: trigger a batch rebuild and read a run's status. Triggering needs the
 * operator bearer token (compared in constant time); serving without a token or without a wired
 * BatchTrigger says so with 503 rather than pretending.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { RunAcceptedBody, RunStatusBody } from "../api/schemas.js";
import { errorCode } from "../../shared/index.js";
import { NotFoundError, ProblemError } from "../errors.js";
import type { ServingContext } from "./context.js";

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

/** Starts a run; 409 when one is active. */
export async function triggerRun(ctx: ServingContext, full: boolean, base: string): Promise<RunAcceptedBody> {
  if (!ctx.batchTrigger) throw noTrigger();
  try {
    const { runId } = await ctx.batchTrigger.trigger({ full });
    ctx.logger.info({ runId, full }, "batch run triggered");
    return { runId, status: `${base}/v1/batch/runs/${encodeURIComponent(runId)}` };
  } catch (err) {
    if (errorCode(err) === "BATCH_RUN_ACTIVE") {
      const active = (err as { activeRunId?: unknown }).activeRunId;
      throw new ProblemError(409, "batch-run-active", "Batch run active", (err as Error).message, {
        cause: err,
        extensions: typeof active === "string" ? { active_run_id: active } : {},
      });
    }
    throw err;
  }
}

/** A run's status; 404 for an unknown id. */
export async function runStatus(ctx: ServingContext, runId: string): Promise<RunStatusBody> {
  if (!ctx.batchTrigger) throw noTrigger();
  const s = await ctx.batchTrigger.status(runId);
  if (!s) throw new NotFoundError(`no batch run ${runId}`, "run-not-found");
  return { ...s, ...(s.progress ? { progress: { ...s.progress } } : {}) };
}
