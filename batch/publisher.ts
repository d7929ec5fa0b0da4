/**
 * Publishing batch views. A version becomes visible in three steps, each durable before the next:
 *
 *   1. every file of the staging folder is fsynced, then manifest.json is written last (it lists every
 *      other file with its size and sha256) and the folder itself is fsynced;
 *   2. the staging folder is renamed to views/batch/vNNNNNN and views/batch/ is fsynced: the version
 *      appears complete or not at all (a folder without a manifest is not a view);
 *   3. CURRENT is swapped to the new name by rename (shared/adapters/archive `setCurrentBatch`).
 *
 * With a `PublishedViews` (shared/storage) step 3 goes through it: the complete folder is
 * `publish`ed (the nats backend uploads it, manifest last) and CURRENT moves by compare-and-set on
 * the revision the run read at its start (`PointerLease`): a pointer moved meanwhile (an operator's
 * rollback, another coordinator) fails the run with VIEW_POINTER_CONFLICT and leaves CURRENT as it is.
 *
 * Two coordinators on one shared store (issue 14: the `lanemap-batch` unit enabled on two machines)
 * are caught before either writes into the other's version: a publisher first checks its lease
 * (CURRENT moved since the run read it: VIEW_POINTER_CONFLICT naming the version published
 * meanwhile, nothing written, the staging folder and its checkpoint left for a rerun), then
 * reserves its version number (`PublishedViews.reserve`, a KV create on nats: a number another
 * publisher holds is skipped), and checks the lease again. Two that pass both checks at the same
 * moment upload into versions of their own; the second pointer move is refused, and that
 * publisher removes its upload again and puts its folder back as the checkpoint.
 *
 * A crash before 2 leaves only a staging folder (never read by serving); between 2 and 3 a complete
 * version that is not current yet. Readers that opened an older version keep reading it: the version
 * CURRENT names is never deleted, and retention only removes versions beyond the newest `keep`.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, join } from "node:path";
import type { Logger } from "pino";
import {
  FilePublishedViews,
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
  describeError,
  parseVersionName,
  versionName,
  versionNameOf,
  ViewPointerConflictError,
  type BatchManifest,
  type PublishedVersion,
  type PublishedViews,
  type ViewPointer,
} from "../shared/index.js";

/** The manifest without what publishing fills in (version, name, files). */
export type ManifestDraft = Omit<BatchManifest, "format" | "version" | "name" | "files">;

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * CURRENT's revision as a run read it at its start; each publish of the run moves it by
 * compare-and-set from this revision and records the new one (an interim view, then the final).
 */
export interface PointerLease {
  expected: number | null;
}

/**
 * The conflict of a lease whose CURRENT moved (`pointer` read now), or null while it holds: what a
 * publisher checks before it writes anything. The message names the version now current.
 */
export function staleLease(
  lease: PointerLease,
  pointer: ViewPointer | null,
  name: string,
): ViewPointerConflictError | null {
  if ((pointer?.revision ?? null) === lease.expected) return null;
  return new ViewPointerConflictError(
    name,
    lease.expected,
    pointer,
    pointer
      ? `another coordinator published ${pointer.name} (or an operator moved CURRENT to it) since this run read CURRENT; nothing was uploaded and the run's checkpoint is kept: run again to build on ${pointer.name}`
      : "CURRENT was removed since this run read it; nothing was uploaded and the run's checkpoint is kept",
  );
}

/** How many numbers a publisher tries past the next one before it gives up (each held by another). */
export const RESERVE_TRIES = 16;

/**
 * Reserves the first free version number from `first` on (at most RESERVE_TRIES), in `views`.
 * @throws LanemapError PUBLISH when every number tried is held.
 */
async function reserveVersion(
  views: PublishedViews,
  first: number,
  holder: string,
  logger: Logger,
): Promise<number> {
  for (let version = first; version < first + RESERVE_TRIES; version++) {
    const held = await views.reserve(versionName(version), holder);
    if (held === null) return version;
    logger.warn(
      { version: held.name, holder: held.holder },
      "batch view version reserved by another publisher; taking the next number",
    );
  }
  throw new LanemapError(
    "PUBLISH",
    `versions ${versionName(first)} to ${versionName(first + RESERVE_TRIES - 1)} are all reserved by other publishers; is another batch coordinator running on this store?`,
  );
}

