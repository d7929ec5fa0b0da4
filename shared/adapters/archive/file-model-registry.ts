/**
 * The model registry on files, for a data directory without NATS (`lanemap train`, `batch run` on a
 * laptop): the same `ModelRegistry` interface as the NATS adapter, so nothing above it knows which.
 *
 *   <data>/models/<version>.json           the artifact (`serializeModel`), written once
 *   <data>/models/registry/<version>.json  its entry (classes, features, k, who/when, accuracy)
 *   <data>/models/ACTIVE                   the active pointer {version, activatedAt, revision}
 *   <data>/models/classes.json             the class catalogue (name -> stable id and colour)
 *
 * Artifact, then entry, then pointer — each written to a temporary name, fsynced and renamed (or
 * linked, create-only), with the folder fsynced — so the pointer never names a half-stored model and a
 * crash leaves the old pointer or the new one, never a torn one. The revision in the pointer grows by
 * one per activation; activations from several processes are serialised by a lock file (O_EXCL), so
 * two never write the same revision.
 *
 * Migration: a data directory from before the registry has only `models/*.json` artifacts and chose
 * "the newest by mtime". `open` registers every artifact that has no entry (trainedBy "unknown") and,
 * when there is no pointer yet, activates the artifact that old rule would have picked — once, so an
 * existing directory keeps applying the model it applied; from then on only the pointer decides.
 */
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { parseModel, serializeModel, type Model } from "../../classifier/index.js";
import { LanemapError } from "../../errors.js";
import {
  EMPTY_CATALOGUE,
  ModelConflictError,
  ModelNotFoundError,
  artifactDigest,
  mergeClasses,
  modelEntryOf,
  type ClassCatalogue,
  type ActiveModelPointer,
  type ModelEntry,
  type ModelMeta,
  type ModelRegistry,
  type RegistryWatch,
} from "../../models/index.js";
import { dataPaths } from "../../view/paths.js";
import { createFileDurable, writeFileDurable } from "./durable.js";
import { ShortLockHeldError, takeShortLock } from "./short-lock.js";

const VERSION = /^[0-9a-f]{16}$/;
/**
 * A lock older than this was left by a crashed process (an activation takes milliseconds); one whose
 * owner is provably dead on this host is taken over at once (short-lock.ts).
 */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

const PointerSchema = z
  .object({
    version: z.string().regex(VERSION),
    activatedAt: z.string(),
    revision: z.number().int().positive(),
  })
  .strict();

/** What `open` did to a directory from before the registry. */
export interface ModelMigration {
  /** Versions of artifacts that were registered (had no entry). */
  readonly registered: readonly string[];
  /**
   * Artifacts left unregistered because their class ids disagree with the catalogue the earlier
   * ones made (ids were "sorted names from 1": two models with different class sets disagree).
   */
  readonly skipped: readonly { readonly version: string; readonly reason: string }[];
  /** The version activated because there was no pointer (the newest artifact by mtime), or null. */
  readonly activated: string | null;
}

function registryError(message: string, cause?: unknown): LanemapError {
  return new LanemapError("MODEL_REGISTRY", message, cause === undefined ? undefined : { cause });
}

/** `ModelRegistry` on files under `<data>/models/`. */
export class FileModelRegistry implements ModelRegistry {
  readonly backend = "files" as const;
  private readonly dir: string;
  private readonly entriesDir: string;
  private readonly pointerPath: string;
  private readonly lockPath: string;
  private readonly cataloguePath: string;
  /** What `open` migrated (empty when the directory was already a registry). */
  migration: ModelMigration = { registered: [], skipped: [], activated: null };

  private constructor(dataDir: string) {
    this.dir = dataPaths(dataDir).models;
    this.entriesDir = join(this.dir, "registry");
    this.pointerPath = join(this.dir, "ACTIVE");
    this.lockPath = join(this.dir, ".ACTIVE.lock");
    this.cataloguePath = join(this.dir, "classes.json");
  }

