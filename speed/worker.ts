/**
 * A speed worker: pulls fresh tiles from the shared durable consumer and turns each into a live
 * result, all before acknowledging it:
 *
 *   fetch bytes (inline, or from the object store) -> register in the master archive (ingest
 *   sequence = stream sequence) -> decode in the DecoderPool (deadline) -> classify with the current
 *   model in the ClassifierPool (deadline) -> LiveView.put (durable) -> `tiles.classified.<cell>`
 *   event -> ack
 *
 * Both CPU-heavy steps run in worker threads, so the event loop stays free for heartbeats, acks and
 * the model watch however long a tile takes, and a hostile tile costs at most its deadline.
 *
 * Any number of worker processes share the consumer; each holds at most `config.speed.concurrency`
 * tiles (one pull request per free slot, so a busy worker never hoards messages an idle one could
 * take). A tile that cannot be classified is dead-lettered and terminated; a transient failure is
 * nak'd with a growing delay; a slow tile sends in-progress heartbeats so it is not redelivered.
 * Nothing is lost if a worker dies: an unacknowledged tile is redelivered after ack_wait, and
 * every step is idempotent (see speed/README.md, "Exactly one result").
 */
import { hostname } from "node:os";
import {
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { ArchiveStore } from "../shared/adapters/archive/index.js";
import {
  DeadLetterQueue,
  HEADERS,
  INGEST_STREAM,
  INGEST_SUBJECT_PREFIX,
  LiveView,
  ModelRegistry,
  SPEED_ADVISORY_QUEUE,
  SPEED_CONSUMER,
  classifiedSubject,
  ensureSpeedResources,
  maxDeliveriesAdvisory,
  speedLaneStatus,
} from "../shared/adapters/nats/index.js";
import {
  DecoderPool,
  LanemapError,
  TileInvalidError,
  applyPam,
  describeError,
  registerTile,
  type CatalogueEntry,
  type Config,
  type TileResult,
} from "../shared/index.js";
import { ActiveModel, type LoadedModel } from "./active-model.js";
import { ClassifierPool } from "./classifier-pool.js";
import { EventHub, type SpeedEvent } from "./events.js";
import { pamFromHeader } from "./publish.js";
import { createSpeedMetrics, type SpeedMetrics } from "./metrics.js";

/** Test and operator hooks into a worker's pipeline. */
export interface SpeedWorkerHooks {
  /**
   * Runs after a tile is registered and before it is decoded, with heartbeats going. The CLI wires
   * LANEMAP_TEST_TILE_DELAY_MS to a sleep here, so fault tests can kill a worker mid-tile.
   */
  readonly beforeClassify?: (tile: { tileId: string; cell: string; streamSeq: number }) => Promise<void>;
}

/** What a worker needs besides config. */
export interface SpeedWorkerDeps {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** Where the metrics go (default a private Registry). */
  readonly registry?: Registry;
  /** The master archive (default the one in config.dataDir). */
  readonly archive?: ArchiveStore;
  /** Decoder threads (default a pool of one thread per slot, closed on stop). */
  readonly decoder?: DecoderPool;
  /** Classifier threads (default a pool of one thread per slot, closed on stop). */
  readonly classifiers?: ClassifierPool;
  readonly hooks?: SpeedWorkerHooks;
  /** Name in logs and events (default host:pid). */
  readonly name?: string;
  /** How often consumer lag and the DLQ size are polled for the metrics (default 5 s). */
  readonly pollIntervalMs?: number;
}

/** A running worker. */
export interface SpeedWorker extends AsyncDisposable {
  readonly name: string;
  readonly metrics: SpeedMetrics;
  readonly registry: Registry;
  /** Version of the model new tiles are classified with, or null while waiting for one. */
  modelVersion(): string | null;
  /** Every later event, as an async iterator (`break` to stop listening). */
  status(): AsyncIterableIterator<SpeedEvent>;
  /** Calls `fn` for every later event; returns the unsubscribe function. */
  on(fn: (e: SpeedEvent) => void): () => void;
  /** Stops pulling, lets in-flight tiles finish (ack or nak), then releases everything it opened. */
  stop(): Promise<void>;
}

/** The JSON summary published on `tiles.classified.<cell>` (core NATS, no payload beyond this). */
export interface ClassifiedEvent {
  readonly tileId: string;
  readonly cell: string;
  readonly acquired: string;
  readonly ingestSeq: number;
  readonly modelVersion: string;
  readonly counts: readonly number[];
  readonly dominantClass: number;
  readonly meanConfidence: number;
  readonly processedAt: string;
}

/** Error codes that mean the tile itself can never be classified (with this model): dead-letter it. */
const PERMANENT_CODES = new Set([
  "TILE_DECODE",
  "PIXEL_BUDGET",
  "TILE_INVALID",
  "TILE_CONFLICT",
  "DEADLINE",
  "MODEL",
  "OBJECT_MISSING",
]);

/** The code of a failure, and whether retrying could help. */
function classify(err: unknown): { code: string; permanent: boolean } {
  if (err instanceof LanemapError) return { code: err.code, permanent: PERMANENT_CODES.has(err.code) };
  // A catalogue entry that fails its schema is a property of the tile, not of the moment.
  if (err instanceof Error && err.name === "ZodError") return { code: "TILE_INVALID", permanent: true };
  return { code: "TRANSIENT", permanent: false };
}

/** Redelivery delay after the n-th failed delivery: 0.5 s, 1 s, 2 s, ... up to 30 s. */
function retryDelayMs(deliveries: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, deliveries - 1));
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

