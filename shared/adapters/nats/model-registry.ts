/**
 * The model registry in NATS: which model every speed worker classifies with, and the artifacts.
 *
 * Two buckets, because the two jobs differ:
 * - artifacts go to an object store (MODEL_OBJECT_BUCKET), one object per version: a KV value must
 *   fit one message (max_payload, 1 MiB by default) and a model trained on 20k samples is more
 *   JSON than that; the object store chunks any size and checks a SHA-256 digest on read;
 * - the `current` pointer and one small record per version go to a KV bucket (MODEL_BUCKET): a
 *   single put swaps the pointer atomically, its revision orders activations, and a watch tells
 *   every worker at once, with no polling and nothing to restart.
 *
 * Upload first, then activate: a pointer never names an artifact that is not fully stored.
 */
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { StorageType, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { parseModel, serializeModel, type Model } from "../../classifier/index.js";
import { LanemapError, ModelError } from "../../errors.js";
import {
  atReplicas,
  checkReplicas,
  ensureReplicas,
  kvStreamName,
  objectStoreStreamName,
} from "./replicas.js";
import { LEADER_READS } from "./leader-reads.js";
import {
  EMPTY_CATALOGUE,
  ModelConflictError,
  ModelNotFoundError,
  mergeClasses,
  type ClassCatalogue,
  artifactDigest as sha256,
  modelEntryOf,
  type ActiveModelPointer,
  type ModelEntry,
  type ModelMeta,
  type ModelRegistry,
  type RegistryWatch,
} from "../../models/index.js";
import { watchKvKey } from "./key-watch.js";
import { listKvKeys, putObjectOnce, readObjectBytes } from "./object-reads.js";
import { retryTransient } from "./transient.js";
import {
  CLASS_CATALOGUE_KEY,
  CURRENT_MODEL_KEY,
  MODEL_BUCKET,
  MODEL_OBJECT_BUCKET,
  MODEL_VERSION_KEY_PREFIX,
} from "./names.js";

/** What the registry knows about one uploaded version. */
export interface ModelRecord {
  readonly version: string;
  /** SHA-256 (hex) of the artifact bytes. */
  readonly sha256: string;
  readonly bytes: number;
  readonly uploadedAt: string;
  /** Free-form facts for `lanemap model list` (classes, samples, k, ...). */
  readonly summary: Readonly<Record<string, unknown>>;
  /** The registry entry (classes, features, k, who/when, accuracy); absent on records stored before it. */
  readonly entry?: ModelEntry;
}

/** The active model as the pointer says (the registry's `ActiveModelPointer`). */
export type CurrentModel = ActiveModelPointer;

export { ModelConflictError, ModelNotFoundError };

/** Request timeout of the registry's stream API reads (records()): they take milliseconds when answered. */
const REGISTRY_READ_TIMEOUT_MS = 2_000;

const KEY_TOKEN = /^[-_=A-Za-z0-9]+(\.[-_=A-Za-z0-9]+)*$/;

/** The KV key of a version's record; a version must be usable as KV key tokens. */
function versionKey(version: string): string {
  if (!KEY_TOKEN.test(version) || version.length > 200)
    throw new ModelError(
      `model version "${version}" cannot be a registry key: use letters, digits, "-", "_", "=" and inner dots`,
    );
  return `${MODEL_VERSION_KEY_PREFIX}.${version}`;
}

function parseJson<T>(e: KvEntry, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(e.value)) as T;
  } catch (cause) {
    throw new LanemapError("MODEL_REGISTRY", `registry entry ${what} is not JSON`, { cause });
  }
}

/** The model registry in NATS: `ModelRegistry` on a KV bucket and an object store. */
export class NatsModelRegistry implements ModelRegistry {
  readonly backend = "nats" as const;
  private readonly kv: KV;
  private readonly nc: NatsConnection;
  private readonly logger: Logger | undefined;

  private constructor(kv: KV, nc: NatsConnection, logger: Logger | undefined) {
    this.kv = kv;
    this.nc = nc;
    this.logger = logger;
  }