/** The version CURRENT names, readable on this machine (materialized), with the pointer read. */
export async function readCurrentVersion(
  views: PublishedViews,
): Promise<{ readonly version: BatchVersion | null; readonly lease: PointerLease }> {
  const pointer = await views.current();
  const lease: PointerLease = { expected: pointer?.revision ?? null };
  if (!pointer) return { version: null, lease };
  const listed = (await views.list()).find((v) => v.name === pointer.name);
  if (!listed) return { version: null, lease };
  const dir = await views.materialize(pointer.name);
  return { version: { name: listed.name, version: listed.version, dir, manifest: listed.manifest }, lease };
}

/**
 * The next version number: one above every version folder present, complete or not, and (with
 * `views`) every version the shared store lists or CURRENT names.
 */
export async function nextVersionNumber(dataDir: string, views?: PublishedViews): Promise<number> {
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
  if (views && views.backend !== "files") {
    for (const v of await views.list()) max = Math.max(max, v.version);
    const pointer = await views.current();
    if (pointer) max = Math.max(max, parseVersionName(pointer.name) ?? 0);
  }
  return max + 1;
}

/**
 * Publishes a complete staging folder (every file of BATCH_VIEW_FILES but the manifest) as the next
 * version and makes it current. `beforeRename` runs after the manifest is durable and before the
 * rename (the crash tests pause there). With `views` the version number is reserved in it first,
 * the version is published through it and CURRENT moves from `lease.expected` (then holds the new
 * revision).
 * @throws ViewPointerConflictError (VIEW_POINTER_CONFLICT) when CURRENT moved since the lease:
 *   before anything is written when the move is seen then, else after the upload (which is removed
 *   again); either way the staging folder stays, so a rerun resumes from its checkpoint;
 *   LanemapError PUBLISH when no version number can be reserved; STORAGE when the shared store fails.
 */
export async function publishStagedView(
  dataDir: string,
  stagingDir: string,
  draft: ManifestDraft,
  options: {
    logger: Logger;
    beforeRename?: () => Promise<void>;
    views?: PublishedViews;
    lease?: PointerLease;
    /**
     * Resolves while this run may still publish, else throws (the batch coordinator lease,
     * shared/adapters/nats/batch-lease.ts `confirm`): asked before anything is reserved or written,
     * and again after the upload, before CURRENT moves (a refusal then removes the upload again
     * and puts the folder back as the checkpoint).
     */
    holding?: () => Promise<void>;
  },
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

  const views = options.views;
  const lease = options.lease;
  const check = async (name: string): Promise<void> => {
    await options.holding?.();
    if (!views || !lease) return;
    const conflict = staleLease(lease, await views.current(), name);
    if (conflict) throw conflict;
  };
  let version = await nextVersionNumber(dataDir, views);
  await check(versionName(version));
  if (views) {
    version = await reserveVersion(
      views,
      version,
      `run ${basename(stagingDir)} (pid ${process.pid} on ${hostname()})`,
      options.logger,
    );
    // Another publisher may have moved CURRENT between the first check and the reservation.
    await check(versionName(version)).catch(async (err: unknown) => {
      await views.release(versionName(version)).catch(() => undefined);
      throw err;
    });
  }
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
  let published: BatchVersion;
  if (views) {
    try {
      await views.publish(target, name);
      // Uploading takes time: a coordinator that lost its lease meanwhile must not move CURRENT.
      await options.holding?.().catch(async (err: unknown) => {
        await undoUpload(views, { name, target, stagingDir });
        throw err;
      });
      try {
        const pointer = await views.setCurrent(name, lease?.expected);
        if (lease) lease.expected = pointer.revision;
      } catch (err) {
        if (!(err instanceof ViewPointerConflictError)) throw err;
        // The name is reserved for this run alone: CURRENT naming it means the move landed and only
        // its answer was lost (a node lost mid-request reports the retried compare-and-set as a
        // conflict). Undoing then would remove the current version.
        const actual = await views.current();
        if (actual?.name !== name)
          throw await undoPublish(views, { name, target, stagingDir, expected: lease?.expected ?? null });
        if (lease) lease.expected = actual.revision;
      }
    } finally {
      // Published (the store lists it: no one reserves the number again) or given up.
      await views
        .release(name)
        .catch((err: unknown) =>
          options.logger.warn(
            { version: name, err: describeError(err) },
            "batch view reservation not released; it expires by itself",
          ),
        );
    }
    published = { name, version, dir: target, manifest };
  } else published = await setCurrentBatch(dataDir, name);
  options.logger.info(
    { version: name, watermark: manifest.watermark, tiles: manifest.tiles },
    "batch view published",
  );
  return published;
}

