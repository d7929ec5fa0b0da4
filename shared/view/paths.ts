/**
 * The data directory's layout, in one place. Everything under it is written by lanemap only:
 *
 *   archive/objects/ab/<sha256>.tif   raw tiles, content-addressed, immutable
 *   archive/catalogue/<tileId>.json   one catalogue entry per tile (first write wins)
 *   archive/bad/<key>.json            tiles that could not be registered, with the reason
 *   archive/removed/<tileId>.json     removed tiles' tombstones (what replays of the stream leave out)
 *   views/batch/v000042/              one published batch view version (manifest.json last)
 *   views/batch/CURRENT               the current version's name, swapped by rename
 *   views/batch/.staging/             versions being written (never read by serving)
 *   models/<version>.json             model artifacts
 *   labels/log.jsonl                  the versioned label set (one change per line)
 *   locks/                            cross-process locks (batch run)
 *   nats/                             the embedded nats-server's JetStream store
 */
import { join } from "node:path";

export interface DataPaths {
  readonly root: string;
  readonly objects: string;
  readonly catalogue: string;
  readonly bad: string;
  readonly removed: string;
  readonly batchViews: string;
  readonly batchCurrent: string;
  readonly batchStaging: string;
  readonly models: string;
  /** The label set's append-only log (labels/log.jsonl). */
  readonly labels: string;
  readonly locks: string;
  readonly nats: string;
}

/** The layout under a data directory. */
export function dataPaths(root: string): DataPaths {
  return {
    root,
    objects: join(root, "archive", "objects"),
    catalogue: join(root, "archive", "catalogue"),
    bad: join(root, "archive", "bad"),
    removed: join(root, "archive", "removed"),
    batchViews: join(root, "views", "batch"),
    batchCurrent: join(root, "views", "batch", "CURRENT"),
    batchStaging: join(root, "views", "batch", ".staging"),
    models: join(root, "models"),
    labels: join(root, "labels"),
    locks: join(root, "locks"),
    nats: join(root, "nats"),
  };
}

/** "v000042" for version 42. */
export function versionName(version: number): string {
  return `v${String(version).padStart(6, "0")}`;
}

/** 42 for "v000042", or null. */
export function parseVersionName(name: string): number | null {
  const m = /^v(\d{6})$/.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * The version an operator names: "v000042" or "42" (surrounding blanks ignored) -> "v000042";
 * null for anything else. What `views rollback` and the ops previews accept.
 */
export function versionNameOf(spec: string): string | null {
  const s = spec.trim();
  const name = /^\d+$/.test(s) ? versionName(Number(s)) : s;
  return parseVersionName(name) === null ? null : name;
}
