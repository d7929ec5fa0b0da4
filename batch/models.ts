/**
 * Which model a batch run applies: the file given (`--model FILE`), else the newest artifact in the
 * data directory's models/ folder. "Newest" is the latest modification time (training writes an
 * artifact once, so that is when it was trained); equal times go to the greater file name.
 */
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LanemapError, dataPaths, loadModelFile } from "../shared/index.js";

/** No model was given and data/models/ holds none. */
export class NoModelError extends LanemapError {
  constructor(dir: string) {
    super(
      "MODEL_NOT_FOUND",
      `no model to apply: ${dir} holds no *.json artifact; train one (lanemap train ...) or pass --model FILE`,
    );
  }
}

/** A model artifact in data/models/ and the band count its feature spec expects. */
export interface ModelLayout {
  readonly path: string;
  readonly version: string;
  readonly bands: number;
}

/**
 * The band layout of every model artifact in data/models/ (unreadable files are skipped): what
 * `archive add` checks new tiles against, since a tile no model fits fails every batch run.
 */
export async function modelLayouts(dataDir: string): Promise<ModelLayout[]> {
  const dir = dataPaths(dataDir).models;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort();
  } catch {
    return [];
  }
  const out: ModelLayout[] = [];
  for (const name of names) {
    try {
      const model = await loadModelFile(join(dir, name));
      out.push({ path: join(dir, name), version: model.version, bands: model.features.bands });
    } catch {
      // Not a model artifact: resolveModelPath will say so when a run picks it.
    }
  }
  return out;
}

/** The model file a run uses: `explicit` (checked to exist) or the newest in data/models/. */
export async function resolveModelPath(dataDir: string, explicit?: string): Promise<string> {
  if (explicit !== undefined) {
    const path = resolve(explicit);
    try {
      if (!(await stat(path)).isFile()) throw new Error("not a file");
    } catch (cause) {
      throw new LanemapError("MODEL_NOT_FOUND", `model file ${path} cannot be read`, { cause });
    }
    return path;
  }
  const dir = dataPaths(dataDir).models;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NoModelError(dir);
    throw err;
  }
  let best: { path: string; name: string; mtimeMs: number } | undefined;
  for (const name of names) {
    if (!name.endsWith(".json") || name.startsWith(".")) continue;
    const path = join(dir, name);
    const s = await stat(path);
    if (!s.isFile()) continue;
    if (!best || s.mtimeMs > best.mtimeMs || (s.mtimeMs === best.mtimeMs && name > best.name))
      best = { path, name, mtimeMs: s.mtimeMs };
  }
  if (!best) throw new NoModelError(dir);
  return best.path;
}
