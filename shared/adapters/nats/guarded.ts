/**
 * Broker failures of the storage adapters (nats-archive.ts, nats-views.ts) as the transient STORAGE
 * error the shared/storage interfaces promise, and a bounded retry of idempotent reads on a timeout.
 *
 * Why the retry: with one node of a JetStream cluster down, nats-server before 2.12 may place the
 * ephemeral R1 consumer behind an object-store read or listing on the offline peer (nats-server
 * PR #7165); that read times out, and the same read again lands elsewhere. Debian ships 2.9, so a
 * coordinator publishing while a node is down would otherwise fail its whole run on one listing.
 */
import { LanemapError } from "../../errors.js";

/** A broker failure as STORAGE, with `what` and the broker's message; lanemap's own errors pass. */
export function storageError(what: string, err: unknown): LanemapError {
  if (err instanceof LanemapError) return err;
  return new LanemapError("STORAGE", `${what}: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}

function isTimeout(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === "TimeoutError" || /time ?out/i.test(err.message);
}

/**
 * Runs `op`, mapping a broker failure to STORAGE. With `retries`, an op that timed out runs again
 * (after 100 ms, 200 ms, ...) up to that many more times: only for reads, which are idempotent.
 * @throws LanemapError STORAGE (or `op`'s own LanemapError).
 */
export async function guarded<T>(what: string, op: () => Promise<T>, retries = 0): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (attempt < retries && isTimeout(err)) {
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        continue;
      }
      throw storageError(what, err);
    }
  }
}

/** Retries of a read in the storage adapters (see the module comment). */
export const READ_RETRIES = 5;
