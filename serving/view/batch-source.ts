/**
 * Follows the CURRENT pointer of the published batch views and keeps the version it names open.
 * The batch lane publishes by renaming CURRENT, so watching its folder hears a publish or a
 * rollback at once; a periodic check covers what fs.watch can miss (network file systems, a folder
 * that did not exist yet, coalesced events). A switch opens and loads the new version fully before
 * swapping it in, then drops the source's reference to the old one, which closes only when the
 * requests still reading it have finished.
 */
import { watch, type FSWatcher } from "node:fs";
import type { Logger } from "pino";
import { readCurrentPointer, readBatchVersion } from "../../shared/adapters/archive/index.js";
import { dataPaths, describeError, type ClassRaster } from "../../shared/index.js";
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
  private readonly dataDir: string;
  private readonly cache: LruCache<ClassRaster>;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private currentView: OpenedBatchView | null = null;
  private failure: { name: string; at: number; error: string } | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  private recheck = false;
  private stopped = false;
  private readonly listeners = new Set<(s: BatchSwitch) => void>();

  constructor(options: {
    dataDir: string;
    cache: LruCache<ClassRaster>;
    logger: Logger;
    /** Period of the fallback check of CURRENT (default 2 s). */
    pollIntervalMs?: number;
  }) {
    this.dataDir = options.dataDir;
    this.cache = options.cache;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
  }

  /** Opens the current version (if any) and starts watching; resolves after the first check. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.pollIntervalMs);
    this.timer.unref();
  }

  /** Stops watching and drops the source's reference to the current version. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
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

  private armWatcher(): void {
    if (this.watcher || this.stopped) return;
    try {
      // The folder, not the file: CURRENT is replaced by rename, which a watch on the file misses.
      this.watcher = watch(dataPaths(this.dataDir).batchViews, { persistent: false }, (_event, file) => {
        if (file === null || file.startsWith("CURRENT")) void this.check();
      });
      this.watcher.on("error", () => {
        this.watcher?.close();
        this.watcher = null;
      });
    } catch {
      this.watcher = null; // The folder does not exist yet; the periodic check re-arms.
    }
  }

  private async checkOnce(): Promise<void> {
    if (this.stopped) return;
    this.armWatcher();
    let name: string | null;
    try {
      name = await readCurrentPointer(this.dataDir);
    } catch (err) {
      this.logger.warn({ err }, "cannot read the batch CURRENT pointer");
      return;
    }
    const open = this.currentView;
    if (name === null || name === open?.name) return;
    if (this.failure?.name === name && Date.now() - this.failure.at < RETRY_FAILED_MS) return;
    let next: OpenedBatchView;
    try {
      const version = await readBatchVersion(this.dataDir, name);
      if (!version) throw new Error(`CURRENT names ${name}, which has no valid manifest`);
      next = await OpenedBatchView.open(version, this.cache, this.logger);
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
}