  /** Opens the registry of a data directory (nothing is created until a model is put), migrating old artifacts. */
  static async open(dataDir: string): Promise<FileModelRegistry> {
    const registry = new FileModelRegistry(dataDir);
    registry.migration = await registry.migrate();
    return registry;
  }

  private artifactPath(version: string): string {
    if (!VERSION.test(version)) throw new ModelNotFoundError(version);
    return join(this.dir, `${version}.json`);
  }

  private entryPath(version: string): string {
    if (!VERSION.test(version)) throw new ModelNotFoundError(version);
    return join(this.entriesDir, `${version}.json`);
  }

  async put(model: Model, meta: ModelMeta = {}): Promise<{ entry: ModelEntry; created: boolean }> {
    const bytes = new TextEncoder().encode(serializeModel(model));
    const digest = artifactDigest(bytes);
    const existing = await this.get(model.version);
    if (existing) {
      if (existing.sha256 !== digest) throw new ModelConflictError(model.version);
      return { entry: existing, created: false };
    }
    // Catalogue first: a model whose ids disagree is refused before anything of it is stored.
    await this.withLock(async () => {
      const before = await this.classes();
      const after = mergeClasses(before, model.classes);
      if (after !== before) await writeFileDurable(this.cataloguePath, JSON.stringify(after, null, 2) + "\n");
    });
    const path = this.artifactPath(model.version);
    if (!(await createFileDurable(path, bytes))) {
      // Another process (or an old-style `train --out`) wrote the artifact first: same bytes or a conflict.
      if (artifactDigest(new Uint8Array(await readFile(path))) !== digest)
        throw new ModelConflictError(model.version);
    }
    const entry = modelEntryOf(model, bytes, meta);
    if (!(await createFileDurable(this.entryPath(model.version), JSON.stringify(entry, null, 2) + "\n"))) {
      const theirs = await this.get(model.version);
      if (!theirs) throw registryError(`model ${model.version}: entry vanished while being stored`);
      return { entry: theirs, created: false };
    }
    return { entry, created: true };
  }

