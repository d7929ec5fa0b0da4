/**
 * The model a worker classifies with, kept current by watching the registry's `current` pointer.
 *
 * A swap never disturbs a tile in flight: each tile takes the model once, when it starts, and keeps
 * that reference to the end; a newly activated model is loaded and its classifier built off to the
 * side, and only then does the reference change, so the next tile to start uses it. Activations are
 * applied in pointer order; one that cannot be loaded is reported and the worker keeps the model it
 * has.
 */
import type { Logger } from "pino";
import { describeError, type ActiveModelPointer, type ModelRegistry } from "../shared/index.js";
import type { EventHub, SpeedEvent } from "./events.js";
import type { SpeedMetrics } from "./metrics.js";

/** A model ready to classify with. */
export interface LoadedModel {
  readonly version: string;
}

/**
 * Makes a stored artifact ready to classify with (parse, validate, build the index wherever the
 * classification runs); rejects when the artifact cannot be used.
 */
export type ModelPreparer = (artifact: Uint8Array, version: string) => Promise<void>;

/** Keeps the active model of one worker. */
export class ActiveModel {
  private loaded: LoadedModel | null = null;
  private latestRevision = 0;
  private appliedRevision = 0;
  private chain: Promise<void> = Promise.resolve();
  private waiters: Array<(m: LoadedModel) => void> = [];
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly registry: ModelRegistry,
    private readonly prepare: ModelPreparer,
    private readonly logger: Logger,
    private readonly events: EventHub<SpeedEvent>,
    private readonly metrics: SpeedMetrics,
  ) {}

  /** Starts watching; resolves once the current model (if any) is loaded. */
  static async start(
    registry: ModelRegistry,
    prepare: ModelPreparer,
    logger: Logger,
    events: EventHub<SpeedEvent>,
    metrics: SpeedMetrics,
  ): Promise<ActiveModel> {
    const active = new ActiveModel(registry, prepare, logger, events, metrics);
    const initial = await registry.active();
    if (initial) {
      active.latestRevision = initial.revision;
      await active.apply(initial);
    }
    const watch = await registry.watch((c) => {
      if (!c || c.revision <= active.latestRevision) return;
      active.latestRevision = c.revision;
      active.chain = active.chain.then(() => active.apply(c));
    });
    active.stopWatch = () => watch.stop();
    return active;
  }

  /** The model new tiles use now, or null before any was activated. */
  get current(): LoadedModel | null {
    return this.loaded;
  }

  /** Resolves with the current model, waiting for the first activation if there is none yet. */
  whenReady(signal: AbortSignal): Promise<LoadedModel> {
    if (this.loaded) return Promise.resolve(this.loaded);
    return new Promise((resolve, reject) => {
      const done = (m: LoadedModel) => {
        signal.removeEventListener("abort", abort);
        resolve(m);
      };
      const abort = () => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(signal.reason);
      };
      if (signal.aborted) return abort();
      signal.addEventListener("abort", abort, { once: true });
      this.waiters.push(done);
    });
  }

  private async apply(pointer: ActiveModelPointer): Promise<void> {
    // A newer activation is queued behind this one: loading this one would be wasted work.
    if (pointer.revision < this.latestRevision || pointer.revision <= this.appliedRevision) return;
    if (this.loaded?.version === pointer.version) {
      this.appliedRevision = pointer.revision;
      return;
    }
    try {
      const artifact = await this.registry.artifact(pointer.version);
      await this.prepare(artifact, pointer.version);
      const model: LoadedModel = { version: pointer.version };
      const previous = this.loaded?.version ?? null;
      this.loaded = model;
      this.appliedRevision = pointer.revision;
      this.metrics.model.reset();
      this.metrics.model.set({ version: model.version }, 1);
      this.logger.info({ model: model.version, previous }, "model activated");
      this.events.emit({ type: "model-activated", version: model.version, previous });
      for (const w of this.waiters.splice(0)) w(model);
    } catch (err) {
      this.logger.error(
        { model: pointer.version, err },
        "cannot load the activated model; keeping the current one",
      );
      this.events.emit({ type: "model-failed", version: pointer.version, reason: describeError(err) });
    }
  }

  /** Stops watching the registry. */
  stop(): void {
    this.stopWatch?.();
  }
}
