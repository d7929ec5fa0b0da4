/**
 * Published batch views in NATS (the nats backend of `PublishedViews`), so every machine that
 * reaches the broker reaches them, like Druid historicals loading segments from deep storage:
 *
 * - each version is an immutable unit of its own, the object store bucket
 *   `viewVersionBucket(name)` (`lanemap-view-v000042`, stream `OBJ_lanemap-view-v000042`, file
 *   storage, the configured replicas) with one object per file, named `<file>`; manifest.json goes
 *   up LAST, so a version is listed (and can be made current) only once every file it names is
 *   stored. Retention deletes a version's stream whole (`$JS.API.STREAM.DELETE`, a meta-layer
 *   operation), the way Druid drops a segment: nothing is ever purged inside a stream that keeps
 *   living. Why (issue 14 F-A): with every version in one bucket a removal was an
 *   `ObjectStore.delete` per object, i.e. filtered purges of chunk subjects and rollups of meta
 *   subjects in a long-lived stream, and nats-server 2.9.10 (Debian's; upstream mended restart
 *   desyncs in 2.9.15+, PRs #5054 #5939 #6459) mishandles such purges on an abrupt restart: a node
 *   SIGKILLed 2–6 s after a publish that removed a version came back holding 1 message where its
 *   peers held 145, every time in an operator's check, and with its peers killed in turn every
 *   published view was lost (test/integration/nats-views-node-kill.test.ts);
 * - the legacy layout, every version in the one bucket VIEW_OBJECT_BUCKET as `<version>/<file>`,
 *   is still listed, read and checked (an existing deployment keeps its versions), never written:
 *   new publishes go to their own buckets, and the first removal of a legacy version moves the
 *   others to buckets of their own and deletes the legacy stream whole (remove()). This path can go
 *   once no deployment holds a version there;
 * - CURRENT is the key `current` of the KV bucket VIEW_POINTER_BUCKET, value `{"name":"v000042"}`;
 *   its revision is the KV revision, and a move with an expected revision is a KV `update` on that
 *   revision (`create` when no pointer is expected), which the server refuses when the key moved:
 *   two coordinators can never both publish over the same pointer unseen (a KV update is an append,
 *   no purge);
 * - a publisher reserves its version number first, by creating the key `<name>` of the KV bucket
 *   VIEW_RESERVATION_BUCKET (refused when it exists), so two coordinators never upload into one
 *   bucket (issue 14: both computed v000017 and the loser's chunks landed in the winner's stream).
 *   The bucket's max_age expires a reservation its holder never released (it died); retention
 *   releases those of complete versions and removes the half-written buckets no one holds;
 * - `materialize` downloads a version once into a partial folder of its own
 *   (`<cacheDir>/<name>.partial-<hex>/`, partial-folders.ts: processes may share the cache), checks
 *   every file's size and sha256 against the manifest, then renames the folder to `<cacheDir>/<name>`:
 *   a crash leaves only a partial folder (removed once its process is gone), a complete folder is
 *   reused, and of two downloads finishing together the first rename wins.
 */
import { createHash, randomInt } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { jetstream, jetstreamManager, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { LanemapError } from "../../errors.js";
import {
  ViewPointerConflictError,
  type PublishedVersion,
  type PublishedViews,
  type VersionReservation,
  type ViewPointer,
} from "../../storage/index.js";
import { parseVersionName } from "../../view/paths.js";
import { BATCH_VIEW_FILES } from "../../view/batch-schema.js";
import { batchManifestSchema, type BatchManifest } from "../../view/types.js";
import { isStreamNotFound, isTransientBrokerError } from "./jetstream-errors.js";
import { serverMaxPayload } from "./connection.js";
import {
  listObjectInfos,
  readObjectBytes,
  readObjectInfo,
  readObjectToFile,
  type StoredObjectInfo,
} from "./object-reads.js";
import { READ_RETRIES, WRITE_RETRIES, guarded, storageError } from "./guarded.js";
import { atReplicas, ensureReplicas, kvStreamName, objectStoreStreamName } from "./replicas.js";
import { LEADER_READS } from "./leader-reads.js";
import { watchKvKey } from "./key-watch.js";
import { finishPartial, removeStalePartials, startPartial } from "./partial-folders.js";
import {
  VIEW_OBJECT_BUCKET,
  VIEW_POINTER_BUCKET,
  VIEW_POINTER_KEY,
  VIEW_RESERVATION_BUCKET,
  VIEW_RESERVATION_TTL_MS,
  VIEW_VERSION_BUCKET_PREFIX,
  viewVersionBucket,
} from "./names.js";

const MANIFEST = BATCH_VIEW_FILES.manifest;

/** A published version that lost objects (NatsPublishedViews.damaged). */
export interface DamagedVersion {
  /** The version's name (`v000042`). */
  readonly name: string;
  /** What is wrong with it, one phrase per object ("class.bin missing", "... has 3 of 5 chunks"). */
  readonly problems: readonly string[];
}

/** Period of the consumer-free read of CURRENT beside the watch (see NatsPublishedViews.watch). */
const CURRENT_POLL_MS = 1_000;

/**
 * Request timeout of a version's bucket creation (and of its uploads' acknowledgements): the server
 * answers a create once the new stream's RAFT group has elected a leader, which with a node down
 * can take longer than nats.js's default 5 s (publish()).
 */
const BUCKET_CREATE_TIMEOUT_MS = 15_000;

/** How many times a version's upload is tried whole before its publish fails (storeOwn). */
const UPLOAD_ATTEMPTS = 3;
/** The pause before an upload is tried again: an election (2–5 s on nats-server 2.9) may be under way. */
const UPLOAD_RETRY_MS = 2_000;

/** Request timeout of the stream API reads of list() (see NatsPublishedViews.jsm). */
const VIEW_READ_TIMEOUT_MS = 2_000;

/** A read of the store, retried on a timeout (guarded.ts, each retry said to `logger`), its failure as STORAGE. */
function viewRead<T>(what: string, op: () => Promise<T>, logger?: Logger): Promise<T> {
  return guarded(`published views in NATS: ${what} failed`, op, READ_RETRIES, logger);
}

/** The version a CURRENT entry's value names, or null. */
function pointerName(data: Uint8Array): string | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(data)) as { name?: unknown };
    return typeof v.name === "string" ? v.name : null;
  } catch {
    return null;
  }
}