/**
 * After a lost pointer move (two coordinators passed their checks at the same moment): removes the
 * version just uploaded (not current, so no reader names it; the files backend's version is the
 * folder itself) and puts the folder back as the staging folder, so a rerun resumes from its
 * checkpoint. Each step is best effort; returns the conflict to throw, saying what was undone.
 */
async function undoPublish(
  views: PublishedViews,
  p: { name: string; target: string; stagingDir: string; expected: number | null },
): Promise<ViewPointerConflictError> {
  const { name, target } = p;
  const { removed, restored } = await undoUpload(views, p);
  const actual = await views.current().catch(() => null);
  const rest = `${removed ? `this run's upload of ${name} was removed again` : `this run's upload of ${name} is left for retention`}; ${
    restored ? "the run's checkpoint is kept: run again to resume" : `the version folder stays at ${target}`
  }`;
  return new ViewPointerConflictError(
    name,
    p.expected,
    actual,
    actual ? `another coordinator published ${actual.name} meanwhile; ${rest}` : rest,
  );
}

/**
 * Removes an upload that must not become current (best effort) and renames its folder back to the
 * staging folder, the run's checkpoint; says what it managed.
 */
async function undoUpload(
  views: PublishedViews,
  p: { name: string; target: string; stagingDir: string },
): Promise<{ removed: boolean; restored: boolean }> {
  const removedFromStore =
    views.backend === "files" ||
    (await views.remove(p.name).then(
      () => true,
      () => false,
    ));
  const restored = await rename(p.target, p.stagingDir).then(
    () => true,
    () => false,
  );
  // The files backend's version is the folder: renamed back, it is gone.
  return { removed: views.backend === "files" ? restored : removedFromStore, restored };
}

/** What retention removed. */
export interface RetentionReport {
  readonly deletedVersions: string[];
  readonly deletedIncomplete: string[];
  readonly deletedStaging: string[];
  /** Old versions this run could not remove (a broker timeout): warned about, left to the next run. */
  readonly deferredVersions: string[];
  /**
   * This machine's downloaded copies (the nats backend's `<dataDir>/cache/views`, what `materialize`
   * made: the previous view each run reuses) of versions no longer kept, removed.
   */
  readonly evictedLocal: string[];
  /** Reservations of complete versions (a publisher that died before releasing its own), released. */
  readonly releasedReservations: string[];
}

/**
 * Keeps the newest `keep` complete versions and the current one; deletes older versions, version
 * folders without a manifest (a crash between rename and manifest cannot produce one, but a manual
 * copy can) and staging folders other than `activeStaging`. Run it under the batch lock only.
 *
 * Housekeeping after a publish, so it never fails the run that published: a store that cannot be
 * read or a version that cannot be removed (a broker timeout while a node is down) is a warning,
 * and the next run's retention removes it (issue 14: a run printed "removing v000004 failed:
 * timeout" and exited 1 after publishing v000009).
 */
