/**
 * Following one KV key (the CURRENT view pointer, the active model) so that a move is heard within
 * about a second even when the KV watch is stalled.
 *
 * Why two paths: a KV watch is an ordered push consumer, and nats-server before 2.12 (Debian ships
 * 2.9.10) may place it on an offline peer of a cluster (nats-server PR #7165). Then its creation
 * times out — `lanemap worker` and `serve` waited up to 60 s at start for the active-model watch
 * with a node down — or, placed before the node died, it delivers nothing: an operator saw view
 * switches take 0.3-21 s, unlogged (issue 14, F7). A KV get of the key is a direct get, which any
 * live replica answers, and needs no consumer. So the key is read every `pollMs` beside the watch,
 * whichever hears a move first; a move the read saw and the watch did not deliver within another
 * period is logged ("<what> watch stalled") and the watch recreated. Creating the watch is retried
 * (a warning naming it) in the background: the caller never waits for it.
 */
import { within } from "./transient.js";
import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { retryTransient } from "./transient.js";

/** Default period of the consumer-free read of the key beside the watch (ms). */
export const KEY_POLL_MS = 1_000;

/** How long one read of the key may wait before the next tick reads again (ms). */
const KEY_READ_BOUND_MS = 2_000;

/** Options of {@link watchKvKey}. */
export interface KeyWatchOptions<T extends { readonly revision: number }> {
  /** The key's role in logs: "CURRENT view pointer", "active model pointer". */
  readonly what: string;
  /** The value of an entry (null when there is none, or it is a delete); a throw skips the entry. */
  readonly valueOf: (e: KvEntry | null) => T | null;
  /** Period of the read of the key, ms (default {@link KEY_POLL_MS}). */
  readonly pollMs?: number;
  /** Hears the stalls, the retries of the watch's creation and failed reads, at warn. */
  readonly logger?: Logger | undefined;
}

/**
 * Calls `onChange` with the key's value (at once: null when there is no key yet) and with every
 * later move, until `stop()`, by the KV watch and a read of the key every `pollMs` (see the module
 * comment). Each move reaches `onChange` once, in revision order; a delete after a value is not
 * passed on (a follower keeps what it has). Never throws: a watch that cannot be created is said
 * (warn) and the moves follow the read alone.
 */
export function watchKvKey<T extends { readonly revision: number }>(
  kv: KV,
  key: string,
  options: KeyWatchOptions<T>,
  onChange: (value: T | null) => void,
): { stop(): Promise<void> } {
  const { what, logger } = options;
  const pollMs = options.pollMs ?? KEY_POLL_MS;
  let stopped = false;
  // Revisions only grow: the watch's first entry and a read may name the same move, and a
  // buffered older entry must never follow a newer one.
  let lastRevision: number | undefined;
  const emit = (v: T | null): boolean => {
    if (stopped) return false;
    if (v === null) {
      if (lastRevision !== undefined) return false;
      lastRevision = 0;
    } else {
      if (lastRevision !== undefined && v.revision <= lastRevision) return false;
      lastRevision = v.revision;
    }
    onChange(v);
    return true;
  };
  let iter: { stop(): void } | undefined;
  /** The newest revision the watch itself delivered, and a move the read saw first (when). */
  let watchedRevision = 0;
  let missed: { revision: number; at: number } | undefined;
  const watching = new AbortController();
  const follow = async (): Promise<void> => {
    while (!stopped) {
      // The KV watch delivers the last value first (nothing when there is no key yet), then every
      // move; the client re-creates it after a reconnect. Its creation is a consumer nats-server
      // 2.9 may place on a dead node: retried with a warning for up to 30 s or until stopped.
      const it = await retryTransient(`watching the ${what}`, () => kv.watch({ key, ignoreDeletes: true }), {
        ...(logger ? { logger } : {}),
        signal: watching.signal,
      });
      iter = it;
      if (stopped) return it.stop();
      for await (const e of it) {
        watchedRevision = Math.max(watchedRevision, e.revision);
        let v: T | null;
        try {
          v = options.valueOf(e);
        } catch {
          continue; // an unreadable value is skipped: followers keep what they have
        }
        emit(v);
      }
      // Ended by stop() or by the poll below, which found it stalled: then a new one.
    }
  };
  const followed = follow().catch((err: unknown) => {
    // Said, not thrown: the read below still sees every move.
    if (!stopped)
      logger?.warn(
        { err: err instanceof Error ? err.message : String(err) },
        `watching the ${what} failed: moves follow the ${pollMs} ms read of it`,
      );
  });
  const poll = async (): Promise<void> => {
    const value = await within(KEY_READ_BOUND_MS, kv.get(key)).then(
      (e) => options.valueOf(e),
      () => undefined, // unanswered or failed: the next tick reads again
    );
    if (value === undefined || stopped) return;
    if (emit(value) && value !== null && value.revision > watchedRevision)
      missed ??= { revision: value.revision, at: Date.now() };
    if (missed && watchedRevision >= missed.revision) missed = undefined;
    // The watch had a whole period after the read to deliver the move: it is stalled.
    if (missed && Date.now() - missed.at >= pollMs && iter) {
      logger?.warn(
        { revision: missed.revision, watchedRevision, behindMs: Date.now() - missed.at },
        `${what} watch stalled: the move came by the read of the key first; recreating the watch`,
      );
      missed = undefined;
      const stalled = iter;
      iter = undefined;
      stalled.stop();
    }
  };
  let reading = false;
  const tick = (): Promise<void> => {
    // One read at a time: a tick that finds one under way is skipped, not queued.
    if (reading) return polling;
    reading = true;
    return poll()
      .catch((err: unknown) =>
        logger?.warn({ err: err instanceof Error ? err.message : String(err) }, `reading the ${what} failed`),
      )
      .finally(() => (reading = false));
  };
  let polling: Promise<void> = Promise.resolve();
  polling = tick();
  const timer = setInterval(() => {
    polling = tick();
  }, pollMs);
  timer.unref();
  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      watching.abort();
      iter?.stop();
      await Promise.all([followed, polling]);
    },
  };
}
