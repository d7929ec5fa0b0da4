/**
 * The Prometheus metrics of a batch task worker (`lanemap worker`'s batch side), registered on a
 * Registry the caller passes in (never the global one: two workers in one test process, or a
 * worker beside the speed lane's metrics in one process, must not collide).
 */
import { Counter, type Registry } from "prom-client";

/** Why a task worker handed a task back to the queue (`-NAK`) instead of acknowledging it. */
export const HAND_BACK_REASONS = ["stopping", "deadline", "retry", "unclaimed"] as const;
export type HandBackReason = (typeof HAND_BACK_REASONS)[number];

/** Why a task worker acknowledged a task without classifying it. */
export const DROP_REASONS = ["run-over"] as const;

/** The metrics one batch task worker updates. */
export interface BatchTaskMetrics {
  /**
   * Tasks this worker handed back to the queue (`-NAK`), by reason: `stopping` (pulled early or
   * unfinished when it stopped), `deadline` (the task outlived its deadline), `retry` (a tile
   * left for one more try: a transient failure, a first missed tile deadline), `unclaimed` (it
   * arrived after the pull that asked for it was given up).
   */
  readonly handedBack: Counter<"reason">;
  /**
   * Tasks this worker acknowledged without classifying them, by reason: `run-over` (stored before
   * their run was recorded over: a node's stale copy of the task stream brought them back;
   * shared/adapters/nats batch-runs.ts).
   */
  readonly dropped: Counter<"reason">;
}

/**
 * Creates the batch task worker's metrics on `registry`, every reason's series at 0: a counter
 * with no sample until its first event reads as "no data" to `rate()` and to an alert on it, not
 * as 0 (Prometheus' instrumentation practice: initialise the label values you know). Call once per
 * registry.
 */
export function createBatchTaskMetrics(registry: Registry): BatchTaskMetrics {
  const metrics = {
    handedBack: new Counter({
      name: "lanemap_batch_tasks_handed_back_total",
      help: "Batch tasks this worker handed back to the queue (-NAK) for another delivery, by reason.",
      labelNames: ["reason"],
      registers: [registry],
    }),
    dropped: new Counter({
      name: "lanemap_batch_tasks_dropped_total",
      help: "Batch tasks this worker acknowledged without classifying them (their run was over), by reason.",
      labelNames: ["reason"],
      registers: [registry],
    }),
  };
  for (const reason of HAND_BACK_REASONS) metrics.handedBack.inc({ reason }, 0);
  for (const reason of DROP_REASONS) metrics.dropped.inc({ reason }, 0);
  return metrics;
}