/** A write or set-up step, its failure as STORAGE (not retried). */
function viewWrite<T>(what: string, op: () => Promise<T>): Promise<T> {
  return guarded(`published views in NATS: ${what} failed`, op);
}

/**
 * A KV write whose repetition is harmless — a create or compare-and-set whose second try, when the
 * first landed unanswered, is refused and then recognised by reading the key, or a delete — retried
 * through an election (WRITE_RETRIES, about 10 s): an operator's check lost a run with every tile
 * classified to one timeout of the version reservation while that bucket's leader was re-elected
 * after a node was SIGKILLed (`STORAGE: published views in NATS: reserving v000002 failed: timeout`).
 */
function viewKeyWrite<T>(what: string, op: () => Promise<T>): Promise<T> {
  return guarded(`published views in NATS: ${what} failed`, op, WRITE_RETRIES);
}

function notFound(name: string): LanemapError {
  return new LanemapError("VIEW_NOT_FOUND", `batch view ${name} does not exist or is incomplete`);
}

/**
 * How long a local copy another process of the machine used last is left alone by this one's
 * eviction: that process (a `views diff`, a serve that heard of a publish first) may be opening it
 * (an operator's diff of a reference version failed, "database does not exist", when a serve
 * evicted it at that moment: 2 of 70). Once open, its files stay readable to that process after a
 * removal (unlink), so minutes are plenty.
 */
const USED_ELSEWHERE_MS = 10 * 60_000;

/** A folder of `<cacheDir>` holding a complete copy: its manifest is the last thing renamed in. */
async function hasManifest(dir: string): Promise<boolean> {
  return stat(join(dir, MANIFEST)).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Where a version's objects are: its own bucket (objects named `<file>`), or the legacy shared
 * bucket VIEW_OBJECT_BUCKET (objects named `<version>/<file>`).
 */
interface VersionHome {
  readonly bucket: string;
  /** What precedes a file's name in its object's name. */
  readonly prefix: string;
}

const ownHome = (name: string): VersionHome => ({ bucket: viewVersionBucket(name), prefix: "" });
const legacyHome = (name: string): VersionHome => ({ bucket: VIEW_OBJECT_BUCKET, prefix: `${name}/` });

/** The stream-name prefix of the per-version buckets (`OBJ_lanemap-view-`). */
const VERSION_STREAM_PREFIX = objectStoreStreamName(VIEW_VERSION_BUCKET_PREFIX);

/** The view streams on the server: the versions with a bucket of their own, and whether the legacy one exists. */
interface ViewStreams {
  /** Version names (`v000042`) whose stream `OBJ_lanemap-view-<name>` exists, sorted. */
  readonly own: readonly string[];
  /** Whether `OBJ_lanemap-views` exists. */
  readonly legacy: boolean;
}

/**
 * The view streams, from `$JS.API.STREAM.NAMES` (no consumer; the meta leader answers it, so a
 * read right after a node's death waits for its election: the callers retry, viewRead).
 */
async function viewStreams(jsm: JetStreamManager): Promise<ViewStreams> {
  const own: string[] = [];
  let legacy = false;
  for await (const stream of jsm.streams.names()) {
    if (stream === objectStoreStreamName(VIEW_OBJECT_BUCKET)) legacy = true;
    else if (stream.startsWith(VERSION_STREAM_PREFIX)) {
      const name = stream.slice(VERSION_STREAM_PREFIX.length);
      if (parseVersionName(name) !== null) own.push(name);
    }
  }
  return { own: own.sort(), legacy };
}

async function streamExists(jsm: JetStreamManager, stream: string): Promise<boolean> {
  try {
    await jsm.streams.info(stream);
    return true;
  } catch (err) {
    if (isStreamNotFound(err)) return false;
    throw err;
  }
}

/** Deletes `stream` whole; one that is gone already is no error (a retried delete). */
async function deleteStream(jsm: JetStreamManager, stream: string): Promise<void> {
  try {
    await jsm.streams.delete(stream);
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
  }
}

/** A manifest's bytes parsed, or null when they are not one. */
function parseManifest(bytes: Uint8Array): BatchManifest | null {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
  const parsed = batchManifestSchema.safeParse(json);
  return parsed.success ? parsed.data : null;
}

/** A reservation's entry read back, or null when the key holds none (absent, deleted, expired). */
function reservationOf(e: KvEntry | null): VersionReservation | null {
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(e.value)) as { holder?: unknown };
    return {
      name: e.key,
      holder: typeof v.holder === "string" ? v.holder : "an unknown publisher",
      reservedAt: e.created.toISOString(),
    };
  } catch {
    return { name: e.key, holder: "an unknown publisher", reservedAt: e.created.toISOString() };
  }
}

