/**
 * Staging folders and checkpoints. A run builds its version in views/batch/.staging/<runId>/, whose
 * view.duckdb is also its checkpoint (see view-store.ts). Run ids start with their UTC start time,
 * so folder names sort by age. Staging is only ever touched under the batch lock, so any staging
 * folder found when a run starts belongs to a run that died: the newest one whose DuckDB file opens
 * is adopted and resumed, every other one (and an unusable one) is removed, and the run starts clean.
 * A `--full` run (`discard`) adopts none: it removes them all and says what it dropped.
 */
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { BATCH_VIEW_FILES, dataPaths, describeError } from "../shared/index.js";
import { StagingViewStore } from "./view-store.js";

/** An open staging folder. */
export interface Staging {
  readonly dir: string;
  readonly view: StagingViewStore;
  /** The run whose checkpoint was adopted, when this run resumes one. */
  readonly resumedFrom: string | undefined;
  /** The newest checkpoint removed unused (`discard`: a --full run starts over), for its log line. */
  readonly discarded?: CheckpointListing;
}

/**
 * Opens the staging folder of run `runId`: adopts the newest usable checkpoint left by a dead run,
 * else creates a new folder. Removes every other staging folder. With `discard` (a --full run, which
 * recomputes every tile) it adopts none and reports the newest checkpoint it removed.
 */
export async function openStaging(
  dataDir: string,
  runId: string,
  options: { logger: Logger; duckdbThreads?: number; discard?: boolean },
): Promise<Staging> {
  const root = dataPaths(dataDir).batchStaging;
  await mkdir(root, { recursive: true });
  if (options.discard) {
    const discarded = (await listCheckpoints(dataDir))[0];
    for (const name of await readdir(root)) await rm(join(root, name), { recursive: true, force: true });
    const dir = join(root, runId);
    await mkdir(dir, { recursive: true });
    const view = await StagingViewStore.open(join(dir, BATCH_VIEW_FILES.duckdb), {
      threads: options.duckdbThreads,
    });
    return { dir, view, resumedFrom: undefined, ...(discarded ? { discarded } : {}) };
  }
  const leftovers = (await readdir(root)).sort().reverse();
  const checkpointFiles = new Set([BATCH_VIEW_FILES.duckdb, `${BATCH_VIEW_FILES.duckdb}.wal`]);

  let adopted: Staging | undefined;
  for (const name of leftovers) {
    const dir = join(root, name);
    if (!adopted) {
      try {
        const files = await readdir(dir);
        if (files.includes(BATCH_VIEW_FILES.duckdb)) {
          // Files of an interrupted publish are rewritten by this run; only the checkpoint is kept.
          for (const f of files)
            if (!checkpointFiles.has(f)) await rm(join(dir, f), { recursive: true, force: true });
          const view = await StagingViewStore.open(join(dir, BATCH_VIEW_FILES.duckdb), {
            threads: options.duckdbThreads,
          });
          adopted = { dir, view, resumedFrom: name };
          options.logger.info(
            { checkpoint: dir, interruptedRun: name },
            "resuming an interrupted batch run from its checkpoint",
          );
          continue;
        }
      } catch (err) {
        options.logger.warn(
          { checkpoint: dir, interruptedRun: name, err: describeError(err) },
          "checkpoint of an interrupted run is unusable; starting clean",
        );
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
  if (adopted) return adopted;

  const dir = join(root, runId);
  await mkdir(dir, { recursive: true });
  const view = await StagingViewStore.open(join(dir, BATCH_VIEW_FILES.duckdb), {
    threads: options.duckdbThreads,
  });
  return { dir, view, resumedFrom: undefined };
}

/** A checkpoint left in this data directory's staging (`lanemap ops status`). */
export interface CheckpointListing {
  /** The run that wrote it (its folder's name; a resumed run keeps writing its predecessor's). */
  readonly runId: string;
  readonly dir: string;
  /** When its DuckDB file (or its WAL) was last written. */
  readonly modifiedAt: string;
  /** Tiles finished of the run set's total, or null when the file cannot be read (a live run holds it). */
  readonly tiles: { readonly done: number; readonly total: number | null } | null;
}

/**
 * The checkpoints under `dataDir`'s staging, newest first, read only (the next run adopts the newest
 * and removes the others: openStaging). Interim views (`.interim-<runId>`) are not checkpoints.
 */
export async function listCheckpoints(dataDir: string): Promise<CheckpointListing[]> {
  const root = dataPaths(dataDir).batchStaging;
  let names: string[];
  try {
    names = (await readdir(root))
      .filter((n) => !n.startsWith("."))
      .sort()
      .reverse();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: CheckpointListing[] = [];
  for (const runId of names) {
    const dir = join(root, runId);
    const db = join(dir, BATCH_VIEW_FILES.duckdb);
    const times = await Promise.all(
      [db, `${db}.wal`].map((f) =>
        stat(f).then(
          (s) => s.mtimeMs,
          () => null,
        ),
      ),
    );
    const mtimes = times.filter((t): t is number => t !== null);
    if (mtimes.length === 0) continue;
    const tiles = await StagingViewStore.readProgress(db).catch(() => null);
    out.push({ runId, dir, modifiedAt: new Date(Math.max(...mtimes)).toISOString(), tiles });
  }
  return out;
}
