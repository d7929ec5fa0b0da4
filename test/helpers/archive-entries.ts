/** Valid catalogue entries and bad-tile records for archive tests (any content hash), and an archive to subclass. */
import type { ArchiveStore } from "../../shared/adapters/archive/index.js";
import type { TileArchive } from "../../shared/index.js";
import type { BadTileRecord, CatalogueEntry } from "../../shared/view/types.js";

/** A valid catalogue entry of a 64² × 6 uint16 UTM tile: `tileId` with `contentHash`. */
export function entryOf(tileId: string, contentHash: string): CatalogueEntry {
  return {
    tileId,
    cell: "c3_4",
    acquired: "2024-06-01T10:40:00Z",
    ingestSeq: 0,
    contentHash,
    bytes: 1234,
    width: 64,
    height: 64,
    bandCount: 6,
    dtype: "uint16",
    epsg: 32615,
    proj4: null,
    geoTransform: [500000, 30, 0, 1800000, 0, -30],
    bounds: { minX: 500000, minY: 1798080, maxX: 501920, maxY: 1800000 },
    boundsWgs84: null,
    hilbert: 42,
    acquiredFrom: "header",
    source: "bulk",
    registeredAt: "2024-06-01T10:41:00Z",
  };
}

/** A TILE_DECODE bad-tile record of `key`. */
export function badOf(key: string, reason: string): BadTileRecord {
  return { key, source: "bulk", code: "TILE_DECODE", reason, at: "2024-06-01T10:41:00Z" };
}

/**
 * A files archive that passes every call through to `store`: tests subclass it and override the one
 * call they make fail, hang or count (`readObject` for a flaky or a hung tile read).
 */
export class DelegatingArchive implements TileArchive {
  readonly backend = "files" as const;
  constructor(protected readonly store: ArchiveStore) {}
  putObject(bytes: Uint8Array) {
    return this.store.putObject(bytes);
  }
  readObject(hash: string): Promise<Uint8Array> {
    return this.store.readObject(hash);
  }
  register(...a: Parameters<ArchiveStore["register"]>) {
    return this.store.register(...a);
  }
  get(tileId: string) {
    return this.store.get(tileId);
  }
  entries() {
    return this.store.entries();
  }
  recordBad(...a: Parameters<ArchiveStore["recordBad"]>) {
    return this.store.recordBad(...a);
  }
  badTiles() {
    return this.store.badTiles();
  }
  remove(...a: Parameters<ArchiveStore["remove"]>) {
    return this.store.remove(...a);
  }
  clearBad(key: string) {
    return this.store.clearBad(key);
  }
  recordRemoval(...a: Parameters<ArchiveStore["recordRemoval"]>) {
    return this.store.recordRemoval(...a);
  }
  removals() {
    return this.store.removals();
  }
  removal(tileId: string) {
    return this.store.removal(tileId);
  }
  dropRemoval(tileId: string) {
    return this.store.dropRemoval(tileId);
  }
}
