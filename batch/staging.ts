/**
 * Staging folders and checkpoints. A run builds its version in views/batch/.staging/<runId>/, whose
 * view.duckdb is also its checkpoint (see view-store.ts). Run ids start with their UTC start time,
 * so folder names sort by age. Staging is only ever touched under the batch lock, so any staging
 * folder found when a run starts belongs to a run that died: the newest one whose DuckDB file opens
 * is adopted and resumed, every other one (and an unusable one) is removed, and the run starts clean.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
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
}

/**
 * Opens the staging folder of run `runId`: adopts the newest usable checkpoint left by a dead run,
 * else creates a new folder. Removes every other staging folder.
 */
export async function openStaging(
  dataDir: string,
  runId: string,
  options: { logger: Logger; duckdbThreads?: number },
): Promise<Staging> {
  const root = dataPaths(dataDir).batchStaging;
  await mkdir(root, { recursive: true });
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
