/**
 * The master archive on the file system: raw tiles stored content-addressed and immutable, and a
 * catalogue with one JSON file per tile. Every write is durable (fsync + rename/link), so several
 * processes (a bulk load and any number of speed workers) can write at once: the same tile id
 * registered twice keeps the first entry, and readers never see a half-written file.
 */
import { createHash } from "node:crypto";
import { opendir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { LanemapError } from "../../errors.js";
import { dataPaths, type DataPaths } from "../../view/paths.js";
import {
  badTileSchema,
  catalogueEntrySchema,
  removalSchema,
  type BadTileRecord,
  type CatalogueEntry,
  type Removal,
} from "../../view/types.js";
import { validCatalogueEntry, type TileArchive } from "../../storage/index.js";
import { createFileDurable, writeFileDurable } from "./durable.js";

/** The same tile id was registered before with different content. */
export class TileConflictError extends LanemapError {
  constructor(tileId: string, existingHash: string, newHash: string) {
    super(
      "TILE_CONFLICT",
      `tile ${tileId} is already in the archive with different content (${existingHash.slice(0, 12)} != ${newHash.slice(0, 12)}); the archive is append-only, use a new tile id`,
    );
  }
}

/** sha256 of bytes, hex. */
export function contentHash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function safeFileKey(key: string): string {
  return key.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 200) || "_";
}

/** The master archive in a data directory (the files backend of `TileArchive`). */
export class ArchiveStore implements TileArchive {
  readonly backend = "files" as const;
  readonly paths: DataPaths;

  constructor(dataDir: string) {
    this.paths = dataPaths(dataDir);
  }

  /** Where the object with this hash lives. */
  objectPath(hash: string): string {
    return join(this.paths.objects, hash.slice(0, 2), `${hash}.tif`);
  }

  /** Stores raw tile bytes under their content hash (a no-op when already stored). */
  async putObject(bytes: Uint8Array): Promise<{ contentHash: string; path: string; created: boolean }> {
    const hash = contentHash(bytes);
    const path = this.objectPath(hash);
    const created = await createFileDurable(path, bytes);
    return { contentHash: hash, path, created };
  }

  /**
   * Reads a stored object back.
   * @throws LanemapError OBJECT_MISSING when no object has this hash.
   */
  async readObject(hash: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(this.objectPath(hash)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        throw new LanemapError("OBJECT_MISSING", `no archived object ${hash}`, { cause: err });
      throw err;
    }
  }

  /**
   * Adds a catalogue entry. First write wins: registering an id again returns the existing entry
   * (`created: false`) when the content is the same, and throws TileConflictError when it differs.
   * @throws TileInvalidError when the entry fails its schema.
   * @throws TileConflictError when the id is registered with other content.
   */
  async register(entry: CatalogueEntry): Promise<{ entry: CatalogueEntry; created: boolean }> {
    const valid = validCatalogueEntry(entry);
    const path = join(this.paths.catalogue, `${valid.tileId}.json`);
    if (await createFileDurable(path, JSON.stringify(valid) + "\n")) return { entry: valid, created: true };
    const existing = await this.get(valid.tileId);
    if (!existing) throw new LanemapError("CATALOGUE", `catalogue entry ${valid.tileId} is unreadable`);
    if (existing.contentHash !== valid.contentHash)
      throw new TileConflictError(valid.tileId, existing.contentHash, valid.contentHash);
    return { entry: existing, created: false };
  }

  /** The catalogue entry of a tile, or undefined. */
  async get(tileId: string): Promise<CatalogueEntry | undefined> {
    const text = await this.readJsonFile(this.paths.catalogue, tileId);
    return text === undefined ? undefined : catalogueEntrySchema.parse(JSON.parse(text));
  }

  /** The text of `<dir>/<key>.json`, or undefined when there is none. */
  private async readJsonFile(dir: string, key: string): Promise<string | undefined> {
    try {
      return await readFile(join(dir, `${safeFileKey(key)}.json`), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Streams every catalogue entry (directory order), holding one at a time. */
  async *entries(): AsyncGenerator<CatalogueEntry> {
    for await (const text of this.readJsonFiles(this.paths.catalogue))
      yield catalogueEntrySchema.parse(JSON.parse(text));
  }

  /** Records a tile that could not be registered or processed (replacing an older record of it). */
  async recordBad(record: BadTileRecord): Promise<void> {
    const valid = badTileSchema.parse(record);
    await writeFileDurable(
      join(this.paths.bad, `${safeFileKey(valid.key)}.json`),
      JSON.stringify(valid) + "\n",
    );
  }

  /** Streams the bad-tile records. */
  async *badTiles(): AsyncGenerator<BadTileRecord> {
    for await (const text of this.readJsonFiles(this.paths.bad)) yield badTileSchema.parse(JSON.parse(text));
  }

  /** Removes the bad-tile record of `key`; true when there was one. */
  async clearBad(key: string): Promise<boolean> {
    return unlinkIfPresent(join(this.paths.bad, `${safeFileKey(key)}.json`));
  }

  /**
   * Takes a tile out of the catalogue, and its object unless another entry has the same content
   * hash (see TileArchive.remove). The entry goes first, so a crash in between leaves at worst an
   * unreferenced object, never an entry without its object.
   */
  async remove(tileId: string): Promise<{ entry: CatalogueEntry; objectRemoved: boolean } | undefined> {
    const entry = await this.get(tileId);
    if (!entry) return undefined;
    if (!(await unlinkIfPresent(join(this.paths.catalogue, `${safeFileKey(tileId)}.json`)))) return undefined;
    for await (const other of this.entries())
      if (other.contentHash === entry.contentHash) return { entry, objectRemoved: false };
    return { entry, objectRemoved: await unlinkIfPresent(this.objectPath(entry.contentHash)) };
  }

  /** Records a removed tile's tombstone, `archive/removed/<tileId>.json` (replacing an older one). */
  async recordRemoval(removal: Removal): Promise<void> {
    const valid = removalSchema.parse(removal);
    await writeFileDurable(
      join(this.paths.removed, `${safeFileKey(valid.tileId)}.json`),
      JSON.stringify(valid) + "\n",
    );
  }

  /** Streams the tombstones. */
  async *removals(): AsyncGenerator<Removal> {
    for await (const text of this.readJsonFiles(this.paths.removed))
      yield removalSchema.parse(JSON.parse(text));
  }

  /** The tombstone of `tileId`, if any. */
  async removal(tileId: string): Promise<Removal | undefined> {
    const text = await this.readJsonFile(this.paths.removed, tileId);
    return text === undefined ? undefined : removalSchema.parse(JSON.parse(text));
  }

  /** Drops the tombstone of `tileId`; true when there was one. */
  async dropRemoval(tileId: string): Promise<boolean> {
    return unlinkIfPresent(join(this.paths.removed, `${safeFileKey(tileId)}.json`));
  }

  private async *readJsonFiles(dir: string): AsyncGenerator<string> {
    let handle;
    try {
      handle = await opendir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for await (const d of handle) {
      if (!d.isFile() || !d.name.endsWith(".json") || d.name.startsWith(".")) continue;
      yield await readFile(join(dir, d.name), "utf8");
    }
  }
}

/** Unlinks a file; false when it was not there. */
async function unlinkIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
