/**
 * Registering a tile in the master archive: describe it, store the bytes content-addressed, then
 * add the catalogue entry (first write wins). The object is stored before the entry, so an entry
 * never names bytes that are not there; a crash between the two leaves an unreferenced object that
 * the next registration of the same bytes reuses.
 */
import { readFile, stat } from "node:fs/promises";
import { TileInvalidError } from "../errors.js";
import { MAX_PAM_BYTES, type Pam, parsePam } from "../geotiff/index.js";
import type { TileArchive } from "../storage/index.js";
import type { CatalogueEntry } from "../view/types.js";
import { describeTile, type DescribeOptions, type TileMeta } from "./describe.js";

/**
 * Describes, stores and catalogues one tile.
 * @throws TileDecodeError, PixelBudgetError or TileInvalidError from describeTile.
 * @throws TileConflictError when the tile id is archived with other content.
 */
export async function registerTile(
  store: TileArchive,
  bytes: Uint8Array,
  meta: TileMeta,
  options: DescribeOptions = {},
): Promise<{ entry: CatalogueEntry; created: boolean }> {
  const entry = await describeTile(bytes, meta, options);
  await store.putObject(bytes);
  return store.register(entry);
}

/**
 * Reads and parses a tile file's GDAL PAM sidecar (`<file>.aux.xml`), or undefined when there is none.
 * @throws TileInvalidError when it is larger than MAX_PAM_BYTES or malformed.
 */
export async function readPamSidecar(path: string): Promise<Pam | undefined> {
  const file = `${path}.aux.xml`;
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return undefined;
  }
  if (size > MAX_PAM_BYTES)
    throw new TileInvalidError(`${file} is ${size} bytes, over the ${MAX_PAM_BYTES} a PAM sidecar may have`);
  return parsePam(await readFile(file, "utf8"));
}

/** Reads the sidecar JSON of a tile file (`<file>.json` or `<stem>.json`), or undefined. */
export async function readSidecar(path: string): Promise<TileMeta["sidecar"]> {
  for (const candidate of [`${path}.json`, path.replace(/\.(tiff?|gtiff?)$/i, ".json")]) {
    if (candidate === path) continue;
    let text: string;
    try {
      text = await readFile(candidate, "utf8");
    } catch {
      continue;
    }
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object") return parsed as TileMeta["sidecar"];
  }
  return undefined;
}