export async function applyRetention(
  dataDir: string,
  keep: number,
  options: { logger: Logger; activeStaging?: string; views?: PublishedViews },
): Promise<RetentionReport> {
  const paths = dataPaths(dataDir);
  const views: PublishedViews = options.views ?? new FilePublishedViews(dataDir);
  let current: string | null;
  let complete: PublishedVersion[];
  try {
    current = (await views.current())?.name ?? null;
    complete = await views.list();
  } catch (err) {
    options.logger.warn(
      { err: describeError(err) },
      "batch view retention: cannot list the published versions; the next run removes old ones",
    );
    return {
      deletedVersions: [],
      deletedIncomplete: [],
      deletedStaging: [],
      deferredVersions: [],
      evictedLocal: [],
      releasedReservations: [],
    };
  }
  const keepNames = new Set(complete.slice(-Math.max(1, keep)).map((v) => v.name));
  if (current) keepNames.add(current);
  const completeNames = new Set(complete.map((v) => v.name));
  const report: RetentionReport = {
    deletedVersions: [],
    deletedIncomplete: [],
    deletedStaging: [],
    deferredVersions: [],
    evictedLocal: [],
    releasedReservations: [],
  };
  for (const v of complete) {
    if (keepNames.has(v.name)) continue;
    try {
      await views.remove(v.name);
    } catch (err) {
      // A rollback to it since the read above: it is current again, so it stays.
      if (err instanceof LanemapError && err.code === "VIEW_IN_USE") continue;
      options.logger.warn(
        { version: v.name, err: describeError(err) },
        "batch view retention: cannot remove an old version; the next run tries again",
      );
      report.deferredVersions.push(v.name);
      continue;
    }
    report.deletedVersions.push(v.name);
  }
  // Every run materializes the view it reuses into this machine's cache, and only serving evicted:
  // a coordinator's cache held 18 versions (53 MB) while the store kept 5 (issue 14, F-D). The
  // copies of the versions kept stay (the next run reuses CURRENT's; a serve on this machine may
  // have the others open). The files backend makes no copies: its versions are the folders above.
  if (views.evictLocal) {
    try {
      report.evictedLocal.push(...(await views.evictLocal([...keepNames])));
    } catch (err) {
      options.logger.warn(
        { err: describeError(err) },
        "batch view retention: cannot evict this machine's copies of old versions; the next run tries again",
      );
    }
  }

  // Reservations (PublishedViews.reserve): a complete version's is released (its publisher died
  // between its pointer move and its release); a version the store holds half written that no
  // reservation holds is removed (its publisher died; a publish under way holds its number). A
  // reservation of a version never completed is a publish under way or a dead one: it expires by
  // itself (nats: the bucket's max_age), and the next retention then removes what it left.
  try {
    const unfinished = views.incomplete ? await views.incomplete() : [];
    const reserved = await views.reservations();
    const held = new Set(reserved.map((r) => r.name));
    for (const r of reserved)
      if (completeNames.has(r.name)) {
        await views.release(r.name);
        report.releasedReservations.push(r.name);
      }
    for (const n of unfinished)
      if (!held.has(n) && !completeNames.has(n) && n !== current) {
        await views.remove(n);
        report.deletedIncomplete.push(n);
      }
  } catch (err) {
    options.logger.warn(
      { err: describeError(err) },
      "batch view retention: cannot check the reserved and half-written versions; the next run tries again",
    );
  }

  let names: string[] = [];
  try {
    names = await readdir(paths.batchViews);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  // What is left here: incomplete folders, and (nats backend) this machine's copies of versions.
  for (const n of names) {
    if (parseVersionName(n) === null || keepNames.has(n)) continue;
    await rm(join(paths.batchViews, n), { recursive: true, force: true });
    if (!completeNames.has(n) && !report.deletedIncomplete.includes(n)) report.deletedIncomplete.push(n);
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
  if (
    report.deletedVersions.length ||
    report.deletedIncomplete.length ||
    report.deletedStaging.length ||
    report.evictedLocal.length ||
    report.releasedReservations.length
  )
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

/**
 * Every complete version, oldest first, with the current one marked: the data directory's, or
 * (with `views`) the store's.
 */
export async function listViews(dataDir: string, views?: PublishedViews): Promise<ViewListing[]> {
  const current = views ? ((await views.current())?.name ?? null) : await readCurrentPointer(dataDir);
  const versions = views ? await views.list() : await listBatchVersions(dataDir);
  return versions.map((v) => ({
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
 * The version name an operator's argument gives ("v000042" or "42").
 * @throws LanemapError VIEW_NOT_FOUND when it names no version.
 */
export function batchVersionNamed(spec: string): string {
  const name = versionNameOf(spec);
  if (name === null)
    throw new LanemapError(
      "VIEW_NOT_FOUND",
      `"${spec}" is not a batch view version (expected e.g. v000042 or 42)`,
    );
  return name;
}

/**
 * Points CURRENT back (or forward) at a complete version. Accepts "v000042" or "42". With a
 * `views` store other than the data directory's files the move goes through it (compare-and-set
 * on the revision read just before).
 * @throws LanemapError VIEW_NOT_FOUND when the version does not exist or is incomplete;
 *   ViewPointerConflictError when CURRENT moved between the read and the move.
 */
export async function rollbackBatchView(
  dataDir: string,
  version: string,
  views?: PublishedViews,
): Promise<PublishedVersion> {
  const name = batchVersionNamed(version);
  if (views && views.backend !== "files") {
    const pointer = await views.current();
    const known = await views.list();
    const v = known.find((x) => x.name === name);
    if (!v)
      throw new LanemapError(
        "VIEW_NOT_FOUND",
        `batch view ${name} does not exist or is incomplete; complete versions: ${
          known.length ? known.map((x) => x.name).join(", ") : "none"
        }`,
      );
    await views.setCurrent(name, pointer?.revision ?? null);
    return v;
  }
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
