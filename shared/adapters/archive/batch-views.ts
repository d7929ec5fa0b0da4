/**
 * Published batch views on disk: `views/batch/vNNNNNN/` folders, each complete only once its
 * manifest.json exists (written last), and the CURRENT pointer naming the version serving uses.
 * The pointer is swapped by rename, so a reader sees the old or the new name, never a mix.
 */
import { watch, type FSWatcher } from "node:fs";
import { readdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LanemapError } from "../../errors.js";
import {
  ViewPointerConflictError,
  type PublishedVersion,
  type PublishedViews,
  type VersionReservation,
  type ViewPointer,
} from "../../storage/index.js";
import { dataPaths, parseVersionName } from "../../view/paths.js";
import { batchManifestSchema, type BatchManifest } from "../../view/types.js";
import { writeFileDurable } from "./durable.js";

export interface BatchVersion {
  readonly name: string;
  readonly version: number;
  readonly dir: string;
  readonly manifest: BatchManifest;
}

/** Reads a version folder's manifest, or null when the folder is incomplete or not a version. */
export async function readBatchVersion(dataDir: string, name: string): Promise<BatchVersion | null> {
  const version = parseVersionName(name);
  if (version === null) return null;
  const dir = join(dataPaths(dataDir).batchViews, name);
  let text: string;
  try {
    text = await readFile(join(dir, "manifest.json"), "utf8");
  } catch {
    return null;
  }
  const parsed = batchManifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success || parsed.data.name !== name) return null;
  return { name, version, dir, manifest: parsed.data };
}

