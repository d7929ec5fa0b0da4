/**
 * After a model switch the map should show the new model's classes for what the analyst looks at
 * first: a batch run ordered around their viewport (hilbert-around from the point), started with the
 * activation, asking for a progressive publish: an interim view once the viewport's tiles (or the
 * first tiles of the order, without a viewport) carry the new model, then the final view. The speed lane switches by itself (its workers watch the registry's active pointer);
 * this is the batch lane's half. A run already active is not an error here: the activation stands,
 * and the answer says why no run was started (the active run's successor picks the model up).
 */
import { errorCode } from "../../shared/index.js";
import type { ServingContext } from "./context.js";
import type { Viewport } from "./activate-body.js";
import { triggerRun } from "./batch-runs.js";

/** What the activation answer says about the batch run. */
export interface RunAfterActivation {
  readonly runId: string | null;
  readonly status: string | null;
  readonly skipped?: string;
}

/** Starts a batch run around `around`; never throws for a busy or missing runner. */
export async function reclassifyAround(
  ctx: ServingContext,
  around: { lon: number; lat: number },
  base: string,
  viewport?: Viewport,
): Promise<RunAfterActivation> {
  if (!ctx.batchTrigger)
    return { runId: null, status: null, skipped: "no batch runner is wired to this server" };
  try {
    const r = await triggerRun(ctx, false, base, around, { ...(viewport ? { viewport } : {}) });
    return { runId: r.runId, status: r.status };
  } catch (err) {
    if (errorCode(err) === "BATCH_RUN_ACTIVE")
      return { runId: null, status: null, skipped: `a batch run is active: ${(err as Error).message}` };
    throw err;
  }
}
