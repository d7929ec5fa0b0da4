/**
 * The master archive on JetStream (issue 14): the `TileArchive` every machine reaches through NATS
 * alone, so a second machine needs no shared file system.
 *
 * Buckets, each created on open with `replicas` replicas and file storage:
 * - tile objects in *generations*, object stores `archiveGenerationBucket(g)`
 *   (`lanemap-archive-g000001`): one object per tile, named by its sha256 (hex). The store chunks
 *   any size (tiles are larger than max_payload) and records its own SHA-256 digest, which
 *   `putObject` compares before writing, so storing the same bytes twice is a no-op. New objects go
 *   to the current generation, which the pointer (ARCHIVE_POINTER_BUCKET, key `current`, value
 *   `{"generation":g}`) names and `putObject` reads before each put; `readObject` probes the
 *   generations newest first. The legacy bucket ARCHIVE_OBJECT_BUCKET (generation 0) is read, never
 *   written;
 * - CATALOGUE_BUCKET, a KV bucket: one entry per tile id (the entry JSON). KV `create()` succeeds
 *   only when the key has no value, which is exactly first-write-wins across machines;
 * - BAD_TILE_BUCKET, a KV bucket: one bad-tile record per record key (last write wins, as files);
 * - REMOVAL_BUCKET, a KV bucket: one removed tile's tombstone per tile id (last write wins), what
 *   the replays of the ingest stream leave out; dropped by a KV delete (a marker), never a purge.
 *
 * Why generations: removals never purge in place. `remove` deletes the catalogue entry only; the
 * object stays, garbage, until `compact` copies every object the catalogue still names into a new
 * generation and deletes the old generations' streams whole (`$JS.API.STREAM.DELETE`, a meta-layer
 * operation), as retention drops a published view's bucket (nats-views.ts). An `ObjectStore.delete`
 * in the one long-lived `OBJ_lanemap-archive` (a filtered purge of the tile's chunk subject, a
 * rollup of its meta subject) is what nats-server 2.9.10 (Debian's; upstream mended restart desyncs
 * in 2.9.15+) mishandles on an abrupt restart: a node SIGKILLed seconds after `lanemap archive
 * remove` came back holding 1 message where its peers held 647 (test/integration/archive-node-kill.test.ts).
 *
 * Keys: KV keys allow `[-/_=.A-Za-z0-9]` with no empty dot-separated token, so `kvKey` escapes every
 * other byte and every "." and "=" as `=XX` (hex of the UTF-8 byte): injective, and a tile id made of
 * letters and digits stays readable in `nats kv ls`.
 */