  /**
   * Opens the registry, creating its buckets (file storage) when absent. With `replicas`
   * (`config.storage.replicas`) both buckets (the KV of pointers and records, and the artifacts'
   * object store) are brought to that many replicas, in place when they exist; without, new
   * buckets get 1 and existing ones keep theirs. `logger` hears (at warn) every retry of a read
   * that met a transient broker error, named.
   * @throws LanemapError (NATS_SETUP) when the replicas cannot be set.
   */
  static async open(
    nc: NatsConnection,
    options: { replicas?: number; logger?: Logger } = {},
  ): Promise<NatsModelRegistry> {
    const { replicas } = options;
    const r = replicas === undefined ? {} : { replicas: checkReplicas(replicas) };
    // History 16 keeps the last activations of `current` visible to operators (rollback).
    const kv = await atReplicas(kvStreamName(MODEL_BUCKET), replicas, () =>
      new Kvm(nc).create(MODEL_BUCKET, { history: 16, storage: StorageType.File, ...r, ...LEADER_READS }),
    );
    // The artifacts' store: created here, written by putObjectOnce, read by readObjectBytes.
    await atReplicas(objectStoreStreamName(MODEL_OBJECT_BUCKET), replicas, () =>
      new Objm(nc).create(MODEL_OBJECT_BUCKET, { storage: StorageType.File, ...r }),
    );
    if (replicas !== undefined) {
      const jsm = await jetstreamManager(nc);
      await ensureReplicas(jsm, kvStreamName(MODEL_BUCKET), replicas, options.logger);
      await ensureReplicas(jsm, objectStoreStreamName(MODEL_OBJECT_BUCKET), replicas, options.logger);
    }
    return new NatsModelRegistry(kv, nc, options.logger);
  }

  /**
   * Stores an artifact under its version (idempotent: the same bytes again is a no-op).
   * @throws ModelConflictError when the version exists with different bytes.
   */
  async upload(
    version: string,
    artifact: Uint8Array,
    summary: Record<string, unknown> = {},
    entry?: ModelEntry,
  ): Promise<{ record: ModelRecord; created: boolean }> {
    const key = versionKey(version);
    const digest = sha256(artifact);
    const existing = await this.record(version);
    if (existing) {
      if (existing.sha256 !== digest) throw new ModelConflictError(version);
      // The record is written after the object, so an existing record means a complete artifact.
      return { record: existing, created: false };
    }
    // An upload that died between its object and its record left the object: a put over its name
    // would purge those chunks in place (a filtered STREAM.PURGE, which lost a node's copy on
    // nats-server 2.9.10: issue 14), so the same bytes are not written again.
    // putObjectOnce, not putBlob: nats.js also purges a failed put's chunks, the same filtered purge.
    await putObjectOnce(this.nc, MODEL_OBJECT_BUCKET, version, artifact, {
      description: `lanemap model ${version}`,
    });
    const record: ModelRecord = {
      version,
      sha256: digest,
      bytes: artifact.length,
      uploadedAt: entry?.storedAt ?? new Date().toISOString(),
      summary,
      ...(entry === undefined ? {} : { entry }),
    };
    try {
      // create() fails if another process recorded the version first: then compare with theirs.
      await this.kv.create(key, JSON.stringify(record));
    } catch (err) {
      const theirs = await this.record(version);
      if (!theirs) throw err;
      if (theirs.sha256 !== digest) throw new ModelConflictError(version);
      return { record: theirs, created: false };
    }
    return { record, created: true };
  }

  /**
   * The record of a version, or undefined. A miss is confirmed by the bucket stream's leader
   * (STREAM.MSG.GET): `KV.get` is a direct get, which any replica answers, and a follower a write
   * behind answered "no such version" to an `activate` right after its `upload` on an R3 cluster
   * (seen once in cluster-scale.test.ts). A hit is final: a record is written once and never changed.
   */
  async record(version: string): Promise<ModelRecord | undefined> {
    const key = versionKey(version);
    const e = await retryTransient(
      `reading the registry record of model ${version} (${kvStreamName(MODEL_BUCKET)})`,
      () => this.kv.get(key),
      this.logger ? { logger: this.logger } : {},
    );
    if (e && e.operation === "PUT" && e.length > 0) return parseJson<ModelRecord>(e, version);
    const m = await retryTransient(
      `reading the registry record of model ${version}`,
      async () =>
        (await jetstreamManager(this.nc, { checkAPI: false })).streams.getMessage(
          kvStreamName(MODEL_BUCKET),
          { last_by_subj: `$KV.${MODEL_BUCKET}.${key}` },
        ),
      this.logger ? { logger: this.logger } : {},
    );
    const op = m?.header?.get("KV-Operation");
    if (!m || op === "DEL" || op === "PURGE" || m.data.length === 0) return undefined;
    try {
      return JSON.parse(new TextDecoder().decode(m.data)) as ModelRecord;
    } catch (cause) {
      throw new LanemapError("MODEL_REGISTRY", `registry entry ${version} is not JSON`, { cause });
    }
  }

