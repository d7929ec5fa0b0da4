/**
 * Follows the CURRENT pointer of the published batch views (shared/storage `PublishedViews`) and
 * keeps the version it names open. The store's watch hears a publish or a rollback at once (the
 * files backend watches the folder, the nats backend the KV key); a periodic check covers what a
 * watch can miss. A switch first materializes the version on this machine (the nats backend
 * downloads it into the local cache and checks every digest, like Druid historicals loading a
 * segment from deep storage), opens and loads it fully, then swaps it in and drops the source's
 * reference to the old one, which closes only when the requests still reading it have finished.
 * Local copies other than the current and the previous one are evicted once closed.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { FilePublishedViews, type BatchVersion } from "../../shared/adapters/archive/index.js";
import {
  BATCH_VIEW_FILES,
  batchManifestSchema,
  describeError,
  parseVersionName,
  type ClassRaster,
  type PublishedVersion,
  type PublishedViews,
} from "../../shared/index.js";
import { OpenedBatchView } from "./batch-view.js";
import type { LruCache } from "./lru-cache.js";

/** What the source can say about the batch lane, for /ready and /v1/views. */
export type BatchSourceState =
  | { readonly state: "none-yet" }
  | {
      readonly state: "open";
      readonly name: string;
      readonly version: number;
      /** Why the version CURRENT names now could not be opened (the open one keeps serving). */
      readonly error: string | null;
    }
  | { readonly state: "error"; readonly pointer: string; readonly error: string };

/** A switch from one version to another (either may be null), for server-sent events. */
export interface BatchSwitch {
  readonly from: { name: string; version: number } | null;
  readonly to: { name: string; version: number; watermark: number } | null;
  readonly at: string;
}

/** After a version failed to open, it is retried no sooner than this. */
const RETRY_FAILED_MS = 30_000;

/** Keeps the version CURRENT names open and switches on publish or rollback. */
export class BatchViewSource {
  private readonly views: PublishedViews;
  private readonly cache: LruCache<ClassRaster>;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly heldRasterBytes: number;
  private currentView: OpenedBatchView | null = null;
  private failure: { name: string; at: number; error: string } | null = null;
  private watcher: { stop(): Promise<void> } | null = null;
  /** Versions this source opened and let go, newest last: their local copies await eviction. */
  private retired: OpenedBatchView[] = [];
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  private recheck = false;
  private stopped = false;
  private readonly listeners = new Set<(s: BatchSwitch) => void>();

  constructor(options: {
    dataDir: string;
    /** Where the versions are published (default: the data directory's files). */
    views?: PublishedViews;
    cache: LruCache<ClassRaster>;
    logger: Logger;
    /** Period of the fallback check of CURRENT (default 2 s). */
    pollIntervalMs?: number;
    /** Raster BLOB bytes a version may hold in memory (OpenedBatchView.open; default 0, none). */
    heldRasterBytes?: number;
  }) {
    this.cache = options.cache;
    this.heldRasterBytes = options.heldRasterBytes ?? 0;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.views =
      options.views ?? new FilePublishedViews(options.dataDir, { pollIntervalMs: this.pollIntervalMs });
  }

  /** Opens the current version (if any) and starts watching; resolves after the first check. */
  async start(): Promise<void> {
    await this.check();
    if (!this.stopped && !this.watcher) this.watcher = this.views.watch(() => void this.check());
    this.timer = setInterval(() => void this.check(), this.pollIntervalMs);
    this.timer.unref();
  }

  /** Stops watching and drops the source's reference to the current version. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.watcher?.stop();
    this.watcher = null;
    await this.checking;
    this.currentView?.release();
    this.currentView = null;
  }

  /** The current version with one reference taken for the caller (release it), or null. */
  acquire(): OpenedBatchView | null {
    return this.currentView ? this.currentView.retain() : null;
  }

  /** The current version without taking a reference (identity checks only). */
  peek(): OpenedBatchView | null {
    return this.currentView;
  }

  /** The source's state for readiness and the views endpoint. */
  state(): BatchSourceState {
    const v = this.currentView;
    if (v)
      return {
        state: "open",
        name: v.name,
        version: v.version,
        error: this.failure ? `${this.failure.name}: ${this.failure.error}` : null,
      };
    if (this.failure) return { state: "error", pointer: this.failure.name, error: this.failure.error };
    return { state: "none-yet" };
  }