import { createHash } from "node:crypto";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  DiscardPolicy,
  StorageType,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { nuid, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { LanemapError } from "../../errors.js";
import { validCatalogueEntry, type TileArchive } from "../../storage/index.js";
import {
  badTileSchema,
  catalogueEntrySchema,
  removalSchema,
  type BadTileRecord,
  type CatalogueEntry,
  type Removal,
} from "../../view/types.js";
import { TileConflictError } from "../archive/index.js";
import { isStreamNotFound } from "./jetstream-errors.js";
import { kvValues, listObjectInfos, putObjectOnce, readObjectBytes } from "./object-reads.js";
import { READ_RETRIES, WRITE_RETRIES, guarded, storageError } from "./guarded.js";
import { atReplicas, ensureReplicas, kvStreamName, objectStoreStreamName } from "./replicas.js";
import { LEADER_READS } from "./leader-reads.js";
import {
  ARCHIVE_POINTER_BUCKET,
  ARCHIVE_POINTER_KEY,
  BAD_TILE_BUCKET,
  CATALOGUE_BUCKET,
  REMOVAL_BUCKET,
  archiveGenerationBucket,
  parseArchiveGeneration,
} from "./names.js";

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Last-value gets of a bucket listing (entries(), badTiles()) in flight: overlaps round trips, bounds what is held. */
const LAST_VALUE_GETS = 32;
/** Request timeout of a bucket listing's requests (its STREAM.INFO pages subjects; retried). */
const LISTING_TIMEOUT_MS = 5_000;
/** Request timeout of a tile object's reads (they take milliseconds when answered; retried). */
const ARCHIVE_READ_TIMEOUT_MS = 2_000;

/**
 * A KV-safe, injective form of any string: `[A-Za-z0-9_-]` kept, every other UTF-8 byte (including
 * "." and "=") written `=XX`. "tile.2024" -> "tile=2E2024".
 */
export function kvKey(s: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out || "=";
}

/** Default wait of a compaction between moving the pointer and reading the catalogue (see compact). */
export const COMPACT_GRACE_MS = 30_000;

/** One generation's object store as a listing found it. */
export interface ArchiveGenerationUsage {
  /** 0 for the legacy bucket ARCHIVE_OBJECT_BUCKET. */
  readonly generation: number;
  readonly bucket: string;
  /** Objects stored (deleted ones of the legacy bucket left out) and their bytes. */
  readonly objects: number;
  readonly bytes: number;
}

/** What the archive's object stores hold against what its catalogue names (`archiveUsage`). */
export interface ArchiveUsage {
  /** The generation new objects go to (the pointer), or null when there is no pointer yet. */
  readonly current: number | null;
  /**
   * Every generation on the server up to the pointer's, oldest first: what holds the archive's
   * objects (all of them when there is no pointer).
   */
  readonly generations: readonly ArchiveGenerationUsage[];
  /**
   * Generations newer than the pointer's: made by a compaction that has not moved the pointer yet
   * (under way, or stopped before its move). No put writes to one before the pointer names it, so
   * they hold no data: not counted in `named` or `garbage`; the next compaction drops them.
   */
  readonly pending: readonly ArchiveGenerationUsage[];
  /** Catalogue entries, and the distinct objects they name that are stored (one copy counted) with their bytes. */
  readonly entries: number;
  readonly named: { readonly objects: number; readonly bytes: number };
  /**
   * Stored copies a compaction drops: objects no catalogue entry names (removed tiles), and the
   * older copies of an object stored in two generations.
   */
  readonly garbage: { readonly objects: number; readonly bytes: number };
  /** Content hashes the catalogue names that no generation holds (sorted). */
  readonly missing: readonly string[];
}

/** What `compact` did (or, dry, would do). */
export interface CompactionReport {
  readonly dryRun: boolean;
  /** The usage read before anything was done. */
  readonly before: ArchiveUsage;
  /** Nothing to do: one generation and no garbage. */
  readonly nothingToDo: boolean;
  /** The generation created (dry: that would be), or null when nothing to do. */
  readonly generation: number | null;
  /** Objects copied into it out of older generations, with their bytes (dry: those that would be). */
  readonly copied: { readonly objects: number; readonly bytes: number };
  /** Object stores deleted whole (dry: that would be). */
  readonly deleted: readonly string[];
  /** Content hashes the catalogue names that no generation held (those tiles read as OBJECT_MISSING). */
  readonly missing: readonly string[];
}

/** The step after which `compact({ stopAfter })` returns: a crash there, for tests of recovery. */
export type CompactionStep = "generation" | "pointer" | "copy";

/** JSStreamNameExistErr: "stream name already in use with a different configuration" (not in nats.js's table). */
const STREAM_NAME_IN_USE = 10058;

/** The archive's generations on the server (STREAM.NAMES), oldest first; the legacy bucket is 0. */
async function listGenerations(jsm: JetStreamManager): Promise<number[]> {
  const out: number[] = [];
  for await (const stream of jsm.streams.names()) {
    if (!stream.startsWith("OBJ_")) continue;
    const g = parseArchiveGeneration(stream.slice("OBJ_".length));
    if (g !== null) out.push(g);
  }
  return out.sort((a, b) => a - b);
}

/** The generation a pointer value names, or null when it names none. */
function generationIn(value: Uint8Array): number | null {
  try {
    const g = (JSON.parse(new TextDecoder().decode(value)) as { generation?: unknown }).generation;
    return typeof g === "number" && Number.isInteger(g) && g > 0 ? g : null;
  } catch {
    return null;
  }
}

/** The generation a pointer entry names, or null (no pointer, deleted, or not one). */
function generationOf(e: KvEntry | null): number | null {
  return !e || e.operation !== "PUT" || e.length === 0 ? null : generationIn(e.value);
}

/**
 * What the archive's object stores hold against its catalogue, read without creating anything and
 * without a consumer (stream names, object listings by their meta subjects, the catalogue's last
 * values): `lanemap ops status` says when a compaction is due. One listing per generation.
 * @throws what the JetStream API throws (callers retry it, guarded.ts).
 */
export async function archiveUsage(nc: NatsConnection, logger?: Logger): Promise<ArchiveUsage> {
  const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: LISTING_TIMEOUT_MS });
  const generations = await listGenerations(jsm);
  let current: number | null = null;
  try {
    const m = await jsm.streams.getMessage(kvStreamName(ARCHIVE_POINTER_BUCKET), {
      last_by_subj: `$KV.${ARCHIVE_POINTER_BUCKET}.${ARCHIVE_POINTER_KEY}`,
    });
    // A delete or purge marker has no value: no generation.
    if (m) current = generationIn(m.data);
  } catch (err) {
    const noMessage = err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound;
    if (!isStreamNotFound(err) && !noMessage) throw err;
  }
  const hashes = new Set<string>();
  let entries = 0;
  try {
    for await (const m of kvValues(nc, CATALOGUE_BUCKET, {
      what: `cannot read bucket ${CATALOGUE_BUCKET}`,
      timeoutMs: LISTING_TIMEOUT_MS,
      inFlight: LAST_VALUE_GETS,
      ...(logger ? { logger } : {}),
    })) {
      entries++;
      hashes.add(catalogueEntrySchema.parse(m.json()).contentHash);
    }
  } catch (err) {
    if (!isStreamNotFound(err) && !isStreamNotFound((err as { cause?: unknown }).cause)) throw err;
  }
  const usage: ArchiveGenerationUsage[] = [];
  const pending: ArchiveGenerationUsage[] = [];
  const seen = new Set<string>();
  let [namedObjects, namedBytes, garbageObjects, garbageBytes] = [0, 0, 0, 0];
  // Newest first: the copy a compaction keeps is the newest; older copies of it are garbage.
  for (const g of [...generations].reverse()) {
    const bucket = archiveGenerationBucket(g);
    const infos = await listObjectInfos(jsm, bucket).catch((err: unknown) => {
      if (isStreamNotFound(err)) return []; // deleted between the names and this listing
      throw err;
    });
    let [objects, bytes] = [0, 0];
    if (current !== null && g > current) {
      for (const i of infos.filter((i) => !i.deleted)) [objects, bytes] = [objects + 1, bytes + i.size];
      pending.unshift({ generation: g, bucket, objects, bytes });
      continue;
    }
    for (const i of infos) {
      if (i.deleted) continue;
      objects++;
      bytes += i.size;
      if (hashes.has(i.name) && !seen.has(i.name)) {
        seen.add(i.name);
        namedObjects++;
        namedBytes += i.size;
      } else {
        garbageObjects++;
        garbageBytes += i.size;
      }
    }
    usage.unshift({ generation: g, bucket, objects, bytes });
  }
  return {
    current,
    generations: usage,
    pending,
    entries,
    named: { objects: namedObjects, bytes: namedBytes },
    garbage: { objects: garbageObjects, bytes: garbageBytes },
    missing: [...hashes].filter((h) => !seen.has(h)).sort(),
  };
}

