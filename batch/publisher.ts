/**
 * Publishing batch views. A version becomes visible in three steps, each durable before the next:
 *
 *   1. every file of the staging folder is fsynced, then manifest.json is written last (it lists every
 *      other file with its size and sha256) and the folder itself is fsynced;
 *   2. the staging folder is renamed to views/batch/vNNNNNN and views/batch/ is fsynced: the version
 *      appears complete or not at all (a folder without a manifest is not a view);
 *   3. CURRENT is swapped to the new name by rename (shared/adapters/archive `setCurrentBatch`).
 *
 * A crash before 2 leaves only a staging folder (never read by serving); between 2 and 3 a complete
 * version that is not current yet. Readers that opened an older version keep reading it: the version
 * CURRENT names is never deleted, and retention only removes versions beyond the newest `keep`.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  fsyncPath,
  listBatchVersions,
  readBatchVersion,
  readCurrentPointer,
  setCurrentBatch,
  writeFileDurable,
  type BatchVersion,
} from "../shared/adapters/archive/index.js";
import {
  BATCH_VIEW_FILES,
  LanemapError,
  batchManifestSchema,
  dataPaths,
  parseVersionName,
  versionName,
  versionNameOf,
  type BatchManifest,
} from "../shared/index.js";

/** The manifest without what publishing fills in (version, name, files). */
export type ManifestDraft = Omit<BatchManifest, "format" | "version" | "name" | "files">;

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The next version number: one above every version folder present, complete or not. */
export async function nextVersionNumber(dataDir: string): Promise<number> {
  let names: string[] = [];
  try {
    names = await readdir(dataPaths(dataDir).batchViews);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  let max = 0;
  for (const n of names) max = Math.max(max, parseVersionName(n) ?? 0);
  const current = await readCurrentPointer(dataDir);
  if (current) max = Math.max(max, parseVersionName(current) ?? 0);
  return max + 1;
}

/**
 * Publishes a complete staging folder (every file of BATCH_VIEW_FILES but the manifest) as the next
 * version and makes it current. `beforeRename` runs after the manifest is durable and before the
 * rename (the crash tests pause there).
 */
export async function publishStagedView(
  dataDir: string,
  stagingDir: string,
  draft: ManifestDraft,
  options: { logger: Logger; beforeRename?: () => Promise<void> },
): Promise<BatchVersion> {
  const paths = dataPaths(dataDir);
  const files: BatchManifest["files"] = {};
  for (const key of ["duckdb", "parquet", "arrow", "model"] as const) {
    const name = BATCH_VIEW_FILES[key];
    const path = join(stagingDir, name);
    await fsyncPath(path);
    files[name] = { bytes: (await stat(path)).size, sha256: await sha256File(path) };
  }
  // Only tables and the exports belong in a view: a leftover WAL means the file was not checkpointed.
  for (const extra of await readdir(stagingDir))
    if (extra.endsWith(".wal") || extra.endsWith(".tmp"))
      throw new LanemapError(
        "PUBLISH",
        `staging folder ${stagingDir} still holds ${extra}; refusing to publish`,
      );

  const version = await nextVersionNumber(dataDir);
  const name = versionName(version);
  const manifest = batchManifestSchema.parse({
    format: "lanemap.batch-view/1",
    version,
    name,
    ...draft,
    files,
  });
  await writeFileDurable(
    join(stagingDir, BATCH_VIEW_FILES.manifest),
    JSON.stringify(manifest, null, 2) + "\n",
  );
  await fsyncPath(stagingDir);
  await options.beforeRename?.();

  const target = join(paths.batchViews, name);
  await rename(stagingDir, target);
  await fsyncPath(paths.batchViews);
  await fsyncPath(paths.batchStaging).catch(() => undefined);
  const published = await setCurrentBatch(dataDir, name);
  options.logger.info(
    { version: name, watermark: manifest.watermark, tiles: manifest.tiles },
    "batch view published",
  );
  return published;
}

/** What retention removed. */
export interface RetentionReport {
  readonly deletedVersions: string[];
  readonly deletedIncomplete: string[];
  readonly deletedStaging: string[];
}

/**
 * Keeps the newest `keep` complete versions and the current one; deletes older versions, version
 * folders without a manifest (a crash between rename and manifest cannot produce one, but a manual
 * copy can) and staging folders other than `activeStaging`. Run it under the batch lock only.
 */
export async function applyRetention(
  dataDir: string,
  keep: number,
  options: { logger: Logger; activeStaging?: string },
): Promise<RetentionReport> {
  const paths = dataPaths(dataDir);
  const current = await readCurrentPointer(dataDir);
  const complete = await listBatchVersions(dataDir);
  const keepNames = new Set(complete.slice(-Math.max(1, keep)).map((v) => v.name));
  if (current) keepNames.add(current);
  const completeNames = new Set(complete.map((v) => v.name));
  const report: RetentionReport = { deletedVersions: [], deletedIncomplete: [], deletedStaging: [] };

  let names: string[] = [];
  try {
    names = await readdir(paths.batchViews);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const n of names) {
    if (parseVersionName(n) === null || keepNames.has(n)) continue;
    await rm(join(paths.batchViews, n), { recursive: true, force: true });
    (completeNames.has(n) ? report.deletedVersions : report.deletedIncomplete).push(n);
  }
  let staging: string[] = [];
  try {
    staging = await readdir(paths.batchStaging);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const s of staging) {
    const dir = join(paths.batchStaging, s);
    if (options.activeStaging && dir === options.activeStaging) continue;
    await rm(dir, { recursive: true, force: true });
    report.deletedStaging.push(s);
  }
  if (report.deletedVersions.length || report.deletedIncomplete.length || report.deletedStaging.length)
    options.logger.info({ keep, ...report }, "batch view retention");
  return report;
}

/** A published version as `lanemap views list` shows it. */
export interface ViewListing {
  readonly name: string;
  readonly version: number;
  readonly current: boolean;
  readonly watermark: number;
  readonly modelVersion: string;
  readonly tiles: BatchManifest["tiles"];
  readonly cells: number;
  readonly finishedAt: string;
}

/** Every complete version, oldest first, with the current one marked. */
export async function listViews(dataDir: string): Promise<ViewListing[]> {
  const current = await readCurrentPointer(dataDir);
  return (await listBatchVersions(dataDir)).map((v) => ({
    name: v.name,
    version: v.version,
    current: v.name === current,
    watermark: v.manifest.watermark,
    modelVersion: v.manifest.modelVersion,
    tiles: v.manifest.tiles,
    cells: v.manifest.cells,
    finishedAt: v.manifest.finishedAt,
  }));
}

/**
 * Points CURRENT back (or forward) at a complete version. Accepts "v000042" or "42". Throws a
 * LanemapError VIEW_NOT_FOUND when the version does not exist or is incomplete.
 */
export async function rollbackBatchView(dataDir: string, version: string): Promise<BatchVersion> {
  const name = versionNameOf(version);
  if (name === null)
    throw new LanemapError(
      "VIEW_NOT_FOUND",
      `"${version}" is not a batch view version (expected e.g. v000042 or 42)`,
    );
  const v = await readBatchVersion(dataDir, name);
  if (!v) {
    const known = (await listBatchVersions(dataDir)).map((x) => x.name);
    const exists = await stat(join(dataPaths(dataDir).batchViews, name)).then(
      (s) => s.isDirectory(),
      () => false,
    );
    throw new LanemapError(
      "VIEW_NOT_FOUND",
      exists
        ? `batch view ${name} is incomplete (no valid manifest.json); it cannot be made current`
        : `batch view ${name} does not exist; complete versions: ${known.length ? known.join(", ") : "none"}`,
    );
  }
  return setCurrentBatch(dataDir, name);
}