  /** Every complete published version, oldest first, as the store lists it (for /v1/views). */
  publishedVersions(): Promise<PublishedVersion[]> {
    return this.views.list();
  }

  /** Calls `listener` on every switch; returns the unsubscribe function. */
  onSwitch(listener: (s: BatchSwitch) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Compares CURRENT with the open version and switches when they differ. Concurrent calls share
   * one run, and a call that arrives during a run schedules one more, so no rename goes unseen.
   */
  check(): Promise<void> {
    if (this.checking) {
      this.recheck = true;
      return this.checking;
    }
    this.checking = (async () => {
      try {
        do {
          this.recheck = false;
          await this.checkOnce();
        } while (this.recheck && !this.stopped);
      } finally {
        this.checking = null;
      }
    })();
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    if (this.stopped) return;
    let name: string | null;
    try {
      name = (await this.views.current())?.name ?? null;
    } catch (err) {
      this.logger.warn({ err }, "cannot read the batch CURRENT pointer");
      return;
    }
    const open = this.currentView;
    await this.evictRetired(name);
    if (name === null || name === open?.name) return;
    if (this.failure?.name === name && Date.now() - this.failure.at < RETRY_FAILED_MS) return;
    let next: OpenedBatchView;
    try {
      const dir = await this.views.materialize(name);
      next = await OpenedBatchView.open(await versionIn(dir, name), this.cache, this.logger, {
        heldRasterBytes: this.heldRasterBytes,
      });
    } catch (err) {
      this.failure = { name, at: Date.now(), error: describeError(err) };
      this.logger.error(
        { err, version: name },
        "cannot open the current batch view; keeping the previous one",
      );
      return;
    }
    if (this.stopped) {
      next.release();
      return;
    }
    this.failure = null;
    this.currentView = next;
    this.logger.info(
      { from: open?.name ?? null, to: next.name, watermark: next.manifest.watermark },
      "switched batch view",
    );
    // Requests that took a snapshot of the old version keep it open until they finish.
    open?.release();
    if (open) this.retired.push(open);
    const event: BatchSwitch = {
      from: open ? { name: open.name, version: open.version } : null,
      to: { name: next.name, version: next.version, watermark: next.manifest.watermark },
      at: new Date().toISOString(),
    };
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.logger.warn({ err }, "batch switch listener failed");
      }
    }
  }

  /**
   * Drops local copies (the nats backend's cache) of versions older than the previous one once no
   * request holds them; the previous copy stays for a quick rollback.
   */
  private async evictRetired(pointer: string | null): Promise<void> {
    const evict = this.views.evictLocal?.bind(this.views);
    if (!evict) {
      this.retired = this.retired.filter((v) => !v.closed);
      return;
    }
    const previous = this.retired.at(-1);
    const keep = new Set<string>();
    // The version CURRENT names is about to be opened: a copy of it from an earlier start stays.
    if (pointer) keep.add(pointer);
    if (this.currentView) keep.add(this.currentView.name);
    if (previous) keep.add(previous.name);
    for (const v of this.retired) if (!v.closed) keep.add(v.name);
    this.retired = this.retired.filter((v) => keep.has(v.name));
    try {
      const removed = await evict([...keep]);
      if (removed.length > 0) this.logger.info({ removed }, "evicted local copies of batch views");
    } catch (err) {
      this.logger.warn({ err: describeError(err) }, "cannot evict local copies of batch views");
    }
  }
}

/** The version in a materialized folder, as OpenedBatchView opens it. */
async function versionIn(dir: string, name: string): Promise<BatchVersion> {
  const version = parseVersionName(name);
  const parsed = batchManifestSchema.safeParse(
    JSON.parse(await readFile(join(dir, BATCH_VIEW_FILES.manifest), "utf8")),
  );
  if (version === null || !parsed.success || parsed.data.name !== name)
    throw new Error(`CURRENT names ${name}, which has no valid manifest`);
  return { name, version, dir, manifest: parsed.data };
}