  /**
   * Every uploaded version, oldest upload first. Read without a consumer (the bucket's stream info
   * for the keys, a get per record), retried through a transient broker error for up to 30 s.
   * @throws LanemapError NATS_CONNECT "reading the model registry: <broker message>" when it still fails.
   */
  async records(): Promise<ModelRecord[]> {
    const records = await retryTransient(
      `reading the model registry (${kvStreamName(MODEL_BUCKET)})`,
      async () => {
        const keys = await listKvKeys(await this.jsm(), MODEL_BUCKET, `${MODEL_VERSION_KEY_PREFIX}.>`);
        // A deleted record's key is listed too (its marker is a message): record() reads it as undefined.
        return Promise.all(keys.map((k) => this.record(k.slice(MODEL_VERSION_KEY_PREFIX.length + 1))));
      },
      this.logger ? { logger: this.logger } : {},
    );
    return records
      .filter((r): r is ModelRecord => r !== undefined)
      .sort((a, b) => a.uploadedAt.localeCompare(b.uploadedAt) || a.version.localeCompare(b.version));
  }

  /**
   * A manager for the stream API reads: without nats.js's account-info round trip (the meta leader
   * answers it, and it is being re-elected when its node just died) and with a 2 s request timeout,
   * so a request lost with a dying node is retried while the caller still waits.
   */
  private jsm(): Promise<JetStreamManager> {
    return jetstreamManager(this.nc, { checkAPI: false, timeout: REGISTRY_READ_TIMEOUT_MS });
  }

  /**
   * The artifact bytes of a version, checked against the recorded digest.
   * @throws ModelNotFoundError when the version or its artifact is missing.
   */
  async artifact(version: string): Promise<Uint8Array> {
    const record = await this.record(version);
    if (!record) throw new ModelNotFoundError(version);
    // No consumer (object-reads.ts): the stream's leader answers; a request lost with a dying
    // node is given up (transient) and tried again, a warning naming it.
    const bytes = await retryTransient(
      `reading model ${version}'s artifact`,
      () => readObjectBytes(this.nc, MODEL_OBJECT_BUCKET, version),
      this.logger ? { logger: this.logger } : {},
    );
    if (!bytes) throw new ModelNotFoundError(version);
    if (sha256(bytes) !== record.sha256)
      throw new LanemapError(
        "MODEL_REGISTRY",
        `model ${version}: artifact does not match its recorded digest`,
      );
    return bytes;
  }

  /**
   * Points `current` at an uploaded version; workers watching switch to it.
   * @throws ModelNotFoundError when the version was not uploaded.
   */
  async activate(version: string): Promise<ActiveModelPointer> {
    if (!(await this.record(version))) throw new ModelNotFoundError(version);
    const activatedAt = new Date().toISOString();
    const revision = await this.kv.put(CURRENT_MODEL_KEY, JSON.stringify({ version, activatedAt }));
    return { version, activatedAt, revision };
  }

  /**
   * The active model, or null when none was activated yet. Read through the bucket stream's leader
   * (leader-reads.ts), retried through a leader election for up to 30 s, each retry logged.
   * @throws LanemapError NATS_CONNECT naming the stream and key when it still fails.
   */
  async current(): Promise<ActiveModelPointer | null> {
    const e = await retryTransient(
      `reading the active model pointer (${kvStreamName(MODEL_BUCKET)} key ${CURRENT_MODEL_KEY})`,
      () => this.kv.get(CURRENT_MODEL_KEY),
      this.logger ? { logger: this.logger } : {},
    );
    return e ? this.toCurrent(e) : null;
  }

  private toCurrent(e: KvEntry): ActiveModelPointer | null {
    if (e.operation !== "PUT" || e.length === 0) return null;
    const v = parseJson<{ version?: unknown; activatedAt?: unknown }>(e, CURRENT_MODEL_KEY);
    if (typeof v.version !== "string") return null;
    return {
      version: v.version,
      activatedAt: typeof v.activatedAt === "string" ? v.activatedAt : e.created.toISOString(),
      revision: e.revision,
    };
  }

