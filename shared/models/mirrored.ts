/**
 * A registry that writes through to a second one: the NATS registry (primary, what speed workers
 * watch) mirrored to the data directory's files, so a process that runs without NATS (`lanemap batch
 * run` on the same data directory) reads the same active model as the lanes that have it. Reads go
 * to the primary only; a write is done on the primary first, then on the mirror.
 */
import type { Model } from "../classifier/index.js";
import type { ClassCatalogue } from "./catalogue.js";
import type {
  ActiveModelPointer,
  ModelEntry,
  ModelMeta,
  ModelRegistry,
  ModelRegistryBackend,
  RegistryWatch,
} from "./registry.js";

/** What the primary has that the mirror lacks is copied over by `reconcileRegistries`. */
export class MirroredModelRegistry implements ModelRegistry {
  readonly backend: ModelRegistryBackend;

  constructor(
    private readonly primary: ModelRegistry,
    private readonly mirror: ModelRegistry,
  ) {
    this.backend = primary.backend;
  }

  async put(model: Model, meta?: ModelMeta): Promise<{ entry: ModelEntry; created: boolean }> {
    const out = await this.primary.put(model, meta);
    await this.mirror.put(model, metaOf(out.entry));
    return out;
  }

  classes(): Promise<ClassCatalogue> {
    return this.primary.classes();
  }

  get(version: string): Promise<ModelEntry | undefined> {
    return this.primary.get(version);
  }

  model(version: string): Promise<Model> {
    return this.primary.model(version);
  }

  artifact(version: string): Promise<Uint8Array> {
    return this.primary.artifact(version);
  }

  list(): Promise<ModelEntry[]> {
    return this.primary.list();
  }

  active(): Promise<ActiveModelPointer | null> {
    return this.primary.active();
  }

  async activate(version: string): Promise<ActiveModelPointer> {
    const pointer = await this.primary.activate(version);
    if ((await this.mirror.get(version)) === undefined) {
      const entry = await this.primary.get(version);
      await this.mirror.put(await this.primary.model(version), entry ? metaOf(entry) : {});
    }
    await this.mirror.activate(version);
    return pointer;
  }

  watch(onChange: (active: ActiveModelPointer | null) => void): Promise<RegistryWatch> {
    return this.primary.watch(onChange);
  }
}

/** The trainer's facts of an entry, to store the same model elsewhere with them. */
export function metaOf(entry: ModelEntry): ModelMeta {
  return {
    trainedBy: entry.trainedBy,
    ...(entry.labelSet === undefined ? {} : { labelSet: entry.labelSet }),
    ...(entry.accuracy === undefined ? {} : { accuracy: entry.accuracy }),
  };
}

/**
 * Makes two registries agree: each stores the versions only the other has (with their meta), and the
 * later activation (by `activatedAt`) wins on both sides. Used when a process opens the NATS registry
 * of a data directory whose files were written without NATS (`lanemap train --activate` before
 * `lanemap start`), and the reverse.
 * @returns what changed, for the log.
 */
export async function reconcileRegistries(
  a: ModelRegistry,
  b: ModelRegistry,
): Promise<{ copied: string[]; activated: { backend: ModelRegistryBackend; version: string } | null }> {
  const copied: string[] = [];
  const [inA, inB] = await Promise.all([a.list(), b.list()]);
  const inBSet = new Set(inB.map((e) => e.version));
  const inASet = new Set(inA.map((e) => e.version));
  for (const e of inA)
    if (!inBSet.has(e.version)) {
      await b.put(await a.model(e.version), metaOf(e));
      copied.push(e.version);
    }
  for (const e of inB)
    if (!inASet.has(e.version)) {
      await a.put(await b.model(e.version), metaOf(e));
      copied.push(e.version);
    }
  const [pa, pb] = await Promise.all([a.active(), b.active()]);
  if (pa && pa.version !== pb?.version && (!pb || pa.activatedAt > pb.activatedAt)) {
    await b.activate(pa.version);
    return { copied, activated: { backend: b.backend, version: pa.version } };
  }
  if (pb && pb.version !== pa?.version && (!pa || pb.activatedAt > pa.activatedAt)) {
    await a.activate(pb.version);
    return { copied, activated: { backend: a.backend, version: pb.version } };
  }
  return { copied, activated: null };
}
