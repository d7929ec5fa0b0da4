/**
 * Broker failures of the storage adapters (nats-archive.ts, nats-views.ts) as the transient STORAGE
 * error the shared/storage interfaces promise, and a bounded retry of idempotent operations on a
 * transient failure (a timeout, or no responders while an R3 stream elects its leader).
 *
 * Why the retry: with one node of a JetStream cluster down, nats-server before 2.12 may place the
 * ephemeral R1 consumer behind an object-store read or listing on the offline peer (nats-server
 * PR #7165); that read times out, and the same read again lands elsewhere. Debian ships 2.9, so a
 * coordinator publishing while a node is down would otherwise fail its whole run on one listing.
 * Writes: a bucket created a moment ago at R3 answers "no responders" until its leader is elected
 * (`lanemap archive add` right after a cluster starts); content-addressed puts and first-write-wins
 * creates are idempotent, so they wait that out too.
 */
import type { Logger } from "pino";
import { LanemapError } from "../../errors.js";
import { isLeaderlessAnswer, isTransientBrokerError } from "./jetstream-errors.js";

/** A broker failure as STORAGE, with `what` and the broker's message; lanemap's own errors pass. */
export function storageError(what: string, err: unknown): LanemapError {
  if (err instanceof LanemapError) return err;
  return new LanemapError("STORAGE", `${what}: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}

/**
 * Runs `op`, mapping a broker failure to STORAGE. With `retries`, an op that failed transiently
 * (isTransientBrokerError) runs again (after 100 ms, 200 ms, ... at most 2 s) up to that many more
 * times: only for idempotent operations. An op refused at once for want of a leader
 * (isLeaderlessAnswer) is retried besides for {@link LEADERLESS_WAIT_MS} after its first attempt:
 * five quick refusals last 3 s, shorter than an election, and an `ops replay` whose stream's
 * leader was SIGKILLed as it started failed there on a loaded machine (the full suite). Every retry is said to `logger` (warn, naming `what`):
 * a read that waited out a request timeout and tried again was silent, and an operator with a node
 * down saw a command sit 6–11 s without a word (issue 14, N3).
 * @throws LanemapError STORAGE (or `op`'s own LanemapError).
 */
export async function guarded<T>(
  what: string,
  op: () => Promise<T>,
  retries = 0,
  logger?: Logger,
): Promise<T> {
  const startedAt = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      const again =
        attempt < retries ||
        (retries > 0 && isLeaderlessAnswer(err) && Date.now() - startedAt < LEADERLESS_WAIT_MS);
      if (again && !(err instanceof LanemapError) && isTransientBrokerError(err)) {
        const retryInMs = Math.min(2_000, 100 * 2 ** attempt);
        logger?.warn(
          { what, err: err instanceof Error ? err.message : String(err), attempt: attempt + 1, retryInMs },
          "transient broker error on a storage read: retrying",
        );
        await new Promise((r) => setTimeout(r, retryInMs));
        continue;
      }
      throw storageError(what, err);
    }
  }
}

/**
 * How long an op with retries keeps retrying refusals for want of a leader, in ms: longer than an
 * election (2–5 s on nats-server 2.9), as WRITE_RETRIES' backoff is.
 */
export const LEADERLESS_WAIT_MS = 10_000;

/** Retries of a read in the storage adapters (see the module comment). */
export const READ_RETRIES = 5;

/** Retries of an idempotent write: about 10 s, longer than an R3 leader election. */
export const WRITE_RETRIES = 8;
