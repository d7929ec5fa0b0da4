/**
 * The master archive on JetStream (issue 14): the `TileArchive` every machine reaches through NATS
 * alone, so a second machine needs no shared file system.
 *
 * Three buckets, each created on open with `replicas` replicas, file storage and history 1:
 * - ARCHIVE_OBJECT_BUCKET, an object store: one object per tile, named by its sha256 (hex). The
 *   store chunks any size (tiles are larger than max_payload) and records its own SHA-256 digest,
 *   which `putObject` compares before writing, so storing the same bytes twice is a no-op;
 * - CATALOGUE_BUCKET, a KV bucket: one entry per tile id (the entry JSON). KV `create()` succeeds
 *   only when the key has no value, which is exactly first-write-wins across machines;
 * - BAD_TILE_BUCKET, a KV bucket: one bad-tile record per record key (last write wins, as files).
 *
 * Keys: KV keys allow `[-/_=.A-Za-z0-9]` with no empty dot-separated token, so `kvKey` escapes every
 * other byte and every "." and "=" as `=XX` (hex of the UTF-8 byte): injective, and a tile id made of
 * letters and digits stays readable in `nats kv ls`.
 */
import { createHash } from "node:crypto";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { LanemapError } from "../../errors.js";
import { validCatalogueEntry, type TileArchive } from "../../storage/index.js";
import {
  badTileSchema,
  catalogueEntrySchema,
  type BadTileRecord,
  type CatalogueEntry,
} from "../../view/types.js";
import { TileConflictError } from "../archive/index.js";
import { serverMaxPayload } from "./connection.js";
import { kvValues, readObjectBytes } from "./object-reads.js";
import { READ_RETRIES, WRITE_RETRIES, guarded, storageError } from "./guarded.js";
import { atReplicas, ensureReplicas, kvStreamName, objectStoreStreamName } from "./replicas.js";
import { LEADER_READS } from "./leader-reads.js";
import { ARCHIVE_OBJECT_BUCKET, BAD_TILE_BUCKET, CATALOGUE_BUCKET } from "./names.js";

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

/** The hex sha256 an object store digest ("SHA-256=<base64url>") names, or undefined for another type. */
function digestHex(digest: string): string | undefined {
  const prefix = "SHA-256=";
  if (!digest.startsWith(prefix)) return undefined;
  return Buffer.from(digest.slice(prefix.length), "base64url").toString("hex");
}

/** The master archive in JetStream: `TileArchive` on an object store and two KV buckets. */
export class NatsTileArchive implements TileArchive {
  readonly backend = "nats" as const;
  private readonly nc: NatsConnection;
  private readonly objects: ObjectStore;
  private readonly catalogue: KV;
  private readonly bad: KV;

  private constructor(
    nc: NatsConnection,
    objects: ObjectStore,
    catalogue: KV,
    bad: KV,
    private readonly logger?: Logger,
  ) {
    this.nc = nc;
    this.objects = objects;
    this.catalogue = catalogue;
    this.bad = bad;
  }

  /**
   * Opens the archive, creating its buckets when absent (an existing bucket is used as it is).
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
        const objects = await atReplicas(objectStoreStreamName(ARCHIVE_OBJECT_BUCKET), r, () =>
          new Objm(nc).create(ARCHIVE_OBJECT_BUCKET, common),
        );
        const kvm = new Kvm(nc);
        const catalogue = await atReplicas(kvStreamName(CATALOGUE_BUCKET), r, () =>
          kvm.create(CATALOGUE_BUCKET, { ...common, history: 1, ...LEADER_READS }),
        );
        const bad = await atReplicas(kvStreamName(BAD_TILE_BUCKET), r, () =>
          kvm.create(BAD_TILE_BUCKET, { ...common, history: 1, ...LEADER_READS }),
        );
        // create() leaves an existing bucket's replicas as they are: bring all three to the deployment's.
        const jsm = await jetstreamManager(nc);
        await ensureReplicas(
          jsm,
          objectStoreStreamName(ARCHIVE_OBJECT_BUCKET),
          options.replicas,
          options.logger,
        );
        await ensureReplicas(jsm, kvStreamName(CATALOGUE_BUCKET), options.replicas, options.logger);
        await ensureReplicas(jsm, kvStreamName(BAD_TILE_BUCKET), options.replicas, options.logger);
        return new NatsTileArchive(nc, objects, catalogue, bad, options.logger);
      },
      WRITE_RETRIES,
      options.logger,
    );
  }

  /**
   * Stores raw tile bytes as the object named by their sha256 (hex); a no-op when an object of that
   * name exists with that digest (the object store's own SHA-256).
   * @throws LanemapError STORAGE when the broker fails.
   */
  async putObject(bytes: Uint8Array): Promise<{ contentHash: string; created: boolean }> {
    const hash = createHash("sha256").update(bytes).digest("hex");
    return guarded(
      `cannot store object ${hash.slice(0, 12)}`,
      // Content-addressed: a retry after a put that was stored after all finds it by info().
      async () => {
        const info = await this.objects.info(hash);
        if (info && !info.deleted && digestHex(info.digest) === hash)
          return { contentHash: hash, created: false };
        await this.objects.putBlob(
          {
            name: hash,
            // Chunks are messages: stay under max_payload even on servers configured below 128 KiB.
            options: { max_chunk_size: Math.min(128 * 1024, serverMaxPayload(this.nc) - 4096) },
          },
          bytes,
        );
        return { contentHash: hash, created: true };
      },
      WRITE_RETRIES,
    );
  }

  /**
   * The bytes of the object `contentHash`, read without a consumer (object-reads.ts: its chunks,
   * size and digest checked).
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
      () => readObjectBytes(this.nc, ARCHIVE_OBJECT_BUCKET, contentHash, { idleMs: ARCHIVE_READ_TIMEOUT_MS }),
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
   * Takes a tile out of the catalogue (a KV delete: a later `create()` of the id succeeds), and its
   * object unless another entry has the same content hash (see TileArchive.remove).
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
    for await (const other of this.entries())
      if (other.contentHash === entry.contentHash) return { entry, objectRemoved: false };
    const objectRemoved = await guarded(
      `cannot remove object ${entry.contentHash.slice(0, 12)}`,
      async () => {
        const info = await this.objects.info(entry.contentHash);
        if (!info || info.deleted) return false;
        await this.objects.delete(entry.contentHash);
        return true;
      },
      WRITE_RETRIES,
    );
    return { entry, objectRemoved };
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
