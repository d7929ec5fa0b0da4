/**
 * Snapshots: what one request reads. Pinot's broker reads one immutable time boundary per query;
 * here a request takes one Snapshot at its start — an opened batch version with its watermark, a
 * live-view snapshot and the merged index of the two — and reads nothing else, so a publish or a
 * live write during the request can never give it half of one view and half of another.
 *
 * Snapshots are shared: the manager builds one per (batch version, live position) pair and hands
 * it to every request that arrives while neither changes. A snapshot keeps its batch version open
 * (one reference) while anything uses it: requests in flight, the manager while it is the latest,
 * and the cursor ring that keeps recently paged snapshots for a while so that paging stays
 * consistent across a publish.
 */
import { randomUUID } from "node:crypto";
import type { LiveSnapshot } from "../../shared/adapters/nats/index.js";
import type { ModelClass } from "../../shared/index.js";
import type { BatchViewSource } from "./batch-source.js";
import type { OpenedBatchView } from "./batch-view.js";
import type { LiveSource } from "./live-source.js";
import { MergedIndex } from "./merged-index.js";
import type { ServedResult } from "./served-result.js";

/** One immutable pair of views (batch version + live snapshot) and their merged index. */
export class Snapshot {
  /** Unique id (cursors name it). */
  readonly id: string;
  /** When the snapshot was built, epoch ms. */
  readonly builtAt: number;
  readonly batch: OpenedBatchView | null;
  readonly live: LiveSnapshot | null;
  /** Whether this process follows a live view at all (false: batch-only serving). */
  readonly liveConfigured: boolean;
  readonly index: MergedIndex;
  /** The deployment's class catalogue when the snapshot was built (every id ever given, by name). */
  readonly catalogue: readonly ModelClass[];
  private refs = 0;

  constructor(
    batch: OpenedBatchView | null,
    live: LiveSnapshot | null,
    liveSource: LiveSource | null,
    catalogue: readonly ModelClass[] = [],
  ) {
    this.catalogue = catalogue;
    this.id = randomUUID();
    this.builtAt = Date.now();
    this.batch = batch;
    this.live = live;
    this.liveConfigured = liveSource !== null;
    const liveByCell = new Map<string, ServedResult[]>();
    if (live && liveSource)
      for (const [cell, entries] of live.byCell)
        liveByCell.set(
          cell,
          entries.map((e) => liveSource.served(e)),
        );
    this.index = new MergedIndex(
      batch?.cellResults ?? new Map(),
      batch?.results ?? new Map(),
      liveByCell,
      batch ? batch.manifest.watermark : -1,
    );
  }

  /** The batch version (or null) and live position (or null) this snapshot reads. */
  get versions(): { batchVersion: number | null; livePosition: number | null } {
    return { batchVersion: this.batch?.version ?? null, livePosition: this.live?.position ?? null };
  }

  /**
   * The legend of every id this snapshot can answer: the class catalogue (a live result from a newer
   * model may carry an id the batch view's model never had; catalogue ids are stable per name), plus
   * any id of the batch view's model the catalogue lacks (a view from before the catalogue). Sorted by id.
   */
  get classes(): readonly ModelClass[] {
    const own = this.batch?.classes ?? [];
    if (this.catalogue.length === 0) return own;
    const ids = new Set(this.catalogue.map((c) => c.id));
    return [...this.catalogue, ...own.filter((c) => !ids.has(c.id))].sort((a, b) => a.id - b.id);
  }

  /** @internal */
  retain(): void {
    this.refs++;
  }

  /** @internal Drops one reference; the last one releases the batch version. */
  release(): void {
    if (--this.refs === 0) this.batch?.release();
  }
}

/** A snapshot held by one request; `release` once when the response is done (idempotent). */
export interface SnapshotLease {
  readonly snapshot: Snapshot;
  /** When the request took it, epoch ms: staleness is measured from here. */
  readonly now: number;
  release(): void;
}

function lease(s: Snapshot): SnapshotLease {
  s.retain();
  let released = false;
  return {
    snapshot: s,
    now: Date.now(),
    release() {
      if (released) return;
      released = true;
      s.release();
    },
  };
}

/** Hands out the current snapshot and keeps the ones cursors name. */
export class SnapshotManager {
  private readonly batch: BatchViewSource;
  private readonly live: LiveSource | null;
  private readonly retainMs: number;
  private readonly maxRetained: number;
  private latest: Snapshot | null = null;
  private catalogue: readonly ModelClass[] = [];
  private readonly retained = new Map<string, { snapshot: Snapshot; expires: number }>();

  constructor(options: {
    batch: BatchViewSource;
    live: LiveSource | null;
    /** How long a snapshot a cursor names stays available after its last page (default 10 min). */
    cursorRetainMs?: number;
    /** Most snapshots kept for cursors at once (default 16). */
    maxRetained?: number;
  }) {
    this.batch = options.batch;
    this.live = options.live;
    this.retainMs = options.cursorRetainMs ?? 10 * 60_000;
    this.maxRetained = options.maxRetained ?? 16;
  }

  /** Sets the class catalogue later snapshots name ids with (a catalogue only grows). */
  setCatalogue(classes: readonly ModelClass[]): void {
    const same =
      classes.length === this.catalogue.length &&
      classes.every((c, i) => {
        const o = this.catalogue[i];
        return o !== undefined && o.id === c.id && o.name === c.name && o.colour === c.colour;
      });
    if (!same) this.catalogue = classes;
  }

  /** The snapshot of the views as they are now, held for the caller. */
  acquire(): SnapshotLease {
    const batch = this.batch.peek();
    const live = this.live?.snapshot() ?? null;
    const cur = this.latest;
    if (cur && cur.batch === batch && cur.live === live && cur.catalogue === this.catalogue)
      return lease(cur);
    // The new snapshot takes its own reference on the batch version it reads.
    const next = new Snapshot(batch ? batch.retain() : null, live, this.live, this.catalogue);
    next.retain(); // the manager's, while it is the latest
    this.latest = next;
    cur?.release();
    this.sweep();
    return lease(next);
  }

  /**
   * The snapshot a cursor names: the retained one with that id, else the latest when it reads the
   * same batch version and live position (same content: versions are immutable and the live
   * position names one state of the bucket), else undefined (expired).
   */
  find(id: string, batchVersion: number | null, livePosition: number | null): SnapshotLease | undefined {
    this.sweep();
    const kept = this.retained.get(id);
    if (kept) return lease(kept.snapshot);
    const cur = this.acquire();
    const v = cur.snapshot.versions;
    if (cur.snapshot.id === id || (v.batchVersion === batchVersion && v.livePosition === livePosition))
      return cur;
    cur.release();
    return undefined;
  }

  /** Keeps a snapshot for the cursor that names it, for the retention period from now. */
  keep(s: Snapshot): void {
    const kept = this.retained.get(s.id);
    if (kept) {
      // Refresh: move to the end so the oldest-paged snapshot goes first.
      this.retained.delete(s.id);
      this.retained.set(s.id, { snapshot: s, expires: Date.now() + this.retainMs });
      return;
    }
    s.retain();
    this.retained.set(s.id, { snapshot: s, expires: Date.now() + this.retainMs });
    this.sweep();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, k] of this.retained) {
      if (k.expires > now && this.retained.size <= this.maxRetained) continue;
      this.retained.delete(id);
      k.snapshot.release();
    }
  }

  /** Drops every reference the manager holds (in-flight leases keep theirs). */
  close(): void {
    for (const k of this.retained.values()) k.snapshot.release();
    this.retained.clear();
    this.latest?.release();
    this.latest = null;
  }
}
