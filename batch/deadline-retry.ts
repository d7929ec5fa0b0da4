/**
 * A batch tile that missed its deadline is tried once more before its DEADLINE is final (issue 14,
 * the operator's check F1). A DEADLINE says more about the moment than about the tile — a worker
 * frozen (SIGSTOP) or starved for 12 s failed two 0.1 s tiles of a run for good, and the run
 * published a view without them — as the README says of quarantine. A tile that really is too slow
 * (a hostile header, a decompression bomb) misses again and fails the run: it costs one more
 * deadline, not more. Both executors apply this rule: the stream one by handing the task back to the
 * queue (any worker may take it, within the consumer's max deliveries), the threads one by a second
 * job on a fresh thread.
 */
import type { ErrorCode } from "../shared/index.js";

/** How many times a tile is tried when it misses its deadline: the first try and one more. */
export const DEADLINE_TRIES = 2;

/**
 * Whether a tile whose try number `tried` (1-based: a task's delivery count) failed with `code` is
 * tried again rather than failed: only a DEADLINE, only before {@link DEADLINE_TRIES} tries, and
 * only when `maxTries` (the work queue's max deliveries) allows one more.
 * @example deadlineTriedAgain("DEADLINE", 1, 5) // true
 * @example deadlineTriedAgain("DEADLINE", 2, 5) // false: it missed again
 * @example deadlineTriedAgain("TILE_DECODE", 1, 5) // false: the tile's own failure
 */
export function deadlineTriedAgain(code: ErrorCode, tried: number, maxTries: number): boolean {
  return code === "DEADLINE" && tried < DEADLINE_TRIES && tried < maxTries;
}
