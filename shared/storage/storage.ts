/**
 * Storage every machine of a deployment reaches, behind two interfaces the lanes, serving and infra
 * program against (issue 14): the master archive (tile objects + catalogue + bad-tile records) and
 * the published batch views with their CURRENT pointer. Model artefacts have their own interface,
 * `ModelRegistry` (shared/models). Backends, chosen by `config.storage.backend` in the composition
 * roots (infra/platform), never by a lane:
 *
 *   files  the data directory (shared/adapters/archive): one machine, or a shared file system;
 *   nats   JetStream object stores + KV buckets (shared/adapters/nats), replicated with the stream
 *          (`config.storage.replicas`, R3 on a 3-node cluster): every machine that reaches NATS.
 *
 * Both keep the same guarantees: objects are content-addressed and immutable, a catalogue entry is
 * first-write-wins, a published version is complete before any reader can name it, and CURRENT
 * moves by compare-and-set on its revision, so two coordinators can never both publish over the
 * same pointer unseen.
 */
import { LanemapError, TileInvalidError } from "../errors.js";
import {
  catalogueEntrySchema,
  type BadTileRecord,
  type BatchManifest,
  type CatalogueEntry,
  type Removal,
} from "../view/types.js";

/**
 * The entry as every archive backend stores it: validated by `catalogueEntrySchema` (and stripped
 * of unknown members). An entry that fails is a property of the tile (its metadata), not of the
 * moment, so it is a permanent TILE_INVALID, not a storage failure.
 * @throws TileInvalidError naming every failing member.
 */
export function validCatalogueEntry(entry: CatalogueEntry): CatalogueEntry {
  const parsed = catalogueEntrySchema.safeParse(entry);
  if (!parsed.success)
    throw new TileInvalidError(
      `catalogue entry ${entry.tileId}: ` +
        parsed.error.issues.map((i) => `${i.path.join(".") || "entry"} ${i.message}`).join("; "),
      { cause: parsed.error },
    );
  return parsed.data;
}

/** The master archive: raw tiles by content hash, one catalogue entry per tile id, bad-tile records. */
export interface TileArchive {
  /** Which backend this is (for logs, `lanemap status` and tests). */
  readonly backend: "files" | "nats";
  /**
   * Stores raw tile bytes under their sha256 (hex); a no-op when already stored.
   * @throws the backend's I/O errors (LanemapError STORAGE).
   */
  putObject(bytes: Uint8Array): Promise<{ readonly contentHash: string; readonly created: boolean }>;
  /**
   * The bytes stored under `contentHash`.
   * @throws LanemapError OBJECT_MISSING when no such object is stored.
   */
  readObject(contentHash: string): Promise<Uint8Array>;
  /**
   * Adds a catalogue entry, first write wins: the same id again returns the stored entry
   * (`created: false`) when the content hash is the same.
   * @throws TileInvalidError when the entry fails its schema; TileConflictError (TILE_CONFLICT) when
   *   the id is registered with other content.
   */
  register(entry: CatalogueEntry): Promise<{ readonly entry: CatalogueEntry; readonly created: boolean }>;
  /** The catalogue entry of a tile, or undefined. */
  get(tileId: string): Promise<CatalogueEntry | undefined>;
  /** Every catalogue entry, one at a time (no order promised; callers sort). */
  entries(): AsyncIterable<CatalogueEntry>;
  /** Records a tile that could not be registered or processed (replacing an older record of its key). */
  recordBad(record: BadTileRecord): Promise<void>;
  /** Every bad-tile record. */
  badTiles(): AsyncIterable<BadTileRecord>;
  /**
   * Removes the bad-tile record of `key` (a tile id, or the file name of a bulk load); true when
   * there was one. The speed lane clears a tile's record once a retried delivery classifies it.
   * @throws the backend's I/O errors (LanemapError STORAGE).
   */
  clearBad(key: string): Promise<boolean>;
  /**
   * Takes a tile out of the catalogue (`lanemap archive remove`): its entry, and its object unless
   * another entry names the same content hash (objects are shared by content). The id may then be
   * registered again, with any content. Returns the removed entry, or undefined when the id has none.
   * A bulk load registering the same bytes under another id at the same moment can lose its object
   * (its run then reports OBJECT_MISSING for it): an operator command, not a lane's.
   * The nats backend removes no object here (`objectRemoved` is false): the object stays, garbage,
   * until `lanemap archive compact` drops it with its generation (nothing is purged in place).
   * @throws the backend's I/O errors (LanemapError STORAGE).
   */
  remove(
    tileId: string,
  ): Promise<{ readonly entry: CatalogueEntry; readonly objectRemoved: boolean } | undefined>;
  /**
   * Records a removed tile's tombstone (replacing an older one of the id: the latest removal
   * counts). `lanemap archive remove` records it before it removes the entry, so a crash between
   * the two leaves a tombstone of a tile still catalogued (removing it again mends that), never an
   * entry gone without its tombstone.
   * @throws the backend's I/O errors (LanemapError STORAGE).
   */
  recordRemoval(removal: Removal): Promise<void>;
  /** Every tombstone (no order promised). @throws the backend's I/O errors (LanemapError STORAGE). */
  removals(): AsyncIterable<Removal>;
  /** The tombstone of `tileId`, if any. @throws the backend's I/O errors (LanemapError STORAGE). */
  removal(tileId: string): Promise<Removal | undefined>;
  /**
   * Drops the tombstone of `tileId` (once no replay can meet a message it covers, `removalDroppable`);
   * true when there was one.
   * @throws the backend's I/O errors (LanemapError STORAGE).
   */
  dropRemoval(tileId: string): Promise<boolean>;
}

