/**
 * When a stream run stops waiting for its workers (issue 14, F5). The coordinator polls the shared
 * task consumer and feeds each look to {@link lookForStall}; the rule itself does no I/O, so it is
 * tested as a table of moments.
 *
 * Progress is a result of the run read, or a new task taken by a worker (the consumer's delivered
 * stream sequence moved; a redelivery does not move it). A task held in progress by a worker is a
 * sign of work too, so that a tile that legitimately takes minutes does not fail the run — but only
 * up to the longest deadline of the tasks owed (their tiles' deadlines plus the I/O margin,
 * `taskDeadlineMs`) since the last progress: a frozen (SIGSTOP) or hung worker's task stays held
 * for ever, since its pull request is still open and the server hands the task back to it, and a
 * run that counted it as work waited 10 minutes for nothing (the operator's check). The run is
 * stalled once it has had no sign of work for `stallMs` (LANEMAP_BATCH_STALL_S), so it fails at
 * most `heldBoundMs + stallMs` after its last progress, plus one poll.
 */

/** One look of the coordinator's watchdog, all times in ms since the epoch. */
export interface StallLook {
  readonly nowMs: number;
  /** The last progress: a result read, a new task taken, or the run's start. */
  readonly progressMs: number;
  /** The last sign of work the previous look saw (at least `progressMs`). */
  readonly signMs: number;
  /** Tasks held in progress by workers now (the consumer's ack-pending count). */
  readonly held: number;
  /** How long held tasks count as work after the last progress: the longest deadline of the tasks owed. */
  readonly heldBoundMs: number;
  /** How long without a sign of work stalls the run (LANEMAP_BATCH_STALL_S). */
  readonly stallMs: number;
}

/** What a look concludes: the sign of work to remember, and whether the run is stalled and why. */
export type StallVerdict =
  | { readonly stalled: false; readonly signMs: number }
  | {
      readonly stalled: true;
      readonly signMs: number;
      /**
       * `idle`: no worker takes the run's tasks; `held`: workers hold tasks past their deadline
       * (frozen or hung), with no result and no new task taken since.
       */
      readonly cause: "idle" | "held";
    };

/**
 * Judges one look (see the module comment).
 * @example lookForStall({ nowMs: 90_000, progressMs: 0, signMs: 70_000, held: 12,
 *   heldBoundMs: 70_000, stallMs: 20_000 }) // { stalled: true, signMs: 70_000, cause: "held" }
 */
export function lookForStall(look: StallLook): StallVerdict {
  const { nowMs, progressMs, held, heldBoundMs, stallMs } = look;
  const heldIsWork = held > 0 && nowMs - progressMs < heldBoundMs;
  const signMs = Math.max(progressMs, look.signMs, heldIsWork ? nowMs : 0);
  if (nowMs - signMs < stallMs) return { stalled: false, signMs };
  return { stalled: true, signMs, cause: held > 0 ? "held" : "idle" };
}
