/**
 * PROJ's answers kept on disk, so that a short command does not start the PROJ engine to ask what an
 * earlier command already asked. Starting gdal3.js costs about 1.4 s of CPU per process (27 MB of
 * WASM, GDAL's drivers, proj.db) — more than `lanemap classify` spends on a 250² scene — and a CLI
 * process (`lanemap train`, then `lanemap classify` on the same tiles) pays it every time.
 *
 * Both questions lanemap asks PROJ are pure functions of their inputs for a given gdal3.js release
 * (it pins GDAL, PROJ and proj.db; network grids are off): GDAL's reading of a GeoKey directory, and
 * PROJ's transform of given points between two given CRSs. So an answer is stored under a SHA-256 of
 * the question and of ANSWER_FORMAT (how lanemap asks and what it keeps of the answer: the gdalinfo
 * options, the axis order, the NaN convention), in a folder named after the gdal3.js version: a cached
 * answer is never stale, an upgrade of gdal3.js starts a new folder, a change of ours a new key, and
 * only successful answers are kept (a refusal is asked again). An answer whose file does not parse or
 * does not have the shape of an answer is ignored and asked again (then overwritten). The folder
 * follows the XDG base-directory convention (`$XDG_CACHE_HOME/lanemap`, else `~/.cache/lanemap`),
 * like npm's and pip's caches; a folder that cannot be written only means no reuse. Writes are atomic
 * (temporary file + rename), so processes sharing the folder never read a half-written answer.
 *
 * The folder is bounded: every new tile location adds two answers (its check points and its edge),
 * so a long-lived speed worker would otherwise grow it without end. Past MAX_ANSWERS files the least
 * recently used quarter is removed (a hit refreshes the file's modification time), with temporary
 * files a crashed writer left behind; at a few KiB an answer that is a few tens of MiB at most.
 */
import { createHash } from "node:crypto";
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { loadProjEngine, type GdalCrsReading } from "./proj.js";

let folder: string | null | undefined;

/**
 * Bumped whenever what lanemap asks PROJ or keeps of its answer changes (readingOf, the GDALInfo
 * options, the transform's axis order or NaN convention), so answers of an older lanemap are not read.
 */
const ANSWER_FORMAT = "lanemap-proj-answer/2";

/** Answers kept per gdal3.js release before the least recently used are removed. */
export const MAX_ANSWERS = 4096;

/** A temporary file this old was left by a writer that died between write and rename. */
const STALE_TEMP_MS = 10 * 60 * 1000;

/** The gdal3.js release that answers (its package version), read without starting it. */
function engineVersion(): string {
  const require = createRequire(import.meta.url);
  return (require("gdal3.js/package.json") as { version: string }).version;
}

/** The cache folder of this gdal3.js release, created on first use; null when it cannot be. */
function cacheFolder(): string | null {
  if (folder !== undefined) return folder;
  try {
    const base = process.env["XDG_CACHE_HOME"] || join(homedir(), ".cache");
    folder = join(base, "lanemap", `proj-answers-gdal3.js-${engineVersion()}`);
    mkdirSync(folder, { recursive: true });
  } catch {
    folder = null;
  }
  return folder;
}

function keyOf(parts: readonly (string | Uint8Array)[]): string {
  const h = createHash("sha256");
  h.update(ANSWER_FORMAT);
  // Each part's length first, so ("ab", "c") and ("a", "bc") differ.
  for (const p of parts) h.update(`${p.length}:`).update(p);
  return h.digest("hex");
}

function recall(key: string): unknown {
  const dir = cacheFolder();
  if (dir === null) return undefined;
  const path = join(dir, `${key}.json`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch {
    return undefined;
  }
  try {
    // Used now: the pruning below removes the least recently used answers first.
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // A read-only folder: the answer is still good.
  }
  return value;
}

/**
 * Removes the least recently used answers of `dir` when it holds more than `maxAnswers`, down to
 * three quarters of it, and temporary files older than STALE_TEMP_MS (`now`, ms since the epoch).
 * Another process removing the same files at the same time is harmless: a missing file is skipped.
 */
export function pruneAnswers(dir: string, maxAnswers: number, now = Date.now()): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const answers: { name: string; used: number }[] = [];
  for (const name of names) {
    const temp = name.startsWith(".");
    if (!temp && !name.endsWith(".json")) continue;
    if (!temp && names.length <= maxAnswers) continue;
    try {
      const used = statSync(join(dir, name)).mtimeMs;
      if (!temp) answers.push({ name, used });
      else if (now - used > STALE_TEMP_MS) unlinkSync(join(dir, name));
    } catch {
      // Renamed or removed meanwhile.
    }
  }
  if (answers.length <= maxAnswers) return;
  answers.sort((a, b) => a.used - b.used);
  const keep = Math.floor((maxAnswers * 3) / 4);
  for (const { name } of answers.slice(0, answers.length - keep))
    try {
      unlinkSync(join(dir, name));
    } catch {
      // Removed by another process meanwhile.
    }
}