/**
 * Whether the tombstone `removal` covers an ingest message of its tile: the message was stored
 * before the removal, by the ingest stream's sequence when the removal recorded it (`seq` is the
 * message's original sequence: for an `ops replay` copy, the message it copies), else by the time
 * the stream stored it. A message stored after the removal (the tile ingested again) is not covered.
 * @param message.seq ingest stream sequence (≥ 1); message.storedAt when the stream stored it.
 */
export function removedBy(removal: Removal, message: { seq: number; storedAt: Date }): boolean {
  if (removal.ingestSeq !== null) return message.seq <= removal.ingestSeq;
  return message.storedAt.getTime() <= Date.parse(removal.removedAt);
}

/**
 * Whether a tombstone can be dropped: the ingest stream no longer holds any message it covers (its
 * limits, LANEMAP_STREAM_MAX_AGE_S / LANEMAP_STREAM_MAX_BYTES, discarded them), so no replay can
 * meet one. `stream` is LANEMAP_TILES' stored range (null: the stream does not exist; a caller
 * that cannot reach NATS does not ask); `firstStoredAt` when its
 * first stored message was stored (undefined when empty). A copy `ops replay` made of a covered
 * message before the removal is stored before the removal too, so it went first.
 */
export function removalDroppable(
  removal: Removal,
  stream: { readonly firstSeq: number; readonly messages: number; readonly firstStoredAt?: Date } | null,
): boolean {
  // Nothing stored: whatever is stored from now on is stored after the removal.
  if (stream === null || stream.messages === 0) return true;
  if (removal.ingestSeq !== null) return stream.firstSeq > removal.ingestSeq;
  return stream.firstStoredAt !== undefined && stream.firstStoredAt.getTime() > Date.parse(removal.removedAt);
}

/** Where CURRENT points: a version name ("v000042") and the pointer's revision (opaque, grows on every move). */
export interface ViewPointer {
  readonly name: string;
  readonly revision: number;
}

/** A complete published version as the store lists it (no local folder implied). */
export interface PublishedVersion {
  readonly name: string;
  readonly version: number;
  readonly manifest: BatchManifest;
}

/**
 * CURRENT moved since the revision the caller read: another coordinator published or rolled back.
 * `detail`, when given, follows the message (what happened to the caller's work).
 */
