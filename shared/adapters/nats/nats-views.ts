/**
 * Published batch views in NATS (the nats backend of `PublishedViews`), so every machine that
 * reaches the broker reaches them, like Druid historicals loading segments from deep storage:
 *
 * - each version's files are objects of the object store VIEW_OBJECT_BUCKET named
 *   `<version>/<file>`; manifest.json goes up LAST, so a version is listed (and can be made current)
 *   only once every file it names is stored;
 * - CURRENT is the key `current` of the KV bucket VIEW_POINTER_BUCKET, value `{"name":"v000042"}`;
 *   its revision is the KV revision, and a move with an expected revision is a KV `update` on that
 *   revision (`create` when no pointer is expected), which the server refuses when the key moved:
 *   two coordinators can never both publish over the same pointer unseen;
 * - `materialize` downloads a version once into `<cacheDir>/<name>.partial/`, checks every file's
 *   size and sha256 against the manifest, then renames the folder to `<cacheDir>/<name>`: a crash
 *   leaves only a `.partial` (removed on the next try), a complete folder is reused.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { jetstreamManager, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { LanemapError } from "../../errors.js";
import {
  ViewPointerConflictError,
  type PublishedVersion,
  type PublishedViews,
  type ViewPointer,
} from "../../storage/index.js";
import { parseVersionName } from "../../view/paths.js";
import { BATCH_VIEW_FILES } from "../../view/batch-schema.js";
import { batchManifestSchema, type BatchManifest } from "../../view/types.js";
import { serverMaxPayload } from "./connection.js";
import { listObjectInfos, readObjectBytes, readObjectToFile, type StoredObjectInfo } from "./object-reads.js";
import { READ_RETRIES, guarded, storageError } from "./guarded.js";
import { atReplicas, ensureReplicas, kvStreamName, objectStoreStreamName } from "./replicas.js";
import { LEADER_READS } from "./leader-reads.js";
import { watchKvKey } from "./key-watch.js";
import { VIEW_OBJECT_BUCKET, VIEW_POINTER_BUCKET, VIEW_POINTER_KEY } from "./names.js";

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

/** Request timeout of the stream API reads of list() (see NatsPublishedViews.jsm). */
const VIEW_READ_TIMEOUT_MS = 2_000;

/** A read of the store, retried on a timeout (guarded.ts, each retry said to `logger`), its failure as STORAGE. */
function viewRead<T>(what: string, op: () => Promise<T>, logger?: Logger): Promise<T> {
  return guarded(`published views in NATS: ${what} failed`, op, READ_RETRIES, logger);
}

/** A write or set-up step, its failure as STORAGE (not retried). */
function viewWrite<T>(what: string, op: () => Promise<T>): Promise<T> {
  return guarded(`published views in NATS: ${what} failed`, op);
}

function notFound(name: string): LanemapError {
  return new LanemapError("VIEW_NOT_FOUND", `batch view ${name} does not exist or is incomplete`);
}

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

