/**
 * Riding out a moment without a JetStream leader: when a node of an R3 cluster dies, every stream
 * and consumer it led elects a new leader among the two left, and until then the JetStream API
 * answers with a timeout or "no responders" (nats.js: "jetstream is not enabled"). A coordinator,
 * an `ingest` or a `serve` start-up that treats that as fatal fails a run that a few seconds of
 * patience would have finished (issue 14, the operator's node-kill runs).
 *
 * `retryTransient` retries an idempotent operation on such an error (isTransientBrokerError) with
 * a bounded exponential backoff, and when it gives up — or on any other broker error — names the
 * operation in the error it throws, so an operator never reads a bare "lanemap: timeout".
 */
import type { Logger } from "pino";
import { LanemapError, type ErrorCode } from "../../errors.js";
import { isTransientBrokerError } from "./jetstream-errors.js";

/** How long an operation is retried after its first transient failure unless told otherwise: two elections. */
export const DEFAULT_TRANSIENT_RETRY_MS = 30_000;

/** Options of {@link retryTransient}. */
export interface RetryTransientOptions {
  /** Give up this long after the first attempt, in ms (default {@link DEFAULT_TRANSIENT_RETRY_MS}). */
  readonly deadlineMs?: number;
  /** Each retry is logged here at warn, with `what`. */
  readonly logger?: Logger;
  /** Stops retrying: the last error is thrown at once. */
  readonly signal?: AbortSignal;
  /** The code of a failure that was not transient (default NATS_CONNECT, as a transient one's). */
  readonly failureCode?: ErrorCode;
}

/**
 * A broker error as a LanemapError naming the operation: NATS_CONNECT ("NATS is unreachable") for
 * a transient one that outlived its retries, the broker's message kept; lanemap's own errors pass.
 */
export function brokerError(what: string, err: unknown, code: ErrorCode = "NATS_CONNECT"): LanemapError {
  if (err instanceof LanemapError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new LanemapError(code, `${what}: ${message}`, { cause: err });
}

/**
 * Runs `op`; on a transient broker error (or a LanemapError caused by one) runs it again after 250 ms, 500 ms, ... at most 4 s between
 * attempts, until `deadlineMs` has passed since the first attempt. Only for idempotent operations
 * (a read, a create-if-absent, a publish with a Nats-Msg-Id inside the duplicate window).
 * @throws LanemapError NATS_CONNECT `"<what>: <broker message>"` (brokerError) when the op still
 *   fails, or failed other than transiently; `op`'s own LanemapError unchanged.
 */
export async function retryTransient<T>(
  what: string,
  op: () => Promise<T>,
  options: RetryTransientOptions = {},
): Promise<T> {
  const until = Date.now() + (options.deadlineMs ?? DEFAULT_TRANSIENT_RETRY_MS);
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      const waitMs = Math.min(4_000, 250 * 2 ** attempt);
      // A lanemap error is retried only when it wraps a transient broker error (STORAGE over a timeout).
      const transient =
        err instanceof LanemapError ? isTransientBrokerError(err.cause) : isTransientBrokerError(err);
      if (!transient) throw brokerError(what, err, options.failureCode);
      if (options.signal?.aborted || Date.now() + waitMs > until) throw brokerError(what, err);
      options.logger?.warn(
        {
          what,
          err: err instanceof Error ? err.message : String(err),
          attempt: attempt + 1,
          retryInMs: waitMs,
        },
        "transient broker error (a leader election?): retrying",
      );
      // An abort ends the wait at once: the next failure is then thrown (a watch being stopped).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done(): void {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", done);
          resolve();
        }
        options.signal?.addEventListener("abort", done, { once: true });
      });
    }
  }
}

/** `p`, or a rejection after `ms` (p's late answer is then dropped). */
export function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  p.catch(() => undefined);
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