/** What the handler has learnt about a tile so far, for its dead letter and events. */
interface TileContext {
  tileId: string | null;
  cell: string | null;
}

/**
 * Starts a speed worker: makes sure the streams, consumer and buckets exist (limits from config),
 * loads the active model and begins pulling. Resolves once pulling has started (a worker with no
 * active model waits for one, reporting `waiting-for-model`).
 */
export async function startSpeedWorker(config: Config, deps: SpeedWorkerDeps): Promise<SpeedWorker> {
  const { nc } = deps;
  const name = deps.name ?? `${hostname()}:${process.pid}`;
  const logger = deps.logger.child({ worker: name });
  const registry = deps.registry ?? new Registry();
  const metrics = createSpeedMetrics(registry);
  const events = new EventHub<SpeedEvent>();
  const archive = deps.archive ?? new ArchiveStore(config.dataDir);
  const concurrency = config.speed.concurrency;

  const jsm = await jetstreamManager(nc);
  const { tiles } = await ensureSpeedResources(nc, jsm, config);
  const js = jetstream(nc);
  const live = await LiveView.open(nc);
  const dlq = await DeadLetterQueue.open(nc, tiles);
  const models = await ModelRegistry.open(nc);
  const consumer = await js.consumers.get(INGEST_STREAM, SPEED_CONSUMER);

  const ownDecoder = deps.decoder === undefined;
  const decoder =
    deps.decoder ??
    new DecoderPool({ size: concurrency, timeoutMs: config.decodeTimeoutMs, maxPixels: config.maxPixels });
  const ownClassifiers = deps.classifiers === undefined;
  const classifiers =
    deps.classifiers ?? new ClassifierPool({ size: concurrency, timeoutMs: config.decodeTimeoutMs });
  const closePools = async (): Promise<void> => {
    if (ownDecoder) await decoder.close();
    if (ownClassifiers) await classifiers.close();
  };
  let active: ActiveModel;
  try {
    // A model is ready once every classifier thread has built it (and so validated it).
    active = await ActiveModel.start(
      models,
      (artifact, version) => classifiers.preload(version, artifact),
      logger,
      events,
      metrics,
    );
  } catch (err) {
    await closePools();
    throw err;
  }

  const stopping = new AbortController();
  const fetches = new Set<ConsumerMessages>();
  const pipeline = new TilePipeline(config, {
    nc,
    logger,
    metrics,
    events,
    archive,
    decoder,
    classifiers,
    live,
    tiles,
    dlq,
    hooks: deps.hooks ?? {},
  });

  const slot = async (index: number): Promise<void> => {
    let failures = 0;
    while (!stopping.signal.aborted) {
      if (!active.current) {
        if (index === 0) {
          events.emit({ type: "waiting-for-model" });
          logger.warn("no active model: run `lanemap model activate FILE`; waiting");
        }
        await active.whenReady(stopping.signal).catch(() => undefined);
        continue;
      }
      let batch: ConsumerMessages | undefined;
      try {
        batch = await consumer.fetch({ max_messages: 1, expires: 5_000 });
        fetches.add(batch);
        for await (const m of batch) {
          // Take the model once: the whole tile uses it even if another is activated meanwhile.
          // (A loaded model is only ever replaced, never unset, so this is the one checked above.)
          const model = active.current ?? (await active.whenReady(stopping.signal));
          await pipeline.handle(m, model);
        }
        failures = 0;
      } catch (err) {
        if (stopping.signal.aborted) break;
        failures++;
        const reason = describeError(err);
        if (failures === 1 || failures % 20 === 0)
          logger.warn({ err: reason, failures }, "pulling tiles failed; retrying");
        events.emit({ type: "consumer-error", reason });
        await sleep(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)), stopping.signal);
      } finally {
        if (batch) fetches.delete(batch);
      }
    }
  };

  const advisories = subscribeMaxDeliveries(nc, jsm, pipeline, logger);
  const poll = setInterval(() => {
    speedLaneStatus(jsm)
      .then((s) => {
        if (s.consumer) {
          metrics.lag.set(s.consumer.pending);
          metrics.ackPending.set(s.consumer.ackPending);
        }
        if (s.deadLetters !== null) metrics.deadLetterQueue.set(s.deadLetters);
      })
      .catch(() => undefined); // The next poll tries again; a disconnect is logged by the connection.
  }, deps.pollIntervalMs ?? 5_000);
  poll.unref();

  const slots = Array.from({ length: concurrency }, (_, i) => slot(i));
  logger.info({ concurrency, model: active.current?.version ?? null }, "speed worker started");

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping.abort(new LanemapError("STOPPED", "the speed worker is stopping"));
      for (const f of fetches) await f.close().catch(() => undefined);
      await Promise.all(slots);
      clearInterval(poll);
      advisories.unsubscribe();
      active.stop();
      await closePools();
      logger.info("speed worker stopped");
      events.emit({ type: "stopped" });
      events.close();
    })());

  return {
    name,
    metrics,
    registry,
    modelVersion: () => active.current?.version ?? null,
    status: () => events.iterate(),
    on: (fn) => events.on(fn),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The max-deliveries advisory: a tile whose last delivery was never acknowledged (the worker died
 * on it, or hung past ack_wait every time) will not be delivered again, and no handler saw it fail.
 * One worker (queue group) dead-letters it from the stream's copy.
 */
function subscribeMaxDeliveries(
  nc: NatsConnection,
  jsm: JetStreamManager,
  pipeline: TilePipeline,
  logger: Logger,
): Subscription {
  return nc.subscribe(maxDeliveriesAdvisory(INGEST_STREAM, SPEED_CONSUMER), {
    queue: SPEED_ADVISORY_QUEUE,
    callback: (err, msg) => {
      if (err) return;
      void (async () => {
        const a = msg.json<{ stream_seq?: number; deliveries?: number }>();
        const seq = a.stream_seq;
        if (typeof seq !== "number") return;
        const stored = await jsm.streams.getMessage(INGEST_STREAM, { seq });
        if (!stored) return;
        await pipeline.deadLetter(
          {
            seq,
            subject: stored.subject,
            headers: stored.header,
            data: stored.data,
            deliveries: a.deliveries ?? 0,
          },
          { tileId: stored.header?.get(HEADERS.tileId) || null, cell: cellOfSubject(stored.subject) },
          "MAX_DELIVER",
          `not acknowledged after ${a.deliveries ?? "max"} deliveries (a worker died or timed out on it each time)`,
        );
      })().catch((e: unknown) =>
        logger.error({ err: describeError(e) }, "cannot dead-letter a max-deliveries tile"),
      );
    },
  });
}

function cellOfSubject(subject: string): string | null {
  const prefix = `${INGEST_SUBJECT_PREFIX}.`;
  return subject.startsWith(prefix) ? subject.slice(prefix.length) : null;
}

/** A message as the dead-letter path needs it (a live JsMsg or the stream's stored copy). */
interface OriginalMessage {
  readonly seq: number;
  readonly subject: string;
  readonly headers: JsMsg["headers"];
  readonly data: Uint8Array;
  readonly deliveries: number;
}

interface PipelineDeps {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  readonly metrics: SpeedMetrics;
  readonly events: EventHub<SpeedEvent>;
  readonly archive: ArchiveStore;
  readonly decoder: DecoderPool;
  readonly classifiers: ClassifierPool;
  readonly live: LiveView;
  readonly tiles: ObjectStore;
  readonly dlq: DeadLetterQueue;
  readonly hooks: SpeedWorkerHooks;
}

/** The per-message work of a worker, and what to do when it fails. */
class TilePipeline {
  constructor(
    private readonly config: Config,
    private readonly d: PipelineDeps,
  ) {}

  /** Handles one message to its end: ack, term (dead-lettered) or nak (retry later). Never throws. */
  async handle(m: JsMsg, model: LoadedModel): Promise<void> {
    const { metrics } = this.d;
    const started = performance.now();
    const ctx: TileContext = { tileId: null, cell: null };
    metrics.inFlight.inc();
    // Heartbeats keep a slow tile (a big decode, the test delay hook) from being redelivered.
    const beat = setInterval(() => m.working(), Math.max(200, this.config.speed.ackWaitMs / 3));
    try {
      await this.process(m, model, ctx, started);
      m.ack();
    } catch (err) {
      await this.failed(m, err, ctx);
    } finally {
      clearInterval(beat);
      metrics.inFlight.dec();
      metrics.processing.observe((performance.now() - started) / 1000);
    }
  }

  private async tileBytes(m: JsMsg): Promise<Uint8Array> {
    const object = m.headers?.get(HEADERS.object);
    if (object) {
      const bytes = await this.d.tiles.getBlob(object);
      if (!bytes)
        throw new LanemapError(
          "OBJECT_MISSING",
          `the tile's object ${object} is not in the tile object store`,
        );
      return bytes;
    }
    if (m.data.length === 0)
      throw new TileInvalidError("the message has no payload and no Lanemap-Object header");
    return m.data;
  }

  private async process(m: JsMsg, model: LoadedModel, ctx: TileContext, started: number): Promise<void> {
    const { archive, live, decoder, classifiers, metrics, events, hooks } = this.d;
    const h = m.headers;
    const subjectCell = cellOfSubject(m.subject);
    const headerCell = h?.get(HEADERS.cell) || undefined;
    ctx.tileId = h?.get(HEADERS.tileId) || null;
    ctx.cell = headerCell ?? subjectCell;
    if (headerCell && subjectCell && headerCell !== subjectCell)
      throw new TileInvalidError(
        `header ${HEADERS.cell}=${headerCell} contradicts the subject's cell ${subjectCell}`,
      );
    const bytes = await this.tileBytes(m);
    const streamSeq = m.info.streamSequence;
    const { entry, created } = await registerTile(
      archive,
      bytes,
      {
        tileId: ctx.tileId ?? undefined,
        cell: ctx.cell ?? undefined,
        acquired: h?.get(HEADERS.acquired) || undefined,
        ingestSeq: streamSeq,
        source: "stream",
        pam: pamFromHeader(h?.get(HEADERS.pam) || undefined),
      },
      { maxPixels: this.config.maxPixels },
    );
    ctx.tileId = entry.tileId;
    ctx.cell = entry.cell;
    if (!created) {
      // Seen before (a re-sent tile, or a redelivery after a crash): if its result is written, done.
      const existing = await live.get(entry.cell, entry.tileId);
      if (
        existing &&
        existing.result.contentHash === entry.contentHash &&
        existing.result.ingestSeq === entry.ingestSeq
      ) {
        metrics.tiles.inc({ outcome: "duplicate" });
        events.emit({
          type: "tile-duplicate",
          tileId: entry.tileId,
          cell: entry.cell,
          ingestSeq: entry.ingestSeq,
          streamSeq,
        });
        return;
      }
    }
    await hooks.beforeClassify?.({ tileId: entry.tileId, cell: entry.cell, streamSeq });
    // The sidecar's band nodata/scale/offset, carried by the entry: the bytes do not hold them.
    const raster = applyPam(
      await decoder.decode(bytes, {
        maxPixels: this.config.maxPixels,
        timeoutMs: this.config.decodeTimeoutMs,
      }),
      entry.pam,
    );
    const out = await classifiers.classify(model.version, raster, entry);
    const revision = await live.put({ result: out.result, k: out.k, raster: out.raster });
    this.announce(entry, out.result);
    const latencyMs = Date.now() - m.info.timestampNanos / 1e6;
    metrics.tiles.inc({ outcome: "classified" });
    metrics.latency.observe(Math.max(0, latencyMs) / 1000);
    events.emit({
      type: "tile-classified",
      tileId: entry.tileId,
      cell: entry.cell,
      ingestSeq: entry.ingestSeq,
      streamSeq,
      modelVersion: out.result.modelVersion,
      latencyMs,
      processMs: performance.now() - started,
      liveRevision: revision,
    });
  }

  private announce(entry: CatalogueEntry, r: TileResult): void {
    const summary: ClassifiedEvent = {
      tileId: r.tileId,
      cell: r.cell,
      acquired: r.acquired,
      ingestSeq: r.ingestSeq,
      modelVersion: r.modelVersion,
      counts: r.counts,
      dominantClass: r.dominantClass,
      meanConfidence: r.meanConfidence,
      processedAt: r.processedAt,
    };
    try {
      this.d.nc.publish(classifiedSubject(entry.cell), JSON.stringify(summary));
    } catch (err) {
      // The event is a notification; the result is already durable in the live view.
      this.d.logger.warn(
        { err: describeError(err), tileId: entry.tileId },
        "cannot publish the classified event",
      );
    }
  }

  private async failed(m: JsMsg, err: unknown, ctx: TileContext): Promise<void> {
    const { code, permanent } = classify(err);
    const deliveries = m.info.deliveryCount;
    const reason = describeError(err);
    const original: OriginalMessage = {
      seq: m.info.streamSequence,
      subject: m.subject,
      headers: m.headers,
      data: m.data,
      deliveries,
    };
    if (permanent || deliveries >= this.config.speed.maxDeliver) {
      const finalCode = permanent ? code : "MAX_DELIVER";
      const finalReason = permanent ? reason : `failed ${deliveries} deliveries; last: ${reason}`;
      if (await this.deadLetter(original, ctx, finalCode, finalReason)) {
        m.term();
        return;
      }
    }
    const delayMs = retryDelayMs(deliveries);
    this.d.logger.warn(
      { err: reason, code, streamSeq: original.seq, deliveries, delayMs },
      "tile failed; will retry",
    );
    this.d.metrics.tiles.inc({ outcome: "retried" });
    this.d.events.emit({
      type: "tile-retry",
      tileId: ctx.tileId,
      streamSeq: original.seq,
      deliveries,
      reason,
      delayMs,
    });
    m.nak(delayMs);
  }

  /** Writes the dead letter (and a bad-tile record); true when it is stored. */
  async deadLetter(
    original: OriginalMessage,
    ctx: TileContext,
    code: string,
    reason: string,
  ): Promise<boolean> {
    const { dlq, archive, logger, metrics, events } = this.d;
    let seq: number;
    try {
      ({ seq } = await dlq.add({
        originalSeq: original.seq,
        subject: original.subject,
        headers: original.headers,
        data: original.data,
        code,
        reason,
        deliveries: original.deliveries,
      }));
    } catch (err) {
      logger.error(
        { err: describeError(err), streamSeq: original.seq },
        "cannot dead-letter a tile; it will be retried",
      );
      return false;
    }
    await archive
      .recordBad({
        key: ctx.tileId ?? `stream-${original.seq}`,
        source: "stream",
        code,
        reason,
        at: new Date().toISOString(),
      })
      .catch(() => undefined); // The dead letter is the record that matters; this is a convenience copy.
    metrics.tiles.inc({ outcome: "failed" });
    metrics.deadLetters.inc();
    logger.warn(
      { code, reason, tileId: ctx.tileId, streamSeq: original.seq, deadLetter: seq },
      "tile dead-lettered",
    );
    events.emit({
      type: "tile-failed",
      tileId: ctx.tileId,
      cell: ctx.cell,
      streamSeq: original.seq,
      code,
      reason,
      deliveries: original.deliveries,
      deadLetterSeq: seq,
    });
    return true;
  }
}