  async classes(): Promise<ClassCatalogue> {
    let text: string;
    try {
      text = await readFile(this.cataloguePath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return EMPTY_CATALOGUE;
      throw registryError(`cannot read ${this.cataloguePath}`, err);
    }
    try {
      return JSON.parse(text) as ClassCatalogue;
    } catch (cause) {
      throw registryError(`${this.cataloguePath} is not JSON`, cause);
    }
  }

  async get(version: string): Promise<ModelEntry | undefined> {
    if (!VERSION.test(version)) return undefined;
    let text: string;
    try {
      text = await readFile(this.entryPath(version), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw registryError(`cannot read the registry entry of model ${version}`, err);
    }
    try {
      return JSON.parse(text) as ModelEntry;
    } catch (cause) {
      throw registryError(`registry entry ${this.entryPath(version)} is not JSON`, cause);
    }
  }

  async artifact(version: string): Promise<Uint8Array> {
    const entry = await this.get(version);
    if (!entry) throw new ModelNotFoundError(version);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.artifactPath(version)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new ModelNotFoundError(version);
      throw registryError(`cannot read model ${version}`, err);
    }
    if (artifactDigest(bytes) !== entry.sha256)
      throw registryError(`model ${version}: artifact does not match its recorded digest`);
    return bytes;
  }

  async model(version: string): Promise<Model> {
    return parseModel(new TextDecoder().decode(await this.artifact(version)));
  }

  async list(): Promise<ModelEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.entriesDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw registryError(`cannot read ${this.entriesDir}`, err);
    }
    const versions = names.filter((n) => VERSION.test(n.replace(/\.json$/, "")) && n.endsWith(".json"));
    const entries = await Promise.all(versions.map((n) => this.get(n.slice(0, -5))));
    return entries
      .filter((e): e is ModelEntry => e !== undefined)
      .sort((a, b) => a.storedAt.localeCompare(b.storedAt) || a.version.localeCompare(b.version));
  }

  async active(): Promise<ActiveModelPointer | null> {
    let text: string;
    try {
      text = await readFile(this.pointerPath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw registryError(`cannot read ${this.pointerPath}`, err);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw registryError(`${this.pointerPath} is not JSON`, cause);
    }
    const r = PointerSchema.safeParse(value);
    if (!r.success) throw registryError(`${this.pointerPath} is not an active-model pointer`, r.error);
    return r.data;
  }

  async activate(version: string): Promise<ActiveModelPointer> {
    if (!(await this.get(version))) throw new ModelNotFoundError(version);
    return this.withLock(async () => {
      const previous = await this.active();
      const pointer: ActiveModelPointer = {
        version,
        activatedAt: new Date().toISOString(),
        revision: (previous?.revision ?? 0) + 1,
      };
      await writeFileDurable(this.pointerPath, JSON.stringify(pointer) + "\n");
      return pointer;
    });
  }

  /**
   * Polls the pointer file (every `intervalMs`, default 500 ms): a rename replaces the file's inode,
   * which inotify-based fs.watch loses track of, and polling also works on network file systems.
   */
  async watch(
    onChange: (active: ActiveModelPointer | null) => void,
    intervalMs = 500,
  ): Promise<RegistryWatch> {
    let last = await this.active();
    if (last) onChange(last);
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.active()
        .then((now) => {
          if (now && now.revision !== last?.revision) {
            last = now;
            onChange(now);
          }
        })
        .catch(() => undefined) // A torn read cannot happen (rename); an unreadable pointer is skipped.
        .finally(() => {
          busy = false;
        });
    }, intervalMs);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.dir, { recursive: true });
    let release: () => Promise<void>;
    try {
      release = await takeShortLock(this.lockPath, {
        waitMs: LOCK_WAIT_MS,
        staleMs: STALE_LOCK_MS,
        pollMs: 10,
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        throw registryError(`no models folder ${this.dir}: store a model first`, err);
      if (err instanceof ShortLockHeldError) throw registryError(err.message, err);
      throw registryError(`cannot lock ${this.lockPath}`, err);
    }
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  /** Registers artifacts without entries; activates the newest-by-mtime once when there is no pointer. */
  private async migrate(): Promise<ModelMigration> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        return { registered: [], skipped: [], activated: null };
      throw registryError(`cannot read ${this.dir}`, err);
    }
    const found: { model: Model; mtimeMs: number; name: string }[] = [];
    for (const name of names) {
      if (!name.endsWith(".json") || name.startsWith(".") || name === "classes.json") continue;
      const path = join(this.dir, name);
      try {
        const bytes = new Uint8Array(await readFile(path));
        const { mtimeMs } = await stat(path);
        found.push({ model: parseModel(new TextDecoder().decode(bytes)), mtimeMs, name });
      } catch {
        // Not a model artifact: left alone, as before.
      }
    }
    // Newest first, the old rule's order: the model the directory applied defines the catalogue's
    // ids, and an older one whose "sorted names from 1" disagree is skipped (and said so).
    found.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
    const registered: string[] = [];
    const skipped: { version: string; reason: string }[] = [];
    for (const { model } of found) {
      if ((await this.get(model.version)) !== undefined) continue;
      try {
        await this.put(model);
      } catch (err) {
        if (!(err instanceof LanemapError) || err.code !== "MODEL") throw err;
        skipped.push({ version: model.version, reason: err.message });
        continue;
      }
      registered.push(model.version);
    }
    const newest = registered[0] === undefined ? undefined : { version: registered[0] };
    if (newest && (await this.active()) === null) {
      await this.activate(newest.version);
      return { registered, skipped, activated: newest.version };
    }
    return { registered, skipped, activated: null };
  }
}
