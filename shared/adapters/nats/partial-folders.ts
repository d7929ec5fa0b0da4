/**
 * Folders a download fills before it is complete, in a local cache that several processes may share
 * (two `lanemap serve` on one machine, `views diff` or a batch run beside them: one
 * LANEMAP_DATA_DIR). Each download fills a folder of its own, `<target>.partial-<random>`, holding
 * a record of its owner, and renames it to `<target>` once complete; so no process ever removes or
 * overwrites a folder another process is filling, or a complete one another has just renamed into
 * place (with one shared `<target>.partial`, a second download's start removed the first's files
 * mid-write, and the first then found a file that did not match its manifest: an operator's
 * `views diff` right after a publish, issue 14). A folder whose owner is provably gone (a crash,
 * shared/util/process.ts) is garbage, removed by the next download of that target or by eviction.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { ownerGone, thisProcessOwner, type ProcessOwner } from "../../util/process.js";

/** The owner record inside a partial folder (removed before the folder becomes the target). */
const OWNER_FILE = ".download-owner.json";
/** Infix of a partial folder's name: `<target>.partial-<hex>` (and `<target>.partial` of older builds). */
const PARTIAL = ".partial";
/**
 * A partial folder whose owner cannot be proved gone (another host or PID namespace sharing the
 * cache, or no record) is garbage once nothing in it has changed for this long: far longer than
 * any view download (tens of MB), short enough that a crash's leftovers do not stay for good.
 */
export const PARTIAL_STALE_MS = 24 * 3600_000;

/** The target a partial folder's name belongs to, or null when the name is not a partial folder's. */
function partialTarget(entry: string): string | null {
  const at = entry.lastIndexOf(PARTIAL);
  if (at <= 0) return null;
  const tail = entry.slice(at + PARTIAL.length);
  return tail === "" || /^-[0-9a-f]+$/.test(tail) ? entry.slice(0, at) : null;
}

/**
 * Makes an empty partial folder for `target` owned by this process.
 * @returns its path, `<target>.partial-<16 hex>`
 */
export async function startPartial(target: string): Promise<string> {
  const partial = `${target}${PARTIAL}-${randomBytes(8).toString("hex")}`;
  await mkdir(partial, { recursive: true });
  await writeFile(
    join(partial, OWNER_FILE),
    JSON.stringify({ ...thisProcessOwner(), startedAt: new Date().toISOString() }),
  );
  return partial;
}

/**
 * Renames a filled partial folder to its target. When another process has completed the target
 * meanwhile (`isComplete` says so), that copy wins and this one is removed: both are the same
 * checked bytes. An incomplete target (left by an older build) is replaced.
 * @returns the target's path
 * @throws the file system's error when the rename fails for another reason
 */
export async function finishPartial(
  partial: string,
  target: string,
  isComplete: (dir: string) => Promise<boolean>,
): Promise<string> {
  await rm(join(partial, OWNER_FILE), { force: true });
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(partial, target);
      return target;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "ENOTEMPTY" && code !== "EEXIST") || attempt > 0) throw err;
      if (await isComplete(target)) {
        await rm(partial, { recursive: true, force: true });
        return target;
      }
      await rm(target, { recursive: true, force: true });
    }
  }
}

/** Why a partial folder is garbage, or null while a live download may still be filling it. */
async function partialGone(path: string, now: number): Promise<string | null> {
  try {
    const owner = JSON.parse(await readFile(join(path, OWNER_FILE), "utf8")) as ProcessOwner;
    if (typeof owner.pid === "number" && typeof owner.hostname === "string") {
      const gone = ownerGone(owner);
      if (gone !== null) return `its download's process is gone (${gone})`;
    }
  } catch {
    // No record. An older build's `<target>.partial` (one per target, which that build removed at
    // its next try anyway) is garbage; a crash right after mkdir leaves one its age decides.
    if (path.endsWith(PARTIAL)) return "left by an older build";
  }
  try {
    const newest = Math.max(
      (await stat(path)).mtimeMs,
      ...(await Promise.all((await readdir(path)).map(async (f) => (await stat(join(path, f))).mtimeMs))),
    );
    return now - newest > PARTIAL_STALE_MS ? `unchanged for over ${PARTIAL_STALE_MS / 3600_000} h` : null;
  } catch {
    return null; // removed meanwhile, by its owner's rename or another cleaner
  }
}

/**
 * Removes the partial folders of `cacheDir` (of `target` only, when given) that no live download
 * is filling: its owner is provably gone, or nothing in it changed for {@link PARTIAL_STALE_MS}.
 * @returns the names of the folders removed
 */
export async function removeStalePartials(cacheDir: string, target?: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(cacheDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const only = target === undefined ? undefined : basename(target);
  const removed: string[] = [];
  const now = Date.now();
  for (const entry of entries) {
    const of = partialTarget(entry);
    if (of === null || (only !== undefined && of !== only)) continue;
    const path = join(cacheDir, entry);
    if ((await partialGone(path, now)) === null) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}
