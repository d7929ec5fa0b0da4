/**
 * Registering a tile in the master archive: describe it, store the bytes content-addressed, then
 * add the catalogue entry (first write wins). The object is stored before the entry, so an entry
 * never names bytes that are not there; a crash between the two leaves an unreferenced object that
 * the next registration of the same bytes reuses.
 */
import { readFile } from "node:fs/promises";
import type { ArchiveStore } from "../adapters/archive/index.js";
import type { CatalogueEntry } from "../view/types.js";
import { describeTile, type DescribeOptions, type TileMeta } from "./describe.js";

/**
 * Describes, stores and catalogues one tile.
 * @throws TileDecodeError, PixelBudgetError or TileInvalidError from describeTile.
 * @throws TileConflictError when the tile id is archived with other content.
 */
export async function registerTile(
  store: ArchiveStore,
  bytes: Uint8Array,
  meta: TileMeta,
  options: DescribeOptions = {},
): Promise<{ entry: CatalogueEntry; created: boolean }> {
  const entry = await describeTile(bytes, meta, options);
  await store.putObject(bytes);
  return store.register(entry);
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
