/**
 * The model a worker classifies with, kept current by watching the registry's `current` pointer.
 *
 * A swap never disturbs a tile in flight: each tile takes the model once, when it starts, and keeps
 * that reference to the end; a newly activated model is loaded and its classifier built off to the
 * side, and only then does the reference change, so the next tile to start uses it. Activations are
 * applied in pointer order; one that cannot be loaded is reported and the worker keeps the model it
 * has. A load that failed transiently (a timeout while a node of the cluster is down) is tried
 * again, backing off, until it loads or a newer activation replaces it: otherwise a worker started
 * while a node was down never loaded its model and never started its speed lane (issue 14).
 */
import type { Logger } from "pino";
import { isTransientBrokerError } from "../shared/adapters/nats/index.js";
import { describeError, type ActiveModelPointer, type ModelRegistry } from "../shared/index.js";
import type { EventHub, SpeedEvent } from "./events.js";
import type { SpeedMetrics } from "./metrics.js";

/** The first retry of a transiently failed model load, doubling up to {@link RETRY_MAX_MS} (ms). */
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 15_000;

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
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  /** Transient load failures of the latest activation in a row (for the retry's backoff). */
  private failures = 0;

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

  /**
   * True when an activation is known but its model is not loaded yet (its load failed transiently
   * and is being retried), as opposed to none activated at all.
   */
  get loading(): boolean {
    return this.latestRevision > this.appliedRevision;
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
      this.failures = 0;
      this.metrics.model.reset();
      this.metrics.model.set({ version: model.version }, 1);
      this.logger.info({ model: model.version, previous }, "model activated");
      this.events.emit({ type: "model-activated", version: model.version, previous });
      for (const w of this.waiters.splice(0)) w(model);
    } catch (err) {
      const transient = isTransientBrokerError(err);
      const retryInMs = transient ? Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.failures++) : undefined;
      this.logger.error(
        { model: pointer.version, err, ...(retryInMs ? { retryInMs } : {}) },
        transient
          ? "cannot load the activated model yet (transient broker error); retrying, keeping the current one"
          : "cannot load the activated model; keeping the current one",
      );
      this.events.emit({ type: "model-failed", version: pointer.version, reason: describeError(err) });
      if (retryInMs !== undefined && !this.stopped) {
        clearTimeout(this.retry);
        this.retry = setTimeout(() => {
          // A newer activation replaced this one meanwhile: that one is loaded instead.
          if (this.stopped || pointer.revision < this.latestRevision) return;
          this.chain = this.chain.then(() => this.apply(pointer));
        }, retryInMs);
      }
    }
  }

  /** Stops watching the registry (and retrying a load). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.stopWatch?.();
  }
}