export class ViewPointerConflictError extends LanemapError {
  constructor(name: string, expected: number | null, actual: ViewPointer | null, detail?: string) {
    super(
      "VIEW_POINTER_CONFLICT",
      `CURRENT was not moved to ${name}: expected revision ${expected ?? "none"}, found ${
        actual ? `${actual.name} at revision ${actual.revision}` : "no pointer"
      }${detail ? `; ${detail}` : ""}`,
    );
  }
}

/** Who holds a version number (PublishedViews.reserve): free text, e.g. "run <id> (pid 12 on host-a)". */
export interface VersionReservation {
  readonly name: string;
  readonly holder: string;
  /** When it was made, by the store's clock (the nats backend: the KV entry's time), when known. */
  readonly reservedAt?: string;
}

/** Published batch views and their CURRENT pointer. */
export interface PublishedViews {
  readonly backend: "files" | "nats";
  /** Every complete version, oldest first. */
  list(): Promise<PublishedVersion[]>;
  /** The pointer, or null when nothing was published yet. */
  current(): Promise<ViewPointer | null>;
  /**
   * Makes a complete version readable on this machine and returns its local folder: the files
   * backend's own folder; the nats backend downloads it once into its cache folder (every file
   * checked against the manifest's digests) and returns that copy.
   * @throws LanemapError VIEW_NOT_FOUND when the version does not exist or is incomplete.
   */
  materialize(name: string): Promise<string>;
  /**
   * Makes the complete local version folder `localDir` (manifest.json present) available to every
   * reader as `name`, manifest last; idempotent. The files backend's versions are written in place
   * by the publisher, so there it only checks the folder is its own.
   */
  publish(localDir: string, name: string): Promise<void>;
  /**
   * Points CURRENT at a complete version (publish or rollback) if the pointer's revision is still
   * `expectedRevision` (null: no pointer yet; undefined: do not check).
   * @throws LanemapError VIEW_NOT_FOUND for a missing or incomplete version; ViewPointerConflictError
   *   when the pointer moved.
   */
  setCurrent(name: string, expectedRevision?: number | null): Promise<ViewPointer>;
  /**
   * Reserves version number `name` for one publisher before anything is written under it (issue 14:
   * two coordinators computed the same next number and uploaded into one bucket). Returns null
   * when reserved, else the reservation that holds it (the caller takes the next number). The nats
   * backend creates a KV key, which the server refuses when it exists; a reservation expires by
   * itself after a while (a coordinator that died holding one) and is released by `release`. The
   * files backend reserves nothing: its publishers are serialised already (FilePublishedViews).
   * @throws the backend's I/O errors (LanemapError STORAGE).
   */
  reserve(name: string, holder: string): Promise<VersionReservation | null>;
  /** Drops the reservation of `name` (published, or given up); a no-op when there is none. */
  release(name: string): Promise<void>;
  /** Every reservation held, sorted by name (retention). */
  reservations(): Promise<VersionReservation[]>;
  /**
   * Versions whose writing started in the store and never completed (the nats backend: a bucket
   * without its manifest); retention removes those no reservation holds. Absent on a backend whose
   * incomplete versions are local folders (files).
   */
  incomplete?(): Promise<string[]>;
  /** Removes a version that CURRENT does not name (retention). @throws LanemapError VIEW_IN_USE for the current one. */
  remove(name: string): Promise<void>;
  /**
   * Calls `onChange` with the pointer after every move (and once at start with the pointer then);
   * the files backend watches the folder and polls, the nats backend watches the KV key.
   */
  watch(onChange: (pointer: ViewPointer | null) => void): { stop(): Promise<void> };
  /**
   * Removes this machine's local copies of versions (made by `materialize`) except those named in
   * `keep`; returns the names removed. Absent on a backend that makes no copies (files). The caller
   * keeps every version a reader still has open; a copy another process sharing the cache used
   * after this one, minutes ago at most, stays too (it may be opening it), and so does a download
   * under way in any process.
   */
  evictLocal?(keep: readonly string[]): Promise<string[]>;
}
