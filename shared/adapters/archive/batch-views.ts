/**
 * Published batch views on disk: `views/batch/vNNNNNN/` folders, each complete only once its
 * manifest.json exists (written last), and the CURRENT pointer naming the version serving uses.
 * The pointer is swapped by rename, so a reader sees the old or the new name, never a mix.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { LanemapError } from "../../errors.js";
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
    const name = (await readFile(dataPaths(dataDir).batchCurrent, "utf8")).trim();
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
 * Points CURRENT at a complete version (publish or rollback).
 * @throws LanemapError VIEW_NOT_FOUND when the version does not exist or is incomplete.
 */
export async function setCurrentBatch(dataDir: string, name: string): Promise<BatchVersion> {
  const v = await readBatchVersion(dataDir, name);
  if (!v) throw new LanemapError("VIEW_NOT_FOUND", `batch view ${name} does not exist or is incomplete`);
  await writeFileDurable(dataPaths(dataDir).batchCurrent, name + "\n");
  return v;
}
