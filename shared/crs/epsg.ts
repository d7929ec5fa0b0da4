/**
 * EPSG code -> proj4 definition, from the `epsg-index` package. The package ships one small JSON file
 * per code (`s/<code>.json`) beside an 8 MB `all.json`; reading only the file a code needs keeps start-up
 * and memory small, and a cache makes repeated look-ups free.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** What the EPSG index says about one code. */
export interface EpsgEntry {
  readonly code: number;
  readonly name: string;
  readonly proj4: string;
}

const require = createRequire(import.meta.url);
let indexDir: string | null | undefined;
const cache = new Map<number, EpsgEntry | null>();

function epsgIndexDir(): string | null {
  if (indexDir === undefined) {
    try {
      indexDir = join(dirname(require.resolve("epsg-index/package.json")), "s");
    } catch {
      indexDir = null;
    }
  }
  return indexDir;
}

/**
 * The EPSG index entry of `code` (name and proj4 definition), or null when the code is not in the index
 * or has no proj4 form (vertical, compound, engineering systems).
 */
export function lookupEpsg(code: number): EpsgEntry | null {
  if (!Number.isInteger(code) || code <= 0 || code > 999_999) return null;
  const hit = cache.get(code);
  if (hit !== undefined) return hit;
  let entry: EpsgEntry | null = null;
  const dir = epsgIndexDir();
  if (dir !== null) {
    try {
      const raw = JSON.parse(readFileSync(join(dir, `${code}.json`), "utf8")) as {
        name?: unknown;
        proj4?: unknown;
      };
      if (typeof raw.proj4 === "string" && raw.proj4.trim() !== "")
        entry = { code, name: typeof raw.name === "string" ? raw.name : `EPSG:${code}`, proj4: raw.proj4 };
    } catch {
      // Not in the index: the caller decides whether a CRS without a proj4 definition is usable.
      entry = null;
    }
  }
  cache.set(code, entry);
  return entry;
}
