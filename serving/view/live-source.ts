/**
 * Follows the live view (the speed lane's results in JetStream KV) and hands out its immutable
 * snapshots. Optional: a serving process without NATS answers from the batch view alone. Each live
 * entry is wrapped once as a ServedResult (memoised per entry object), so building a merged index
 * after a change costs a map lookup per unchanged entry.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  LiveView,
  type LiveEntry,
  type LiveFollower,
  type LiveSnapshot,
} from "../../shared/adapters/nats/index.js";
import { decodeClassRaster, describeError, type ClassRaster } from "../../shared/index.js";
import type { LruCache } from "./lru-cache.js";
import { servedResult, type ServedResult } from "./served-result.js";

/** What the live source can say for /ready and /v1/views. */
export type LiveSourceState =
  | "connecting"
  | "following"
  /** Following, but a change the bucket holds has not been heard for a second or more (being recovered). */
  | "behind"
  | "disconnected"
  | "failed"
  | "closed";

/** One change of the live view, for server-sent events. */
export interface LiveChange {
  readonly key: string;
  readonly op: "put" | "delete";
  readonly cell: string | null;
  readonly tileId: string | null;
  readonly position: number;
}

/** Retries of a failed start: first after this, doubling up to the maximum. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15_000;

/** The live view, followed in memory; optional (batch-only serving has none). */
export class LiveSource {
  private readonly nc: NatsConnection;
  private readonly cache: LruCache<ClassRaster>;
  private readonly logger: Logger;
  private follower: LiveFollower | null = null;
  private connection: "connected" | "disconnected" = "connected";
  private lastError: string | null = null;
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly wrapped = new WeakMap<LiveEntry, ServedResult>();
  private readonly listeners = new Set<(c: LiveChange) => void>();
  private newest: { snapshot: LiveSnapshot; processedMs: number | null } | null = null;

  /** Replicas the live bucket is created or brought to (absent: created R1, an existing one kept). */
  private readonly replicas: number | undefined;

  constructor(options: {
    nc: NatsConnection;
    cache: LruCache<ClassRaster>;
    logger: Logger;
    replicas?: number;
  }) {
    this.nc = options.nc;
    this.replicas = options.replicas;
    this.cache = options.cache;
    this.logger = options.logger;
  }

  /**
   * Starts following. Resolves once the initial values are loaded or the first attempt failed;
   * a failed attempt is retried in the background (readiness reports it meanwhile).
   */
  async start(): Promise<void> {
    void this.watchStatus();
    await this.attempt(RETRY_MIN_MS);
  }

  private async attempt(delayOnFailure: number): Promise<void> {
    if (this.closed) return;
    try {
      const view = await LiveView.open(
        this.nc,
        this.replicas === undefined ? {} : { replicas: this.replicas },
      );
      const follower = await view.follow((c) => this.emit(c), { logger: this.logger });
      if (this.closed) {
        follower.stop();
        return;
      }
      this.follower = follower;
      this.lastError = null;
      this.logger.info({ position: follower.snapshot().position }, "following the live view");
    } catch (err) {
      this.lastError = describeError(err);
      this.logger.warn({ err, retryInMs: delayOnFailure }, "cannot follow the live view; retrying");
      this.retryTimer = setTimeout(
        () => void this.attempt(Math.min(delayOnFailure * 2, RETRY_MAX_MS)),
        delayOnFailure,
      );
      this.retryTimer.unref();
    }
  }

  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (s.type === "disconnect") this.connection = "disconnected";
        else if (s.type === "reconnect") this.connection = "connected";
        if (this.closed) break;
      }
    } catch {
      // The iterator ends with the connection; nothing to report beyond isClosed().
    }
  }

  private emit(c: { key: string; entry: LiveEntry | null; position: number }): void {
    if (this.listeners.size === 0) return;
    const change: LiveChange = {
      key: c.key,
      op: c.entry ? "put" : "delete",
      cell: c.entry?.result.cell ?? (c.key.split(".")[0] || null),
      tileId: c.entry?.result.tileId ?? (c.key.split(".").slice(1).join(".") || null),
      position: c.position,
    };
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.logger.warn({ err }, "live change listener failed");
      }
    }
  }

  /** Calls `listener` on every change of the live view; returns the unsubscribe function. */
  onChange(listener: (c: LiveChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The live view now (immutable), or null before the first successful follow. */
  snapshot(): LiveSnapshot | null {
    return this.follower?.snapshot() ?? null;
  }

  /** Following, connecting, or why not. */
  state(): { state: LiveSourceState; error: string | null } {
    if (this.closed) return { state: "closed", error: null };
    if (this.nc.isClosed()) return { state: "disconnected", error: "the NATS connection is closed" };
    if (this.connection === "disconnected") return { state: "disconnected", error: "NATS is disconnected" };
    if (this.follower) {
      // Not ready while behind: its answers would miss changes other instances already serve.
      const behind = this.follower.behind();
      if (behind)
        return {
          state: "behind",
          error: `the live view's watch has not delivered revision ${behind.revision} for ${Math.round((Date.now() - behind.since) / 1000)} s; recreating it`,
        };
      return { state: "following", error: null };
    }
    return { state: this.lastError ? "failed" : "connecting", error: this.lastError };
  }

  /** The newest processing time in a snapshot, epoch ms (memoised for the latest snapshot). */
  newestProcessedMs(snapshot: LiveSnapshot): number | null {
    if (this.newest?.snapshot === snapshot) return this.newest.processedMs;
    let max: number | null = null;
    for (const e of snapshot.byTile.values()) {
      const t = Date.parse(e.result.processedAt);
      if (Number.isFinite(t) && (max === null || t > max)) max = t;
    }
    this.newest = { snapshot, processedMs: max };
    return max;
  }

  /** The ServedResult of a live entry (one object per entry, so merged indexes share them). */
  served(entry: LiveEntry): ServedResult {
    let r = this.wrapped.get(entry);
    if (!r) {
      const { k, revision } = entry;
      // The lane is the source's to say, whatever the entry claims (the merge rule's tiebreak reads it).
      const result = entry.result.lane === "live" ? entry.result : { ...entry.result, lane: "live" as const };
      const key = `l:${result.tileId}:${revision}`;
      r = servedResult(result, {
        batchVersion: null,
        revision,
        raster: () =>
          this.cache.getOrLoad(key, async () =>
            decodeClassRaster(await entry.raster(), result.width, result.height, k),
          ),
      });
      this.wrapped.set(entry, r);
    }
    return r;
  }

  /** Stops following. */
  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.follower?.stop();
    this.follower = null;
  }
}
