/**
 * PROJ's answers kept on disk, so that a short command does not start the PROJ engine to ask what an
 * earlier command already asked. Starting gdal3.js costs about 1.4 s of CPU per process (27 MB of
 * WASM, GDAL's drivers, proj.db) — more than `lanemap classify` spends on a 250² scene — and a CLI
 * process (`lanemap train`, then `lanemap classify` on the same tiles) pays it every time.
 *
 * Both questions lanemap asks PROJ are pure functions of their inputs for a given gdal3.js release
 * (it pins GDAL, PROJ and proj.db; network grids are off): GDAL's reading of a GeoKey directory, and
 * PROJ's transform of given points between two given CRSs. So an answer is stored under a SHA-256 of
 * the question, in a folder named after the gdal3.js version: a cached answer is never stale, an
 * upgrade of gdal3.js starts a new folder, and only successful answers are kept (a refusal is asked
 * again). The folder follows the XDG base-directory convention (`$XDG_CACHE_HOME/lanemap`, else
 * `~/.cache/lanemap`), like npm's and pip's caches; a folder that cannot be written only means no
 * reuse. Writes are atomic (temporary file + rename), so processes sharing the folder never read a
 * half-written answer.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { loadProjEngine, type GdalCrsReading } from "./proj.js";

let folder: string | null | undefined;

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
  // Each part's length first, so ("ab", "c") and ("a", "bc") differ.
  for (const p of parts) h.update(`${p.length}:`).update(p);
  return h.digest("hex");
}

function recall(key: string): unknown {
  const dir = cacheFolder();
  if (dir === null) return undefined;
  try {
    return JSON.parse(readFileSync(join(dir, `${key}.json`), "utf8")) as unknown;
  } catch {
    return undefined;
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
  }
}

/**
 * GDAL's reading of a GeoTIFF's CRS (`ProjEngine.readGeoTiffCrs`), from the disk cache when this
 * gdal3.js release has answered the same bytes before, else from the engine (started if need be).
 * @throws CrsError as `ProjEngine.readGeoTiffCrs`, or when the engine cannot start.
 */
export async function readGeoTiffCrsOnce(bytes: Uint8Array): Promise<GdalCrsReading | null> {
  const key = keyOf(["readGeoTiffCrs", bytes]);
  const known = recall(key) as { reading: GdalCrsReading | null } | undefined;
  if (known !== undefined && typeof known === "object" && known !== null && "reading" in known)
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
  const known = recall(key) as { x: (number | null)[]; y: (number | null)[] } | undefined;
  if (
    known !== undefined &&
    Array.isArray(known.x) &&
    Array.isArray(known.y) &&
    known.x.length === xs.length &&
    known.y.length === ys.length
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