/** Every complete published version, oldest first. */
export async function listBatchVersions(dataDir: string): Promise<BatchVersion[]> {
  let names: string[];
  try {
    names = await readdir(dataPaths(dataDir).batchViews);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: BatchVersion[] = [];
  for (const name of names.sort()) {
    const v = await readBatchVersion(dataDir, name);
    if (v) out.push(v);
  }
  return out;
}

/** The name CURRENT points at, or null when nothing was published yet. */
export async function readCurrentPointer(dataDir: string): Promise<string | null> {
  try {
    const name = (await readFile(dataPaths(dataDir).batchCurrent, "utf8")).split("\n")[0]!.trim();
    return parseVersionName(name) === null ? null : name;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** The current published version, or null. */
export async function readCurrentBatch(dataDir: string): Promise<BatchVersion | null> {
  const name = await readCurrentPointer(dataDir);
  return name ? readBatchVersion(dataDir, name) : null;
}

/**
 * CURRENT with its revision: the file holds the name on its first line (what every older reader
 * reads) and `revision N` on the second; a file without one is revision 1.
 */
export async function readCurrentRevision(dataDir: string): Promise<ViewPointer | null> {
  let text: string;
  try {
    text = await readFile(dataPaths(dataDir).batchCurrent, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const [first = "", second = ""] = text.split("\n");
  const name = first.trim();
  if (parseVersionName(name) === null) return null;
  const m = /^revision (\d+)$/.exec(second.trim());
  return { name, revision: m ? Number(m[1]) : 1 };
}

/**
 * Points CURRENT at a complete version (publish or rollback), by rename, with the next revision.
 * With `expectedRevision` (null: no pointer yet) the move happens only if CURRENT is still at that
 * revision. On one machine the batch lock serialises publishers; the check catches an operator's
 * rollback between a run's read and its publish.
 * @throws LanemapError VIEW_NOT_FOUND when the version does not exist or is incomplete;
 *   ViewPointerConflictError when CURRENT moved.
 */
export async function setCurrentBatch(
  dataDir: string,
  name: string,
  expectedRevision?: number | null,
): Promise<BatchVersion & { readonly revision: number }> {
  const v = await readBatchVersion(dataDir, name);
  if (!v) throw new LanemapError("VIEW_NOT_FOUND", `batch view ${name} does not exist or is incomplete`);
  const before = await readCurrentRevision(dataDir);
  if (expectedRevision !== undefined && (before?.revision ?? null) !== expectedRevision)
    throw new ViewPointerConflictError(name, expectedRevision, before);
  const revision = (before?.revision ?? 0) + 1;
  await writeFileDurable(dataPaths(dataDir).batchCurrent, `${name}\nrevision ${revision}\n`);
  return { ...v, revision };
}

/**
 * The published views of a data directory (the files backend of `PublishedViews`): versions are
 * written in place by the batch publisher, so `materialize` is the version's own folder and
 * `publish` only checks that the folder is the version's. One machine, or a shared file system.
 */
export class FilePublishedViews implements PublishedViews {
  readonly backend = "files" as const;

  constructor(
    private readonly dataDir: string,
    private readonly options: { pollIntervalMs?: number } = {},
  ) {}

  async list(): Promise<PublishedVersion[]> {
    return (await listBatchVersions(this.dataDir)).map(({ name, version, manifest }) => ({
      name,
      version,
      manifest,
    }));
  }

  current(): Promise<ViewPointer | null> {
    return readCurrentRevision(this.dataDir);
  }

  async materialize(name: string): Promise<string> {
    const v = await readBatchVersion(this.dataDir, name);
    if (!v) throw new LanemapError("VIEW_NOT_FOUND", `batch view ${name} does not exist or is incomplete`);
    return v.dir;
  }

  async publish(localDir: string, name: string): Promise<void> {
    const v = await readBatchVersion(this.dataDir, name);
    if (!v || resolve(v.dir) !== resolve(localDir))
      throw new LanemapError(
        "PUBLISH",
        `batch view ${name} is not a complete version folder of ${this.dataDir} (got ${localDir})`,
      );
  }

  async setCurrent(name: string, expectedRevision?: number | null): Promise<ViewPointer> {
    const { revision } = await setCurrentBatch(this.dataDir, name, expectedRevision);
    return { name, revision };
  }

  /**
   * Reserves nothing, and need not: every publisher of a data directory holds its batch lock
   * (batch/lock.ts, an O_EXCL file, which also holds across hosts sharing the folder), so two never
   * compute a version number at once; and a version folder is made by renaming the staging folder
   * onto its name, which fails when a non-empty folder has it already, so no version is ever written
   * into another's.
   */
  async reserve(): Promise<VersionReservation | null> {
    return null;
  }

  async release(): Promise<void> {}

  async reservations(): Promise<VersionReservation[]> {
    return [];
  }

  async remove(name: string): Promise<void> {
    if ((await readCurrentPointer(this.dataDir)) === name)
      throw new LanemapError("VIEW_IN_USE", `batch view ${name} is the current one`);
    if (parseVersionName(name) === null) throw new LanemapError("VIEW_NOT_FOUND", `no batch view ${name}`);
    await rm(join(dataPaths(this.dataDir).batchViews, name), { recursive: true, force: true });
  }

  watch(onChange: (pointer: ViewPointer | null) => void): { stop(): Promise<void> } {
    // CURRENT moves by rename, which fs.watch on the folder hears at once; the poll covers what
    // it can miss (network file systems, a folder created later, coalesced events).
    // Checks run one at a time (a check that starts while one runs waits for it), and a pointer is
    // delivered only when its revision is newer than the last one delivered: fs.watch events, the
    // poll and the first check overlap, and a slow read must not report an older move last.
    let last: number | null | undefined;
    let stopped = false;
    let chain: Promise<void> = Promise.resolve();
    const checkOnce = async (): Promise<void> => {
      if (stopped) return;
      const p = await this.current().catch(() => undefined);
      if (p === undefined || stopped) return;
      const revision = p ? p.revision : null;
      if (last !== undefined && (revision === null ? last === null : last !== null && revision <= last))
        return;
      last = revision;
      onChange(p);
    };
    const check = (): Promise<void> => (chain = chain.then(checkOnce));
    let watcher: FSWatcher | null = null;
    try {
      watcher = watch(dataPaths(this.dataDir).batchViews, () => void check());
      watcher.on("error", () => undefined);
    } catch {
      watcher = null;
    }
    const timer = setInterval(() => void check(), this.options.pollIntervalMs ?? 2000);
    timer.unref();
    void check();
    return {
      stop: async () => {
        stopped = true;
        clearInterval(timer);
        watcher?.close();
      },
    };
  }
}