/** The master archive in JetStream: `TileArchive` on generations of object stores and two KV buckets. */
export class NatsTileArchive implements TileArchive {
  readonly backend = "nats" as const;
  /** Object stores opened, by generation. */
  private readonly stores = new Map<number, ObjectStore>();
  /** The generations `readObject` probes, newest first; read again when an object is in none. */
  private known: number[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly catalogue: KV,
    private readonly bad: KV,
    private readonly removed: KV,
    private readonly pointer: KV,
    private readonly replicas: number,
    private readonly logger?: Logger,
  ) {}

  /**
   * Opens the archive, creating its buckets when absent (an existing bucket is used as it is): the
   * catalogue, the bad-tile records, the generation pointer and, when there is no pointer yet, the
   * first generation (the legacy bucket of an older deployment is kept and read, not created).
   * @param replicas stream replicas of every bucket (1 on a single server, 3 on a 3-node cluster).
   * @param logger hears (at warn) every retry of a tile object's read, named.
   * @throws LanemapError STORAGE when JetStream cannot be reached or a bucket cannot be created.
   */
  static async open(
    nc: NatsConnection,
    options: { replicas: number; logger?: Logger },
  ): Promise<NatsTileArchive> {
    const common = { replicas: options.replicas, storage: StorageType.File } as const;
    // Retried (every step is idempotent: create-if-absent, rescale-if-different): right after a node
    // dies its requests time out while the streams elect new leaders (issue 14, the operator's recheck:
    // a batch run failed at once on "cannot open the NATS tile archive: timeout").
    return guarded(
      "cannot open the NATS tile archive",
      async () => {
        const r = options.replicas;
        const kvm = new Kvm(nc);
        const catalogue = await atReplicas(kvStreamName(CATALOGUE_BUCKET), r, () =>
          kvm.create(CATALOGUE_BUCKET, { ...common, history: 1, ...LEADER_READS }),
        );
        const bad = await atReplicas(kvStreamName(BAD_TILE_BUCKET), r, () =>
          kvm.create(BAD_TILE_BUCKET, { ...common, history: 1, ...LEADER_READS }),
        );
        const removed = await atReplicas(kvStreamName(REMOVAL_BUCKET), r, () =>
          kvm.create(REMOVAL_BUCKET, { ...common, history: 1, ...LEADER_READS }),
        );
        // History keeps the last moves visible to operators (and a move never drops a value in place).
        const pointer = await atReplicas(kvStreamName(ARCHIVE_POINTER_BUCKET), r, () =>
          kvm.create(ARCHIVE_POINTER_BUCKET, { ...common, history: 16, ...LEADER_READS }),
        );
        const archive = new NatsTileArchive(nc, catalogue, bad, removed, pointer, r, options.logger);
        const jsm = await jetstreamManager(nc);
        const generations = await listGenerations(jsm);
        if (generationOf(await pointer.get(ARCHIVE_POINTER_KEY)) === null) {
          // First open (or of a legacy deployment): generation 1, or the newest one a crashed first open left.
          const first = Math.max(1, ...generations);
          await archive.createGeneration(first);
          try {
            await pointer.create(ARCHIVE_POINTER_KEY, JSON.stringify({ generation: first }));
          } catch (err) {
            // Another process set it first; anything else is a failure.
            if (generationOf(await pointer.get(ARCHIVE_POINTER_KEY)) === null) throw err;
          }
        }
        // create() leaves an existing bucket's replicas as they are: bring all to the deployment's.
        for (const bucket of [CATALOGUE_BUCKET, BAD_TILE_BUCKET, REMOVAL_BUCKET, ARCHIVE_POINTER_BUCKET])
          await ensureReplicas(jsm, kvStreamName(bucket), r, options.logger);
        const now = await listGenerations(jsm);
        for (const g of now)
          await ensureReplicas(jsm, objectStoreStreamName(archiveGenerationBucket(g)), r, options.logger);
        // Reads probe these without asking the meta leader (STREAM.NAMES) until one misses in all of
        // them: right after a node dies the meta group may still be electing, the streams not.
        archive.known = [...now].reverse();
        return archive;
      },
      WRITE_RETRIES,
      options.logger,
    );
  }