/** Published batch views on JetStream object stores (one per version) and a KV pointer. */
export class NatsPublishedViews implements PublishedViews {
  readonly backend = "nats" as const;
  /** One download per version at a time in this process (serving and the runner may both ask). */
  private readonly downloads = new Map<string, Promise<string>>();
  /** Local copy -> its folder's mtime as this process's last `materialize` left it (markUsed). */
  private readonly usedStamps = new Map<string, number>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    /** The reservations (VIEW_RESERVATION_BUCKET); null when opened read-only and it does not exist. */
    private readonly reserved: KV | null,
    private readonly cacheDir: string,
    /** Replicas of the bucket a publish creates (config.storage.replicas). */
    private readonly replicas: number,
    private readonly logger?: Logger,
  ) {}

  /**
   * Opens (creating when absent, file storage, `replicas` copies) the pointer bucket; with
   * `replicas` given, brings every existing view stream (each version's, the legacy bucket's) up to
   * them. A version's bucket is created by its publish.
   * @param cacheDir where `materialize` keeps downloaded versions (`<dataDir>/cache/views`).
   * @param logger hears (at warn) every retry of the CURRENT watch, named.
   * @throws LanemapError STORAGE when the broker or JetStream is unreachable.
   */
  static async open(
    nc: NatsConnection,
    options: { cacheDir: string; replicas?: number; logger?: Logger },
  ): Promise<NatsPublishedViews> {
    const replicas = options.replicas ?? 1;
    // Idempotent (create-if-absent, replicas brought to config), so retried like a read: the meta
    // leader that answers it is re-elected for a few seconds after a node dies.
    return viewRead(
      "opening the view buckets",
      async () => {
        // History keeps the last moves of CURRENT visible to operators.
        const kv = await atReplicas(kvStreamName(VIEW_POINTER_BUCKET), replicas, () =>
          new Kvm(nc).create(VIEW_POINTER_BUCKET, {
            history: 16,
            storage: StorageType.File,
            replicas,
            ...LEADER_READS,
          }),
        );
        const reserved = await atReplicas(kvStreamName(VIEW_RESERVATION_BUCKET), replicas, () =>
          new Kvm(nc).create(VIEW_RESERVATION_BUCKET, {
            history: 1,
            ttl: VIEW_RESERVATION_TTL_MS,
            storage: StorageType.File,
            replicas,
            ...LEADER_READS,
          }),
        );
        if (options.replicas !== undefined) {
          // create() leaves an existing bucket's replicas as they are: bring every one to the deployment's.
          const jsm = await jetstreamManager(nc);
          await ensureReplicas(jsm, kvStreamName(VIEW_POINTER_BUCKET), replicas, options.logger);
          await ensureReplicas(jsm, kvStreamName(VIEW_RESERVATION_BUCKET), replicas, options.logger);
          const streams = await viewStreams(jsm);
          for (const name of streams.own)
            await ensureReplicas(
              jsm,
              objectStoreStreamName(viewVersionBucket(name)),
              replicas,
              options.logger,
            );
          if (streams.legacy)
            await ensureReplicas(jsm, objectStoreStreamName(VIEW_OBJECT_BUCKET), replicas, options.logger);
        }
        return new NatsPublishedViews(nc, kv, reserved, options.cacheDir, replicas, options.logger);
      },
      options.logger,
    );
  }

  /**
   * Opens the store for reading only (`lanemap ops status`): creates nothing, checks and rescales
   * nothing.
   * @throws LanemapError STORAGE when the broker is unreachable.
   */
  static async openExisting(nc: NatsConnection, options: { cacheDir: string }): Promise<NatsPublishedViews> {
    return viewRead("opening the view buckets", async () => {
      const kv = await new Kvm(nc).open(VIEW_POINTER_BUCKET);
      // A deployment whose publishers predate reservations has no such bucket: nothing is reserved.
      const reserved = (await streamExists(
        await jetstreamManager(nc, { checkAPI: false }),
        kvStreamName(VIEW_RESERVATION_BUCKET),
      ))
        ? await new Kvm(nc).open(VIEW_RESERVATION_BUCKET)
        : null;
      return new NatsPublishedViews(nc, kv, reserved, options.cacheDir, 1);
    });
  }

  /** {@link viewRead} with this store's logger, which hears every retry. */
  private read<T>(what: string, op: () => Promise<T>): Promise<T> {
    return viewRead(what, op, this.logger);
  }

  /**
   * A manager for the stream API reads: without the account-info round trip nats.js makes by
   * default (the meta leader answers that one, and it is being re-elected when its node just died),
   * and with a 2 s request timeout instead of 5 s, so that a request lost with a dying node is
   * retried (viewRead) while the caller still waits — these reads take milliseconds when answered.
   */
  private jsm(): Promise<JetStreamManager> {
    return jetstreamManager(this.nc, { checkAPI: false, timeout: VIEW_READ_TIMEOUT_MS });
  }

  /**
   * Where version `name` is stored: its own bucket when that stream exists, else the legacy bucket
   * (whose reads find nothing when it does not exist either). A bucket of its own without its
   * manifest is an upload under way (a publish, or a legacy version being moved out of the shared
   * bucket by remove()): then the legacy copy, when it has its manifest, is the complete one.
   * One STREAM.INFO, and a manifest info read or two.
   */
  private async homeOf(name: string): Promise<VersionHome> {
    const jsm = await this.jsm();
    if (!(await streamExists(jsm, objectStoreStreamName(viewVersionBucket(name))))) return legacyHome(name);
    const info = (bucket: string, object: string) =>
      readObjectInfo(jsm, bucket, object).then((i) => i !== null && !i.deleted);
    if (await info(viewVersionBucket(name), MANIFEST)) return ownHome(name);
    return (await info(VIEW_OBJECT_BUCKET, `${name}/${MANIFEST}`)) ? legacyHome(name) : ownHome(name);
  }

  /**
   * The manifest of a complete version (manifest stored and every file it names stored), or null.
   * `stored`: the sizes of the objects of its bucket by object name, and `listed`: its manifest's
   * info, both from a listing (list()); without them each info is read by its last meta message.
   * Read without a consumer (object-reads.ts): a publish, a switch and `setCurrent` each read it,
   * and a consumer on a dead node made a switch wait 11–37 s (issue 14, F7).
   */
  private async manifestOf(
    name: string,
    home?: VersionHome,
    stored?: Map<string, number>,
    listed?: StoredObjectInfo,
  ): Promise<BatchManifest | null> {
    if (parseVersionName(name) === null) return null;
    const at = home ?? (await this.homeOf(name));
    const bytes = await this.objectBytes(at.bucket, `${at.prefix}${MANIFEST}`, listed);
    if (!bytes) return null;
    const manifest = parseManifest(bytes);
    if (manifest === null || manifest.name !== name) return null;
    const jsm = stored ? null : await this.jsm();
    for (const [file, { bytes: size }] of Object.entries(manifest.files)) {
      const have = stored
        ? stored.get(`${at.prefix}${file}`)
        : await readObjectInfo(jsm!, at.bucket, `${at.prefix}${file}`).then((i) =>
            i === null || i.deleted ? undefined : i.size,
          );
      if (have !== size) return null;
    }
    return manifest;
  }

  /**
   * An object's bytes, or null when it is absent: read without a consumer (object-reads.ts; its
   * info from `listed`, else its last meta message), each request bounded as the stream API reads.
   */
  private async objectBytes(
    bucket: string,
    objectName: string,
    listed?: StoredObjectInfo,
  ): Promise<Uint8Array | null> {
    return readObjectBytes(this.nc, bucket, objectName, {
      idleMs: VIEW_READ_TIMEOUT_MS,
      ...(listed ? { info: listed } : {}),
    });
  }

  /** The live objects of `bucket` by name (one listing, no consumer: object-reads.ts). */
  private async objectsOf(jsm: JetStreamManager, bucket: string): Promise<Map<string, StoredObjectInfo>> {
    const infos = (await listObjectInfos(jsm, bucket)).filter((i) => !i.deleted);
    return new Map(infos.map((i) => [i.name, i]));
  }

  /** The versions of the legacy bucket whose manifest is stored, from its objects, sorted. */
  private static legacyNames(objects: Map<string, StoredObjectInfo>): string[] {
    return [...objects.keys()]
      .filter((n) => n.endsWith(`/${MANIFEST}`))
      .map((n) => n.slice(0, -MANIFEST.length - 1))
      .filter((n) => parseVersionName(n) !== null)
      .sort();
  }

  async list(): Promise<PublishedVersion[]> {
    return this.read("listing views", async () => {
      // Not ObjectStore.list(): its consumer may sit on a dead node (object-reads.ts).
      const jsm = await this.jsm();
      const streams = await viewStreams(jsm);
      const out: PublishedVersion[] = [];
      const add = async (name: string, home: VersionHome, infos: Map<string, StoredObjectInfo>) => {
        const sizes = new Map([...infos].map(([n, i]) => [n, i.size]));
        const manifest = await this.manifestOf(name, home, sizes, infos.get(`${home.prefix}${MANIFEST}`));
        if (manifest) out.push({ name, version: manifest.version, manifest });
      };
      const listed = () => new Set(out.map((v) => v.name));
      for (const name of streams.own) {
        const home = ownHome(name);
        // Deleted between the names and this read (a retention elsewhere): not a version any more.
        const objects = await this.objectsOf(jsm, home.bucket).catch((err: unknown) => {
          if (isStreamNotFound(err)) return new Map<string, StoredObjectInfo>();
          throw err;
        });
        await add(name, home, objects);
      }
      if (streams.legacy) {
        const objects = await this.objectsOf(jsm, VIEW_OBJECT_BUCKET);
        // Also a version whose own bucket is still being written (moved out of this one by remove()).
        const complete = listed();
        for (const name of NatsPublishedViews.legacyNames(objects))
          if (!complete.has(name)) await add(name, legacyHome(name), objects);
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  /**
   * The problems of each version of `bucket` whose manifest is stored (`homes`: the versions and
   * their object names' prefix): a manifest that cannot be read, or a file it names that is
   * missing, of another size, or has fewer chunk messages in the stream than its info counts.
   * One listing and one STREAM.INFO for the chunk counts.
   */
  private async damagedIn(
    jsm: JetStreamManager,
    bucket: string,
    homes: (objects: Map<string, StoredObjectInfo>) => { name: string; prefix: string }[],
  ): Promise<{ stored: string[]; damaged: DamagedVersion[] }> {
    const byName = await this.objectsOf(jsm, bucket);
    const chunkSubjects = (
      await jsm.streams.info(objectStoreStreamName(bucket), { subjects_filter: `$O.${bucket}.C.>` })
    ).state.subjects;
    const chunksOf = (i: StoredObjectInfo) => chunkSubjects?.[`$O.${bucket}.C.${i.nuid}`] ?? 0;
    const stored: string[] = [];
    const damaged: DamagedVersion[] = [];
    for (const { name, prefix } of homes(byName)) {
      const listed = byName.get(`${prefix}${MANIFEST}`);
      if (!listed) continue; // a publish in progress stores its manifest last: not a version yet
      stored.push(name);
      const problems: string[] = [];
      if (chunksOf(listed) < listed.chunks)
        problems.push(`${MANIFEST} has ${chunksOf(listed)} of ${listed.chunks} chunks`);
      const bytes =
        problems.length > 0 ? null : await this.objectBytes(bucket, `${prefix}${MANIFEST}`, listed);
      const manifest = bytes ? parseManifest(bytes) : null;
      if (manifest === null) {
        if (problems.length === 0) problems.push(`${MANIFEST} unreadable`);
      } else
        for (const [file, { bytes: size }] of Object.entries(manifest.files)) {
          const i = byName.get(`${prefix}${file}`);
          if (!i) problems.push(`${file} missing`);
          else if (i.size !== size) problems.push(`${file} has ${i.size} bytes, the manifest ${size}`);
          else if (chunksOf(i) < i.chunks) problems.push(`${file} has ${chunksOf(i)} of ${i.chunks} chunks`);
        }
      if (problems.length > 0) damaged.push({ name, problems });
    }
    return { stored, damaged };
  }

  /**
   * The published versions that lost objects (what a replica that diverged takes from the user),
   * in both layouts: a version whose manifest is stored but whose manifest cannot be read, or a
   * file it names is missing, of another size, or has fewer chunk messages in the stream than its
   * info counts; and the version CURRENT names when its manifest is missing. list() leaves out a
   * version missing a file and lists one missing chunks (it reads infos only; the download's
   * checksum fails later), and says neither: `lanemap ops status` reports these. A version without
   * a manifest is not one (a publish in progress stores it last). Per bucket one STREAM.INFO for
   * the chunk counts, besides list()'s reads.
   */
  async damaged(): Promise<DamagedVersion[]> {
    return this.read("checking the published views' objects", async () => {
      const jsm = await this.jsm();
      const streams = await viewStreams(jsm);
      const out: DamagedVersion[] = [];
      const stored = new Set<string>();
      for (const name of streams.own) {
        const found = await this.damagedIn(jsm, viewVersionBucket(name), () => [{ name, prefix: "" }]).catch(
          (err: unknown) => {
            if (isStreamNotFound(err)) return { stored: [], damaged: [] }; // removed meanwhile
            throw err;
          },
        );
        for (const n of found.stored) stored.add(n);
        out.push(...found.damaged);
      }
      if (streams.legacy) {
        const found = await this.damagedIn(jsm, VIEW_OBJECT_BUCKET, (objects) =>
          NatsPublishedViews.legacyNames(objects)
            .filter((n) => !streams.own.includes(n))
            .map((n) => ({ name: n, prefix: `${n}/` })),
        );
        for (const n of found.stored) stored.add(n);
        out.push(...found.damaged);
      }
      const current = this.pointerOf(await this.kv.get(VIEW_POINTER_KEY));
      if (current && !stored.has(current.name))
        out.push({ name: current.name, problems: [`CURRENT names it, and its ${MANIFEST} is missing`] });
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  private pointerOf(e: KvEntry | null): ViewPointer | null {
    if (!e || e.operation !== "PUT" || e.length === 0) return null;
    try {
      const v = JSON.parse(new TextDecoder().decode(e.value)) as { name?: unknown };
      if (typeof v.name !== "string" || parseVersionName(v.name) === null) return null;
      return { name: v.name, revision: e.revision };
    } catch {
      return null;
    }
  }

  current(): Promise<ViewPointer | null> {
    return this.read("reading CURRENT", async () => this.pointerOf(await this.kv.get(VIEW_POINTER_KEY)));
  }

  materialize(name: string): Promise<string> {
    const running = this.downloads.get(name);
    if (running) return running;
    const p = this.download(name).finally(() => this.downloads.delete(name));
    this.downloads.set(name, p);
    return p;
  }

  /**
   * Marks a local copy as used now (its folder's mtime, which processes sharing the cache read) and
   * remembers the stamp this process left: a later stamp is another process's use.
   */
  private async markUsed(name: string, dir: string): Promise<string> {
    try {
      // Seconds with random microseconds: two processes stamping within one millisecond still
      // leave different stamps (the file system keeps nanoseconds).
      const stamp = Date.now() / 1000 + randomInt(1, 1000) / 1e6;
      await utimes(dir, stamp, stamp);
      this.usedStamps.set(name, (await stat(dir)).mtimeMs);
    } catch {
      // A copy whose stamp cannot be set is still a copy; eviction elsewhere may take it sooner.
    }
    return dir;
  }

  private async download(name: string): Promise<string> {
    const target = join(this.cacheDir, name);
    if (parseVersionName(name) === null) throw notFound(name);
    if (await hasManifest(target)) return this.markUsed(name, target);
    const { manifest, home } = await this.read(`reading ${name}`, async () => {
      const at = await this.homeOf(name);
      return { manifest: await this.manifestOf(name, at), home: at };
    });
    if (!manifest) throw notFound(name);
    await removeStalePartials(this.cacheDir, target);
    const partial = await startPartial(target);
    try {
      await this.fill(name, home, manifest, partial);
      return await this.markUsed(name, await finishPartial(partial, target, hasManifest));
    } catch (err) {
      await rm(partial, { recursive: true, force: true });
      throw err;
    }
  }

  /** Downloads a version's files into `partial`, each checked against the manifest, the manifest last. */
  private async fill(
    name: string,
    home: VersionHome,
    manifest: BatchManifest,
    partial: string,
  ): Promise<void> {
    for (const [file, expected] of Object.entries(manifest.files)) {
      const path = join(partial, file);
      await this.read(`downloading ${name}/${file}`, async () => {
        // No consumer (object-reads.ts): written as its chunks come, checked against its info.
        if (!(await readObjectToFile(this.nc, home.bucket, `${home.prefix}${file}`, path)))
          throw notFound(name);
      });
      const size = (await stat(path)).size;
      const digest = await sha256File(path);
      if (size !== expected.bytes || digest !== expected.sha256)
        throw new LanemapError(
          "BATCH_VIEW",
          `batch view ${name}: ${file} does not match its manifest (${size} bytes, sha256 ${digest}; expected ${expected.bytes} bytes, sha256 ${expected.sha256})`,
        );
    }
    // The manifest is written last, from the very bytes that were listed: the copy is complete.
    await this.read(`downloading ${name}/${MANIFEST}`, async () => {
      const bytes = await this.objectBytes(home.bucket, `${home.prefix}${MANIFEST}`);
      if (!bytes) throw notFound(name);
      await writeFile(join(partial, MANIFEST), bytes);
    });
  }

  async publish(localDir: string, name: string): Promise<void> {
    if (parseVersionName(name) === null) throw notFound(name);
    let manifest: BatchManifest;
    try {
      manifest = batchManifestSchema.parse(JSON.parse(await readFile(join(localDir, MANIFEST), "utf8")));
    } catch (cause) {
      throw new LanemapError("PUBLISH", `${localDir} is not a complete version folder (manifest.json)`, {
        cause,
      });
    }
    if (manifest.name !== name)
      throw new LanemapError("PUBLISH", `${localDir} holds version ${manifest.name}, not ${name}`);
    // Idempotent: a version whose manifest is stored (in either layout) was uploaded completely before.
    if (await this.read(`reading ${name}`, () => this.manifestOf(name))) return;
    await this.storeOwn(localDir, name, manifest);
  }

  /**
   * Uploads the complete version folder `localDir` into the bucket of its own, `manifest` naming
   * its files, manifest last (publish, and a legacy version moved out of the shared bucket).
   */
  private async storeOwn(localDir: string, name: string, manifest: BatchManifest): Promise<void> {
    // Whole again on a transient failure: each try drops what the last one wrote. An upload does
    // not resume (an object overwritten purges its old chunks: see the header); an operator's
    // check lost 7 of 7 runs, every tile classified, to one timeout of an object's upload with the
    // node leading the version's bucket SIGKILLed as it started (`uploading v0000NN/view.duckdb
    // failed: timeout`).
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.storeOwnOnce(localDir, name, manifest);
      } catch (err) {
        const transient =
          err instanceof LanemapError ? isTransientBrokerError(err.cause) : isTransientBrokerError(err);
        if (!transient || attempt >= UPLOAD_ATTEMPTS) throw err;
        this.logger?.warn(
          {
            version: name,
            attempt,
            err: err instanceof Error ? err.message : String(err),
            retryInMs: UPLOAD_RETRY_MS,
          },
          "upload of a view version failed transiently (a leader election?): uploading it again, whole",
        );
        await new Promise((r) => setTimeout(r, UPLOAD_RETRY_MS));
      }
    }
  }

  private async storeOwnOnce(localDir: string, name: string, manifest: BatchManifest): Promise<void> {
    const bucket = viewVersionBucket(name);
    const stream = objectStoreStreamName(bucket);
    // A bucket without a manifest is a publish that died half way: dropped whole and written
    // anew, so no object of a version is ever overwritten (an overwrite purges the old chunks).
    await this.read(`dropping the incomplete ${name}`, async () => deleteStream(await this.jsm(), stream));
    // Create-if-absent with one config, so retried like a read. The answer comes once the new
    // stream's group has a leader: with a node down or frozen that may be after nats.js's 5 s
    // (seen: the third publish in a row with a node killed), so it is awaited up to
    // BUCKET_CREATE_TIMEOUT_MS rather than asked again.
    const objects = await this.read(`creating the bucket of ${name}`, () =>
      atReplicas(stream, this.replicas, () =>
        new Objm(jetstream(this.nc, { timeout: BUCKET_CREATE_TIMEOUT_MS })).create(bucket, {
          description: `lanemap batch view ${name}`,
          storage: StorageType.File,
          replicas: this.replicas,
        }),
      ),
    );
    const chunk = Math.min(128 * 1024, serverMaxPayload(this.nc) - 4096);
    for (const file of Object.keys(manifest.files)) {
      await viewWrite(`uploading ${name}/${file}`, () =>
        objects.put(
          { name: file, options: { max_chunk_size: chunk } },
          Readable.toWeb(createReadStream(join(localDir, file))) as unknown as ReadableStream<Uint8Array>,
        ),
      );
    }
    const manifestBytes = await readFile(join(localDir, MANIFEST));
    await viewWrite(`uploading ${name}/${MANIFEST}`, () =>
      objects.putBlob({ name: MANIFEST, options: { max_chunk_size: chunk } }, new Uint8Array(manifestBytes)),
    );
  }

  async setCurrent(name: string, expectedRevision?: number | null): Promise<ViewPointer> {
    if (!(await this.read(`reading ${name}`, () => this.manifestOf(name)))) throw notFound(name);
    const value = JSON.stringify({ name });
    let revision: number;
    /** A try failed without an answer: it may have landed, and a later one then be refused. */
    let unanswered = false;
    try {
      // Retried through an election: a second try after a first that landed unanswered is refused
      // (its revision moved), and the pointer read below then names this very version.
      revision = await guarded(
        "published views in NATS: moving CURRENT",
        async () => {
          try {
            return await (expectedRevision === undefined
              ? this.kv.put(VIEW_POINTER_KEY, value)
              : expectedRevision === null
                ? this.kv.create(VIEW_POINTER_KEY, value)
                : this.kv.update(VIEW_POINTER_KEY, value, expectedRevision));
          } catch (err) {
            if (isTransientBrokerError(err)) unanswered = true;
            throw err;
          }
        },
        WRITE_RETRIES,
      );
    } catch (err) {
      // The server refuses a wrong revision; anything else (broker gone) is a storage failure.
      const actual = await this.current();
      // Refused after a try that went unanswered: that try landed if the write right after the
      // expected revision names this version (a compare-and-set lands only as the key's next
      // revision, and CURRENT is its bucket's one key, so that is the stream's next sequence).
      // Without such a try a refusal is a conflict, whatever CURRENT names.
      if (unanswered && actual?.name === name && typeof expectedRevision === "number") {
        const next = await this.read("reading CURRENT's history", async () =>
          (await this.jsm()).streams
            .getMessage(kvStreamName(VIEW_POINTER_BUCKET), { seq: expectedRevision + 1 })
            .catch(() => null),
        );
        if (next !== null && pointerName(next.data) === name) return { name, revision: expectedRevision + 1 };
      }
      if (expectedRevision !== undefined && (actual?.revision ?? null) !== expectedRevision)
        throw new ViewPointerConflictError(name, expectedRevision, actual);
      throw storageError(
        "published views in NATS: moving CURRENT failed",
        err instanceof LanemapError ? err.cause : err,
      );
    }
    return { name, revision };
  }

  async reserve(name: string, holder: string): Promise<VersionReservation | null> {
    if (parseVersionName(name) === null) throw notFound(name);
    const kv = this.reservationBucket();
    try {
      await viewKeyWrite(`reserving ${name}`, () => kv.create(name, JSON.stringify({ holder })));
    } catch (err) {
      // Refused because the key exists (another publisher's), or lost on the way: the key says which.
      const held = reservationOf(await this.read(`reading the reservation of ${name}`, () => kv.get(name)));
      if (held === null) throw err;
      if (held.holder !== holder) return held;
      // Our own create, whose answer was lost: ours.
    }
    // A reservation released (its version published) lets the number be created again: a number
    // published already is never handed out twice, whatever the caller computed.
    if (await this.read(`reading ${name}`, () => this.manifestOf(name))) {
      await this.release(name);
      return { name, holder: `the published version ${name}` };
    }
    return null;
  }

  async release(name: string): Promise<void> {
    const kv = this.reservationBucket();
    // A delete marker, not a purge (no purge inside a living stream: see the header); the bucket's
    // max_age drops the markers.
    await viewKeyWrite(`releasing the reservation of ${name}`, () => kv.delete(name));
  }

  async reservations(): Promise<VersionReservation[]> {
    const kv = this.reserved;
    if (!kv) return [];
    return this.read("listing the reserved versions", async () => {
      // The keys from the stream's subjects (no consumer: object-reads.ts says why), each read by a get.
      const prefix = `$KV.${VIEW_RESERVATION_BUCKET}.`;
      const subjects =
        (
          await (
            await this.jsm()
          ).streams.info(kvStreamName(VIEW_RESERVATION_BUCKET), {
            subjects_filter: `${prefix}>`,
          })
        ).state.subjects ?? {};
      const out: VersionReservation[] = [];
      for (const subject of Object.keys(subjects).sort()) {
        const held = reservationOf(await kv.get(subject.slice(prefix.length)));
        if (held) out.push(held);
      }
      return out;
    });
  }

  /**
   * Versions whose upload started and never finished: a bucket of their own without a manifest
   * (retention removes those no reservation holds).
   */
  async incomplete(): Promise<string[]> {
    return this.read("listing the incomplete versions", async () => {
      const jsm = await this.jsm();
      const out: string[] = [];
      for (const name of (await viewStreams(jsm)).own) {
        // (A stream removed meanwhile reads as one without a manifest: removing it again is a no-op.)
        const manifest = await readObjectInfo(jsm, viewVersionBucket(name), MANIFEST);
        if (manifest === null || manifest.deleted) out.push(name);
      }
      return out;
    });
  }

  private reservationBucket(): KV {
    if (!this.reserved)
      throw new LanemapError(
        "STORAGE",
        "published views in NATS: opened read-only, cannot reserve a version",
      );
    return this.reserved;
  }

  async remove(name: string): Promise<void> {
    if (parseVersionName(name) === null) throw notFound(name);
    if ((await this.current())?.name === name)
      throw new LanemapError("VIEW_IN_USE", `batch view ${name} is the current one`);
    // Retried like a read: every step is idempotent, a delete of what is gone already is a no-op.
    await this.read(`removing ${name}`, async () => {
      const jsm = await this.jsm();
      // The version's own bucket goes whole: a meta-layer delete, no purge inside a living stream.
      await deleteStream(jsm, objectStoreStreamName(viewVersionBucket(name)));
      // The legacy layout (a version published before per-version buckets). Its objects are not
      // deleted one by one (filtered purges in a long-lived stream, the removal that lost a node's
      // copy on nats-server 2.9.10: issue 14): the versions it still holds besides this one move to
      // buckets of their own (downloaded with their checksums, uploaded as a publish does), then
      // the legacy stream goes whole. Left as a stream of delete markers it also diverged after
      // node kills, 2 times in 2 in an operator's check.
      if (!(await streamExists(jsm, objectStoreStreamName(VIEW_OBJECT_BUCKET)))) return;
      const held = NatsPublishedViews.legacyNames(await this.objectsOf(jsm, VIEW_OBJECT_BUCKET));
      if (!held.includes(name)) return;
      const own = (await viewStreams(jsm)).own;
      for (const other of held) {
        if (other === name) continue;
        if (own.includes(other)) {
          if ((await this.homeOf(other)).bucket !== VIEW_OBJECT_BUCKET) continue; // moved already
          // A move that died half way: its bucket goes whole and the move starts over.
          await deleteStream(jsm, objectStoreStreamName(viewVersionBucket(other)));
        }
        const dir = await this.materialize(other);
        const manifest = batchManifestSchema.parse(JSON.parse(await readFile(join(dir, MANIFEST), "utf8")));
        this.logger?.info({ version: other }, "moving a view version out of the legacy shared bucket");
        await this.storeOwn(dir, other, manifest);
      }
      await deleteStream(jsm, objectStoreStreamName(VIEW_OBJECT_BUCKET));
    });
  }

  /** True when another process used the local copy `name` after this one last did, minutes ago at most. */
  private async usedElsewhere(name: string): Promise<boolean> {
    try {
      const { mtimeMs } = await stat(join(this.cacheDir, name));
      return Date.now() - mtimeMs < USED_ELSEWHERE_MS && this.usedStamps.get(name) !== mtimeMs;
    } catch {
      return false;
    }
  }

  async evictLocal(keep: readonly string[]): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.cacheDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const removed: string[] = [];
    for (const entry of entries) {
      // A partial folder of a download under way (in any process) belongs to it; stale ones go below.
      if (parseVersionName(entry) === null || keep.includes(entry) || this.downloads.has(entry)) continue;
      if (await this.usedElsewhere(entry)) continue;
      await rm(join(this.cacheDir, entry), { recursive: true, force: true });
      this.usedStamps.delete(entry);
      removed.push(entry);
    }
    removed.push(...(await removeStalePartials(this.cacheDir)));
    return removed;
  }

  /**
   * Calls `onChange` with CURRENT (at once) and with every later move, until `stop()`. Two paths,
   * whichever hears a move first: the KV watch (an ordered consumer) and a read of the key every
   * `pollMs` (a direct get, which any live replica answers: no consumer). A move the read sees
   * first means the watch is stalled — nats-server 2.9 may place its consumer on a dead node
   * (nats-server PR #7165), and an operator then saw switches take 0.3–21 s, unlogged (issue 14,
   * F7) — so that is said (warn, "CURRENT view pointer watch stalled") and the watch recreated.
   * Moves reach `onChange` once each, in revision order (watchKvKey, key-watch.ts).
   */
  watch(
    onChange: (pointer: ViewPointer | null) => void,
    options: { pollMs?: number } = {},
  ): { stop(): Promise<void> } {
    return watchKvKey(
      this.kv,
      VIEW_POINTER_KEY,
      {
        what: "CURRENT view pointer",
        valueOf: (e) => this.pointerOf(e),
        pollMs: options.pollMs ?? CURRENT_POLL_MS,
        logger: this.logger,
      },
      onChange,
    );
  }
}