/** Published batch views on a JetStream object store and a KV pointer. */
export class NatsPublishedViews implements PublishedViews {
  readonly backend = "nats" as const;
  /** One download per version at a time in this process (serving and the runner may both ask). */
  private readonly downloads = new Map<string, Promise<string>>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly objects: ObjectStore,
    private readonly kv: KV,
    private readonly cacheDir: string,
    private readonly logger?: Logger,
  ) {}

  /**
   * Opens (creating when absent, file storage, `replicas` copies) the two buckets.
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
        const objects = await atReplicas(objectStoreStreamName(VIEW_OBJECT_BUCKET), replicas, () =>
          new Objm(nc).create(VIEW_OBJECT_BUCKET, { storage: StorageType.File, replicas }),
        );
        // History keeps the last moves of CURRENT visible to operators.
        const kv = await atReplicas(kvStreamName(VIEW_POINTER_BUCKET), replicas, () =>
          new Kvm(nc).create(VIEW_POINTER_BUCKET, {
            history: 16,
            storage: StorageType.File,
            replicas,
            ...LEADER_READS,
          }),
        );
        if (options.replicas !== undefined) {
          // create() leaves an existing bucket's replicas as they are: bring both to the deployment's.
          const jsm = await jetstreamManager(nc);
          await ensureReplicas(jsm, objectStoreStreamName(VIEW_OBJECT_BUCKET), replicas, options.logger);
          await ensureReplicas(jsm, kvStreamName(VIEW_POINTER_BUCKET), replicas, options.logger);
        }
        return new NatsPublishedViews(nc, objects, kv, options.cacheDir, options.logger);
      },
      options.logger,
    );
  }

  /**
   * Opens the two buckets for reading only (`lanemap ops status`): creates nothing, checks and
   * rescales nothing, so it needs no meta-leader round trip, which a node loss delays.
   * @throws LanemapError STORAGE when the broker is unreachable.
   */
  static async openExisting(nc: NatsConnection, options: { cacheDir: string }): Promise<NatsPublishedViews> {
    return viewRead("opening the view buckets", async () => {
      const objects = await new Objm(nc).open(VIEW_OBJECT_BUCKET, false);
      const kv = await new Kvm(nc).open(VIEW_POINTER_BUCKET);
      return new NatsPublishedViews(nc, objects, kv, options.cacheDir);
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
   * The manifest of a complete version (manifest stored and every file it names stored), or null.
   * The manifest's info (`listed` by list(), else its last meta message) and, when it fits one
   * chunk, its bytes are read without a consumer (object-reads.ts): a publish, a switch and
   * `setCurrent` each read it, and a consumer on a dead node made a switch wait 11–37 s (issue 14, F7).
   */
  private async manifestOf(
    name: string,
    stored?: Map<string, number>,
    listed?: StoredObjectInfo,
  ): Promise<BatchManifest | null> {
    if (parseVersionName(name) === null) return null;
    const bytes = await this.objectBytes(`${name}/${MANIFEST}`, listed);
    if (!bytes) return null;
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return null;
    }
    const parsed = batchManifestSchema.safeParse(json);
    if (!parsed.success || parsed.data.name !== name) return null;
    for (const [file, { bytes: size }] of Object.entries(parsed.data.files)) {
      const have = stored
        ? stored.get(`${name}/${file}`)
        : ((await this.objects.info(`${name}/${file}`)) ?? undefined)?.size;
      if (have !== size) return null;
    }
    return parsed.data;
  }

  /**
   * An object's bytes, or null when it is absent: read without a consumer (object-reads.ts; its
   * info from `listed`, else its last meta message), each request bounded as the stream API reads.
   */
  private async objectBytes(objectName: string, listed?: StoredObjectInfo): Promise<Uint8Array | null> {
    return readObjectBytes(this.nc, VIEW_OBJECT_BUCKET, objectName, {
      idleMs: VIEW_READ_TIMEOUT_MS,
      ...(listed ? { info: listed } : {}),
    });
  }

  async list(): Promise<PublishedVersion[]> {
    return this.read("listing views", async () => {
      // Not ObjectStore.list(): its consumer may sit on a dead node (object-reads.ts).
      const jsm = await this.jsm();
      const infos = (await listObjectInfos(jsm, VIEW_OBJECT_BUCKET)).filter((i) => !i.deleted);
      const stored = new Map(infos.map((i) => [i.name, i.size]));
      const byName = new Map(infos.map((i) => [i.name, i]));
      const names = infos
        .filter((i) => i.name.endsWith(`/${MANIFEST}`))
        .map((i) => i.name.slice(0, -MANIFEST.length - 1))
        .filter((n) => parseVersionName(n) !== null)
        .sort();
      const out: PublishedVersion[] = [];
      for (const name of names) {
        const manifest = await this.manifestOf(name, stored, byName.get(`${name}/${MANIFEST}`));
        if (manifest) out.push({ name, version: manifest.version, manifest });
      }
      return out;
    });
  }

  /**
   * The published versions that lost objects (what a replica that diverged takes from the user):
   * a version whose manifest is stored but whose manifest cannot be read, or a file it names is
   * missing, of another size, or has fewer chunk messages in the stream than its info counts; and the
   * version CURRENT names when its manifest is missing. list() leaves out a version missing a file
   * and lists one missing chunks (it reads infos only; the download's checksum fails later), and says
   * neither: `lanemap ops status` reports these. A version without
   * a manifest is not one (a publish in progress stores it last). One STREAM.INFO for the chunk
   * counts, besides list()'s reads.
   */
  async damaged(): Promise<DamagedVersion[]> {
    return this.read("checking the published views' objects", async () => {
      const jsm = await this.jsm();
      const infos = (await listObjectInfos(jsm, VIEW_OBJECT_BUCKET)).filter((i) => !i.deleted);
      const byName = new Map(infos.map((i) => [i.name, i]));
      const chunkSubjects = (
        await jsm.streams.info(objectStoreStreamName(VIEW_OBJECT_BUCKET), {
          subjects_filter: `$O.${VIEW_OBJECT_BUCKET}.C.>`,
        })
      ).state.subjects;
      const chunksOf = (i: StoredObjectInfo) => chunkSubjects?.[`$O.${VIEW_OBJECT_BUCKET}.C.${i.nuid}`] ?? 0;
      const out: DamagedVersion[] = [];
      const names = infos
        .filter((i) => i.name.endsWith(`/${MANIFEST}`))
        .map((i) => i.name.slice(0, -MANIFEST.length - 1))
        .filter((n) => parseVersionName(n) !== null)
        .sort();
      for (const name of names) {
        const listed = byName.get(`${name}/${MANIFEST}`)!;
        const problems: string[] = [];
        if (chunksOf(listed) < listed.chunks)
          problems.push(`${MANIFEST} has ${chunksOf(listed)} of ${listed.chunks} chunks`);
        const bytes = problems.length > 0 ? null : await this.objectBytes(`${name}/${MANIFEST}`, listed);
        const parsed = bytes
          ? batchManifestSchema.safeParse(
              (() => {
                try {
                  return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
                } catch {
                  return null;
                }
              })(),
            )
          : null;
        if (!parsed?.success) {
          if (problems.length === 0) problems.push(`${MANIFEST} unreadable`);
        } else
          for (const [file, { bytes: size }] of Object.entries(parsed.data.files)) {
            const i = byName.get(`${name}/${file}`);
            if (!i) problems.push(`${file} missing`);
            else if (i.size !== size) problems.push(`${file} has ${i.size} bytes, the manifest ${size}`);
            else if (chunksOf(i) < i.chunks)
              problems.push(`${file} has ${chunksOf(i)} of ${i.chunks} chunks`);
          }
        if (problems.length > 0) out.push({ name, problems });
      }
      const current = this.pointerOf(await this.kv.get(VIEW_POINTER_KEY));
      if (current && !names.includes(current.name))
        out.push({ name: current.name, problems: [`CURRENT names it, and its ${MANIFEST} is missing`] });
      return out;
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

  private async download(name: string): Promise<string> {
    const target = join(this.cacheDir, name);
    if (parseVersionName(name) === null) throw notFound(name);
    if (await hasManifest(target)) return target;
    const manifest = await this.read(`reading ${name}`, () => this.manifestOf(name));
    if (!manifest) throw notFound(name);
    const partial = `${target}.partial`;
    await rm(partial, { recursive: true, force: true });
    await rm(target, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    for (const [file, expected] of Object.entries(manifest.files)) {
      const path = join(partial, file);
      await this.read(`downloading ${name}/${file}`, async () => {
        // No consumer (object-reads.ts): written as its chunks come, checked against its info.
        if (!(await readObjectToFile(this.nc, VIEW_OBJECT_BUCKET, `${name}/${file}`, path)))
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
      const bytes = await this.objectBytes(`${name}/${MANIFEST}`);
      if (!bytes) throw notFound(name);
      await mkdir(partial, { recursive: true });
      await writeFile(join(partial, MANIFEST), bytes);
    });
    await rename(partial, target);
    return target;
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
    // Idempotent: a version whose manifest is stored was uploaded completely before.
    if (await this.read(`reading ${name}`, () => this.manifestOf(name))) return;
    const chunk = Math.min(128 * 1024, serverMaxPayload(this.nc) - 4096);
    for (const file of Object.keys(manifest.files)) {
      await viewWrite(`uploading ${name}/${file}`, () =>
        this.objects.put(
          { name: `${name}/${file}`, options: { max_chunk_size: chunk } },
          Readable.toWeb(createReadStream(join(localDir, file))) as unknown as ReadableStream<Uint8Array>,
        ),
      );
    }
    const manifestBytes = await readFile(join(localDir, MANIFEST));
    await viewWrite(`uploading ${name}/${MANIFEST}`, () =>
      this.objects.putBlob(
        { name: `${name}/${MANIFEST}`, options: { max_chunk_size: chunk } },
        new Uint8Array(manifestBytes),
      ),
    );
  }

  async setCurrent(name: string, expectedRevision?: number | null): Promise<ViewPointer> {
    if (!(await this.read(`reading ${name}`, () => this.manifestOf(name)))) throw notFound(name);
    const value = JSON.stringify({ name });
    let revision: number;
    try {
      revision =
        expectedRevision === undefined
          ? await this.kv.put(VIEW_POINTER_KEY, value)
          : expectedRevision === null
            ? await this.kv.create(VIEW_POINTER_KEY, value)
            : await this.kv.update(VIEW_POINTER_KEY, value, expectedRevision);
    } catch (err) {
      // The server refuses a wrong revision; anything else (broker gone) is a storage failure.
      const actual = await this.current();
      if (expectedRevision !== undefined && (actual?.revision ?? null) !== expectedRevision)
        throw new ViewPointerConflictError(name, expectedRevision, actual);
      throw storageError("published views in NATS: moving CURRENT failed", err);
    }
    return { name, revision };
  }

  async remove(name: string): Promise<void> {
    if (parseVersionName(name) === null) throw notFound(name);
    if ((await this.current())?.name === name)
      throw new LanemapError("VIEW_IN_USE", `batch view ${name} is the current one`);
    // Listed with the stream API (no consumer: object-reads.ts) and retried like a read: every
    // step is idempotent, a delete of what is gone already is a no-op.
    await this.read(`removing ${name}`, async () => {
      const prefix = `${name}/`;
      const names = (await listObjectInfos(await this.jsm(), VIEW_OBJECT_BUCKET))
        .filter((i) => !i.deleted && i.name.startsWith(prefix))
        .map((i) => i.name);
      // The manifest goes first: the version stops being listed before any of its files goes.
      names.sort((a, b) => Number(b.endsWith(`/${MANIFEST}`)) - Number(a.endsWith(`/${MANIFEST}`)));
      for (const n of names) await this.objects.delete(n);
    });
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
      // A `.partial` of a download under way belongs to it; a stale one goes with its next try.
      if (parseVersionName(entry) === null || keep.includes(entry) || this.downloads.has(entry)) continue;
      await rm(join(this.cacheDir, entry), { recursive: true, force: true });
      removed.push(entry);
    }
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