  /** Creates (if absent) the object store of generation `g`, with this archive's replicas. */
  private async createGeneration(g: number): Promise<ObjectStore> {
    const bucket = archiveGenerationBucket(g);
    const store = await atReplicas(objectStoreStreamName(bucket), this.replicas, () =>
      new Objm(this.nc).create(bucket, {
        description: `lanemap master archive, generation ${g}`,
        replicas: this.replicas,
        storage: StorageType.File,
      }),
    );
    this.stores.set(g, store);
    return store;
  }

  /**
   * Creates generation `g` for one compaction (`owner`, a nuid in the stream's description), failing
   * when a stream of that name exists with another description: the object store layout
   * `Objm.create` makes (ADR-20: chunk and meta subjects, rollups, direct gets, discard new), made
   * with STREAM.CREATE itself because `Objm.create` opens an existing stream as its own. A retry of
   * this create (its answer lost) is the same config, which the server answers as created.
   *
   * Why: so that a generation a compaction made is that compaction's alone. Only its maker moves
   * the pointer to it, so one that lost the pointer's compare-and-set is provably never named,
   * never written, and it drops it (compact); were creation shared, two compactions could pick the
   * same number and the loser would drop the winner's.
   * @throws LanemapError STORAGE when another compaction made generation `g`; what STREAM.CREATE throws.
   */
  private async createOwnGeneration(g: number, owner: string): Promise<ObjectStore> {
    const bucket = archiveGenerationBucket(g);
    const stream = objectStoreStreamName(bucket);
    const jsm = await jetstreamManager(this.nc, { checkAPI: false });
    try {
      await atReplicas(stream, this.replicas, () =>
        jsm.streams.add({
          name: stream,
          description: `lanemap master archive, generation ${g} (compaction ${owner})`,
          subjects: [`$O.${bucket}.C.>`, `$O.${bucket}.M.>`],
          storage: StorageType.File,
          num_replicas: this.replicas,
          discard: DiscardPolicy.New,
          allow_rollup_hdrs: true,
          allow_direct: true,
          max_age: 0,
        }),
      );
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === STREAM_NAME_IN_USE)
        throw new LanemapError(
          "STORAGE",
          `archive compaction: generation ${g} was made by another compaction meanwhile; nothing done`,
          { cause: err },
        );
      throw err;
    }
    return this.storeOf(g);
  }

  /** Deletes generation `g`'s stream whole (gone already: nothing to do). */
  private async dropGeneration(g: number): Promise<void> {
    const jsm = await jetstreamManager(this.nc, { checkAPI: false });
    try {
      await jsm.streams.delete(objectStoreStreamName(archiveGenerationBucket(g)));
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
    }
    this.stores.delete(g);
    this.known = this.known.filter((k) => k !== g);
  }

  /** The object store of generation `g` (opened once; it must exist). */
  private async storeOf(g: number): Promise<ObjectStore> {
    const known = this.stores.get(g);
    if (known) return known;
    const store = await new Objm(this.nc).open(archiveGenerationBucket(g));
    this.stores.set(g, store);
    return store;
  }

  /** The current generation and the pointer's revision (a read through the leader: never a write behind). */
  private async currentGeneration(): Promise<{ generation: number; revision: number }> {
    const e = await this.pointer.get(ARCHIVE_POINTER_KEY);
    const generation = generationOf(e);
    if (generation === null || !e)
      throw new LanemapError(
        "STORAGE",
        `the archive's generation pointer ${ARCHIVE_POINTER_BUCKET} is missing`,
      );
    return { generation, revision: e.revision };
  }

  /**
   * Stores raw tile bytes as the object named by their sha256 (hex) in the current generation (the
   * pointer, read before each put so that a compaction's move is seen at once); a no-op when that
   * generation holds an object of that name with that digest (the object store's own SHA-256).
   * @throws LanemapError STORAGE when the broker fails.
   */
  async putObject(bytes: Uint8Array): Promise<{ contentHash: string; created: boolean }> {
    const hash = createHash("sha256").update(bytes).digest("hex");
    return guarded(
      `cannot store object ${hash.slice(0, 12)}`,
      // Content-addressed: a retry after a put that was stored after all finds it by info().
      async () => {
        const { generation } = await this.currentGeneration();
        return { contentHash: hash, created: await this.putInto(generation, hash, bytes) };
      },
      WRITE_RETRIES,
    );
  }

  /**
   * Puts `bytes` as object `hash` of `objects` unless it holds it already; whether it was written.
   * Through putObjectOnce, not ObjectStore.putBlob: nats.js purges a failed put's chunks (a filtered
   * STREAM.PURGE, the removal that lost a node's copy on nats-server 2.9.10, issue 14).
   */
  private async putInto(generation: number, hash: string, bytes: Uint8Array): Promise<boolean> {
    await this.storeOf(generation); // it exists (opened once)
    return putObjectOnce(this.nc, archiveGenerationBucket(generation), hash, bytes);
  }

  /** The generations on the server, newest first (remembered for the next reads). */
  private async refreshGenerations(): Promise<number[]> {
    const jsm = await jetstreamManager(this.nc, { checkAPI: false, timeout: ARCHIVE_READ_TIMEOUT_MS });
    this.known = (await listGenerations(jsm)).reverse();
    return this.known;
  }

  /**
   * The bytes of object `hash` from the first of `generations` that holds it, or null. A generation
   * deleted meanwhile (a compaction) holds nothing.
   */
  private async probe(generations: readonly number[], hash: string): Promise<Uint8Array | null> {
    for (const g of generations) {
      const bytes = await readObjectBytes(this.nc, archiveGenerationBucket(g), hash, {
        idleMs: ARCHIVE_READ_TIMEOUT_MS,
      });
      if (bytes !== null) return bytes;
    }
    return null;
  }

  /**
   * The bytes of the object `contentHash`, read without a consumer (object-reads.ts: its chunks,
   * size and digest checked), from the newest generation that holds it; when none of the
   * generations known to this process does, the generations are listed again (a compaction may
   * have made a new one) and probed once more.
   * @throws LanemapError OBJECT_MISSING when no such object is stored; STORAGE when the broker fails.
   */
  async readObject(contentHash: string): Promise<Uint8Array> {
    if (!SHA256_HEX.test(contentHash))
      throw new LanemapError("OBJECT_MISSING", `no archived object ${contentHash} (not a sha256)`);
    // Chunk by chunk with the stream API (object-reads.ts), not ObjectStore.get: its ordered
    // consumer may be placed on a dead node, and a batch run then waited out the consumer's 5 s
    // creation on a tile, unlogged (issue 14, N3). Each request is bounded by a 2 s timeout.
    const bytes = await guarded(
      `cannot read object ${contentHash.slice(0, 12)}`,
      async () => {
        const first = this.known.length > 0 ? await this.probe(this.known, contentHash) : null;
        if (first !== null) return first;
        const before = this.known.join();
        const now = await this.refreshGenerations();
        return now.join() === before ? null : this.probe(now, contentHash);
      },
      READ_RETRIES,
      this.logger,
    );
    if (bytes === null) throw new LanemapError("OBJECT_MISSING", `no archived object ${contentHash}`);
    // A one-chunk object comes back as the message's Buffer: hand out a plain view, as the files backend does.
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /**
   * Adds a catalogue entry, first write wins (KV `create()`).
   * @throws TileInvalidError when the entry fails its schema; TileConflictError when the id is
   *   registered with other content; LanemapError STORAGE when the broker fails.
   */
  async register(entry: CatalogueEntry): Promise<{ entry: CatalogueEntry; created: boolean }> {
    const valid = validCatalogueEntry(entry);
    try {
      // First write wins: a retried create that was stored after all is refused as "key exists",
      // and then the winner read below is this very entry.
      await guarded(
        `cannot register tile ${valid.tileId}`,
        () => this.catalogue.create(kvKey(valid.tileId), JSON.stringify(valid)),
        WRITE_RETRIES,
      );
      return { entry: valid, created: true };
    } catch (err) {
      // create() refuses a key that has a value: read the winner. No value means the broker failed.
      const existing = await this.get(valid.tileId);
      if (!existing) throw storageError(`cannot register tile ${valid.tileId}`, err);
      if (existing.contentHash !== valid.contentHash)
        throw new TileConflictError(valid.tileId, existing.contentHash, valid.contentHash);
      return { entry: existing, created: false };
    }
  }

  /** The catalogue entry of a tile, or undefined. @throws LanemapError STORAGE when the broker fails. */
  async get(tileId: string): Promise<CatalogueEntry | undefined> {
    const e = await guarded(
      `cannot read catalogue entry ${tileId}`,
      () => this.catalogue.get(kvKey(tileId)),
      READ_RETRIES,
    );
    if (!e || e.operation !== "PUT" || e.value.length === 0) return undefined;
    return catalogueEntrySchema.parse(e.json());
  }

  /**
   * Streams every catalogue entry (no order) without holding the catalogue's values: the bucket's
   * keys, then each key's last value, read without a consumer (see lastValues).
   * @throws LanemapError STORAGE when the broker fails.
   */
  async *entries(): AsyncGenerator<CatalogueEntry> {
    for await (const json of this.lastValues(CATALOGUE_BUCKET)) yield catalogueEntrySchema.parse(json);
  }

  /** Records a bad tile (replacing an older record of its key). @throws LanemapError STORAGE. */
  async recordBad(record: BadTileRecord): Promise<void> {
    const valid = badTileSchema.parse(record);
    await guarded(
      `cannot record bad tile ${valid.key}`,
      () => this.bad.put(kvKey(valid.key), JSON.stringify(valid)),
      WRITE_RETRIES,
    );
  }

  /** Streams the bad-tile records. @throws LanemapError STORAGE when the broker fails. */
  async *badTiles(): AsyncGenerator<BadTileRecord> {
    for await (const json of this.lastValues(BAD_TILE_BUCKET)) yield badTileSchema.parse(json);
  }

  /** Removes the bad-tile record of `key`; true when there was one. @throws LanemapError STORAGE. */
  async clearBad(key: string): Promise<boolean> {
    const k = kvKey(key);
    return guarded(
      `cannot clear bad tile ${key}`,
      async () => {
        const e = await this.bad.get(k);
        if (!e || e.operation !== "PUT") return false;
        await this.bad.delete(k);
        return true;
      },
      WRITE_RETRIES,
    );
  }

  /**
   * Takes a tile out of the catalogue (a KV delete: a later `create()` of the id succeeds). Its
   * object is left where it is, garbage once no entry names it, until `compact` (`lanemap archive
   * compact`): nothing is ever purged inside a living stream (see the module), so `objectRemoved`
   * is always false here.
   * @throws LanemapError STORAGE when the broker fails.
   */
  async remove(tileId: string): Promise<{ entry: CatalogueEntry; objectRemoved: boolean } | undefined> {
    const entry = await this.get(tileId);
    if (!entry) return undefined;
    await guarded(
      `cannot remove catalogue entry ${tileId}`,
      () => this.catalogue.delete(kvKey(tileId)),
      WRITE_RETRIES,
    );
    return { entry, objectRemoved: false };
  }

  /** Records a removed tile's tombstone (replacing an older one of the id). @throws LanemapError STORAGE. */
  async recordRemoval(removal: Removal): Promise<void> {
    const valid = removalSchema.parse(removal);
    await guarded(
      `cannot record the removal of ${valid.tileId}`,
      () => this.removed.put(kvKey(valid.tileId), JSON.stringify(valid)),
      WRITE_RETRIES,
    );
  }

  /** Streams the tombstones (read without a consumer). @throws LanemapError STORAGE when the broker fails. */
  async *removals(): AsyncGenerator<Removal> {
    for await (const json of this.lastValues(REMOVAL_BUCKET)) yield removalSchema.parse(json);
  }

  /** The tombstone of `tileId`, if any (a KV get, no consumer). @throws LanemapError STORAGE. */
  async removal(tileId: string): Promise<Removal | undefined> {
    const e = await guarded(
      `cannot read the removal of ${tileId}`,
      () => this.removed.get(kvKey(tileId)),
      READ_RETRIES,
    );
    return e && e.operation === "PUT" ? removalSchema.parse(e.json()) : undefined;
  }

  /** Drops the tombstone of `tileId` (a KV delete marker, no purge); true when there was one. @throws LanemapError STORAGE. */
  async dropRemoval(tileId: string): Promise<boolean> {
    const k = kvKey(tileId);
    return guarded(
      `cannot drop the removal of ${tileId}`,
      async () => {
        const e = await this.removed.get(k);
        if (!e || e.operation !== "PUT") return false;
        await this.removed.delete(k);
        return true;
      },
      WRITE_RETRIES,
    );
  }

  /**
   * Drops the objects no catalogue entry names without purging inside any stream:
   * 1. creates generation g+1 (g: the newest on the server) as its own (createOwnGeneration: a
   *    compaction that finds it made by another stops there) and moves the pointer to it by
   *    compare-and-set (one that meets another's move stops there, deleting no data, and drops the
   *    generation it made: the pointer never named it, so nothing was written to it);
   * 2. waits `graceMs` (default COMPACT_GRACE_MS), so that a put that read the old pointer just
   *    before the move has stored its object and registered its entry;
   * 3. copies every object the catalogue names that the new generation lacks out of the older
   *    generations (newest first), then reads the catalogue again and copies what it names now;
   * 4. re-reads the pointer and deletes every older generation's stream whole (the legacy bucket
   *    included): a meta-layer delete.
   * A crash at any step leaves every catalogued object readable (nothing is deleted before step 4
   * and step 4 deletes only what step 3 copied), and the next compaction starts over from step 1
   * with what is there. With `dryRun` nothing is written: the report says what would be done.
   * Nothing to do (one generation, no garbage) is reported as such.
   * @param stopAfter returns after that step (a crash there, for recovery tests).
   * @throws LanemapError STORAGE when the broker fails or another compaction moved the pointer.
   */
  async compact(
    options: { dryRun?: boolean; graceMs?: number; stopAfter?: CompactionStep } = {},
  ): Promise<CompactionReport> {
    const read = <T>(what: string, op: () => Promise<T>) =>
      guarded(`archive compaction: ${what}`, op, READ_RETRIES, this.logger);
    const before = await read("reading the archive's usage", () => archiveUsage(this.nc, this.logger));
    const gens = [...before.generations, ...before.pending].map((g) => g.generation);
    const base = { dryRun: options.dryRun === true, before, missing: before.missing };
    if (before.generations.length <= 1 && before.garbage.objects === 0)
      return { ...base, nothingToDo: true, generation: null, copied: { objects: 0, bytes: 0 }, deleted: [] };
    const next = Math.max(0, before.current ?? 0, ...gens) + 1;
    const older = gens.filter((g) => g < next).map(archiveGenerationBucket);
    if (options.dryRun)
      return { ...base, nothingToDo: false, generation: next, copied: before.named, deleted: older };

    const owner = nuid.next();
    const target = await read(`creating generation ${next}`, () => this.createOwnGeneration(next, owner));
    if (options.stopAfter === "generation")
      return { ...base, nothingToDo: false, generation: next, copied: { objects: 0, bytes: 0 }, deleted: [] };
    const { generation: was, revision } = await read("reading the generation pointer", () =>
      this.currentGeneration(),
    );
    // Lost to another compaction: the generation made above is this one's alone (createOwnGeneration)
    // and the pointer never named it, so no put wrote to it: dropped whole, nothing left behind.
    const yieldTo = async (moved: string, cause?: unknown): Promise<never> => {
      const left = await read(`dropping generation ${next}`, () => this.dropGeneration(next)).then(
        () => `its empty generation ${next} dropped`,
        (err: unknown) =>
          `its empty generation ${next} left for the next compaction (dropping it failed: ${(err as Error).message})`,
      );
      throw new LanemapError(
        "STORAGE",
        `archive compaction: the generation pointer moved${moved} meanwhile (another compaction?); no data deleted, ${left}`,
        cause === undefined ? undefined : { cause },
      );
    };
    // Moved since the usage was read: another compaction is under way; moving past it would be a step back.
    if (was !== before.current) return yieldTo(` to ${was}`);
    try {
      await this.pointer.update(ARCHIVE_POINTER_KEY, JSON.stringify({ generation: next }), revision);
    } catch (cause) {
      // Refused: another move came first. Any other failure (a timeout) may have moved it after
      // all, or may yet: the generation is kept, for the next compaction to drop or to use.
      if (cause instanceof JetStreamApiError && cause.code === JetStreamApiCodes.StreamWrongLastSequence)
        return yieldTo("", cause);
      throw new LanemapError(
        "STORAGE",
        `archive compaction: moving the generation pointer to ${next} failed (${(cause as Error).message}); no data deleted, generation ${next} left for the next compaction`,
        { cause },
      );
    }
    if (options.stopAfter === "pointer")
      return { ...base, nothingToDo: false, generation: next, copied: { objects: 0, bytes: 0 }, deleted: [] };
    await new Promise((r) => setTimeout(r, options.graceMs ?? COMPACT_GRACE_MS));

    const copied = { objects: 0, bytes: 0 };
    const missing = new Set<string>();
    const sources = gens.filter((g) => g < next).reverse();
    const copyNamed = async (): Promise<void> => {
      const hashes = new Set<string>();
      for await (const e of this.entries()) hashes.add(e.contentHash);
      for (const hash of hashes) {
        const there = await read(`reading ${hash.slice(0, 12)}`, () => target.info(hash));
        if (there && !there.deleted) {
          missing.delete(hash);
          continue;
        }
        const bytes = await read(`reading ${hash.slice(0, 12)}`, () => this.probe(sources, hash));
        if (bytes === null) {
          missing.add(hash);
          continue;
        }
        const wrote = await guarded(
          `archive compaction: copying ${hash.slice(0, 12)}`,
          () => this.putInto(next, hash, bytes),
          WRITE_RETRIES,
        );
        missing.delete(hash);
        if (wrote) {
          copied.objects++;
          copied.bytes += bytes.byteLength;
        }
      }
    };
    await copyNamed();
    // Entries registered while the first pass ran (their objects may be in an older generation).
    await copyNamed();
    if (options.stopAfter === "copy")
      return {
        ...base,
        nothingToDo: false,
        generation: next,
        copied,
        deleted: [],
        missing: [...missing].sort(),
      };

    const now = await read("reading the generation pointer", () => this.currentGeneration());
    if (now.generation !== next)
      throw new LanemapError(
        "STORAGE",
        `archive compaction: the generation pointer names ${now.generation}, not ${next} (another compaction?); nothing deleted`,
      );
    const deleted: string[] = [];
    await read("deleting the old generations", async () => {
      const jsm = await jetstreamManager(this.nc);
      for (const g of await listGenerations(jsm)) {
        if (g >= next) continue;
        const stream = objectStoreStreamName(archiveGenerationBucket(g));
        try {
          await jsm.streams.delete(stream);
        } catch (err) {
          if (!isStreamNotFound(err)) throw err;
        }
        this.stores.delete(g);
        if (!deleted.includes(archiveGenerationBucket(g))) deleted.push(archiveGenerationBucket(g));
      }
    });
    this.known = this.known.filter((g) => g >= next);
    return { ...base, nothingToDo: false, generation: next, copied, deleted, missing: [...missing].sort() };
  }

  /**
   * The last value of every key of a KV bucket, deletes skipped, parsed as JSON, in no particular
   * order — read without a consumer: the keys are the subjects of the bucket's stream
   * (`listKvKeys`: STREAM.INFO with a subjects filter), each key's value the last message on its
   * subject (STREAM.MSG.GET), LAST_VALUE_GETS at a time; each step bounded and retried (logged).
   * Only the keys are held, never the values.
   *
   * Why not a consumer: an ordered consumer (DeliverPolicy.LastPerSubject) may be placed on a dead
   * node by nats-server 2.9 (nats-server PR #7165); even given up after 3 s and retried, with one
   * node of 3 down `lanemap archive list` failed 5 of 20 times and `lanemap batch run` 2 of 10
   * ("cannot read bucket lanemap-catalogue: timeout", issue 14, the operator's recheck).
   * @throws LanemapError STORAGE when the broker still fails after the retries; CATALOGUE when a
   *   value is not JSON.
   */
  private async *lastValues(bucket: string): AsyncGenerator<unknown> {
    const what = `cannot read bucket ${bucket}`;
    const values = kvValues(this.nc, bucket, {
      what,
      timeoutMs: LISTING_TIMEOUT_MS,
      inFlight: LAST_VALUE_GETS,
      logger: this.logger,
    });
    for await (const m of values) {
      let json: unknown;
      try {
        json = m.json<unknown>();
      } catch (cause) {
        throw new LanemapError("CATALOGUE", `${bucket} entry ${m.subject} is not JSON`, { cause });
      }
      yield json;
    }
  }
}
