/**
 * The pause of a consumer's pull loop after its pulls failed `failures` times in a row (a broker
 * restarting, a stream leader being elected): 200 ms doubling to 5 s, so a lane neither hammers a
 * broker that is down nor stays asleep long after it is back. Both lanes' pull loops use it
 * (speed/worker.ts, batch/task-worker.ts).
 */

/** The longest pause between two pulls (ms). */
export const PULL_BACKOFF_MAX_MS = 5_000;

/**
 * The pause after `failures` (≥ 1) consecutive failed pulls: 100 · 2^min(failures, 6) ms, at most
 * {@link PULL_BACKOFF_MAX_MS}.
 */
export function pullBackoffMs(failures: number): number {
  return Math.min(PULL_BACKOFF_MAX_MS, 100 * 2 ** Math.min(Math.max(failures, 1), 6));
}

/**
 * Waits {@link pullBackoffMs}(`failures`), or less when `signal` aborts first (a stopping consumer
 * does not wait out its pause). Never rejects.
 */
export function pullBackoff(failures: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, pullBackoffMs(failures));
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