function remember(key: string, value: unknown): void {
  const dir = cacheFolder();
  if (dir === null) return;
  const tmp = join(dir, `.${key}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  try {
    writeFileSync(tmp, JSON.stringify(value));
    renameSync(tmp, join(dir, `${key}.json`));
  } catch {
    // A read-only or full disk: the answer is just not reused.
    try {
      unlinkSync(tmp);
    } catch {
      // Never written.
    }
    return;
  }
  pruneAnswers(dir, MAX_ANSWERS);
}

const isStringArray = (v: unknown): boolean => Array.isArray(v) && v.every((s) => typeof s === "string");

/** True when `v` has the shape of a GdalCrsReading (or is null, GDAL's "no CRS"). */
function isReading(v: unknown): v is GdalCrsReading | null {
  if (v === null) return true;
  if (typeof v !== "object") return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r["wkt"] === "string" &&
    "projjson" in r &&
    (r["epsg"] === null || Number.isInteger(r["epsg"])) &&
    (r["proj4"] === null || typeof r["proj4"] === "string") &&
    (r["name"] === null || typeof r["name"] === "string") &&
    isStringArray(r["warnings"])
  );
}

/** True when `v` is a stored coordinate array of `n` numbers (null for a point that does not map). */
function isCoordinates(v: unknown, n: number): v is (number | null)[] {
  return Array.isArray(v) && v.length === n && v.every((c) => c === null || typeof c === "number");
}

/**
 * GDAL's reading of a GeoTIFF's CRS (`ProjEngine.readGeoTiffCrs`), from the disk cache when this
 * gdal3.js release has answered the same bytes before, else from the engine (started if need be).
 * @throws CrsError as `ProjEngine.readGeoTiffCrs`, or when the engine cannot start.
 */
export async function readGeoTiffCrsOnce(bytes: Uint8Array): Promise<GdalCrsReading | null> {
  const key = keyOf(["readGeoTiffCrs", bytes]);
  const known = recall(key);
  if (typeof known === "object" && known !== null && "reading" in known && isReading(known.reading))
    return known.reading;
  const reading = (await loadProjEngine()).readGeoTiffCrs(bytes);
  remember(key, { reading });
  return reading;
}

/**
 * Transforms points in place from `from` to `to` through PROJ (`ProjEngine.transformer`), from the
 * disk cache when this gdal3.js release has transformed exactly these points between these CRSs
 * before. A point that does not map becomes NaN, NaN (stored as null: JSON has no NaN).
 * @throws CrsError as `ProjEngine.transformer`, or when the engine cannot start.
 */
export async function transformPointsOnce(
  from: string,
  to: string,
  xs: Float64Array,
  ys: Float64Array,
): Promise<void> {
  const key = keyOf([
    "transform",
    from,
    to,
    new Uint8Array(xs.buffer, xs.byteOffset, xs.byteLength),
    new Uint8Array(ys.buffer, ys.byteOffset, ys.byteLength),
  ]);
  const known = recall(key) as { x?: unknown; y?: unknown } | null | undefined;
  if (
    typeof known === "object" &&
    known !== null &&
    isCoordinates(known.x, xs.length) &&
    isCoordinates(known.y, ys.length)
  ) {
    for (let i = 0; i < xs.length; i++) {
      xs[i] = known.x[i] ?? NaN;
      ys[i] = known.y[i] ?? NaN;
    }
    return;
  }
  (await loadProjEngine()).transformer(from, to)(xs, ys);
  // JSON writes a double's shortest round-trip form: the cached answer is the same double (a -0
  // comes back as 0, which no comparison tells apart).
  remember(key, { x: Array.from(xs), y: Array.from(ys) });
}