  /**
   * Calls `onChange` with the current pointer (at once: null when none was activated yet) and with
   * every later activation, until `stop()`, each once and in revision order. Two paths, whichever
   * hears an activation first (watchKvKey, key-watch.ts): the KV watch, and a KV get of `current`
   * every `pollMs` (default 1 s; a direct get, no consumer). Resolves at once: it never waits for
   * the watch's consumer, which nats-server 2.9 may place on an offline peer (nats-server PR #7165)
   * — every worker and serve start waited up to 60 s on its creation with a node down (issue 14);
   * a stalled watch is logged ("active model pointer watch stalled") and recreated.
   */
  async watchCurrent(
    onChange: (current: ActiveModelPointer | null) => void,
    options: { pollMs?: number } = {},
  ): Promise<{ stop(): void }> {
    const watch = watchKvKey(
      this.kv,
      CURRENT_MODEL_KEY,
      {
        what: "active model pointer",
        valueOf: (e) => (e ? this.toCurrent(e) : null),
        ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
        logger: this.logger,
      },
      onChange,
    );
    return { stop: () => void watch.stop() };
  }

  async classes(): Promise<ClassCatalogue> {
    const e = await this.kv.get(CLASS_CATALOGUE_KEY);
    if (!e || e.operation !== "PUT" || e.length === 0) return EMPTY_CATALOGUE;
    return parseJson<ClassCatalogue>(e, CLASS_CATALOGUE_KEY);
  }

  /**
   * Adds the classes of a model to the catalogue: compare-and-set on the key's revision, retried
   * when another process changed it meanwhile, so two trainings never give one id to two names.
   * @throws ModelError when the model's ids disagree with the catalogue.
   */
  private async mergeCatalogue(classes: Model["classes"]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const e = await this.kv.get(CLASS_CATALOGUE_KEY);
      const live = e && e.operation === "PUT" && e.length > 0;
      const before = live ? parseJson<ClassCatalogue>(e, CLASS_CATALOGUE_KEY) : EMPTY_CATALOGUE;
      const after = mergeClasses(before, classes);
      if (after === before) return;
      try {
        if (live) await this.kv.update(CLASS_CATALOGUE_KEY, JSON.stringify(after), e.revision);
        else await this.kv.create(CLASS_CATALOGUE_KEY, JSON.stringify(after));
        return;
      } catch (err) {
        if (attempt >= 20) throw err; // Not a lost race: a real failure.
      }
    }
  }

  async put(model: Model, meta: ModelMeta = {}): Promise<{ entry: ModelEntry; created: boolean }> {
    // Catalogue first: a model whose ids disagree is refused before anything of it is stored.
    await this.mergeCatalogue(model.classes);
    const bytes = new TextEncoder().encode(serializeModel(model));
    const entry = modelEntryOf(model, bytes, meta);
    const summary = { classes: model.classes.map((c) => c.name), samples: entry.samples, k: model.k };
    const { record, created } = await this.upload(model.version, bytes, summary, entry);
    return { entry: record.entry ?? (await this.entryOf(record)), created };
  }

  async get(version: string): Promise<ModelEntry | undefined> {
    const record = await this.record(version);
    return record === undefined ? undefined : (record.entry ?? (await this.entryOf(record)));
  }

  async model(version: string): Promise<Model> {
    return parseModel(new TextDecoder().decode(await this.artifact(version)));
  }

  async list(): Promise<ModelEntry[]> {
    return Promise.all((await this.records()).map((r) => r.entry ?? this.entryOf(r)));
  }

  active(): Promise<ActiveModelPointer | null> {
    return this.current();
  }

  watch(onChange: (active: ActiveModelPointer | null) => void): Promise<RegistryWatch> {
    return this.watchCurrent(onChange);
  }

  /** The entry of a record stored before records carried one: derived from its artifact. */
  private async entryOf(record: ModelRecord): Promise<ModelEntry> {
    const bytes = await this.artifact(record.version);
    return modelEntryOf(parseModel(new TextDecoder().decode(bytes)), bytes, {}, new Date(record.uploadedAt));
  }
}
