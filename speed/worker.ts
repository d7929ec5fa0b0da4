/**
 * A speed worker's lifecycle (the per-message work is pipeline.ts): make sure the streams, consumer
 * and buckets exist, keep the active model loaded in the worker's TilePool, pull fresh tiles from
 * the shared durable consumer with one pull per free slot, dead-letter what the max-deliveries
 * advisory reports, poll the lag metrics, and stop cleanly.
 *
 * The CPU-heavy step (decode + classify) runs in worker threads, so the event loop stays free for
 * heartbeats, acks and the model watch however long a tile takes, and a hostile tile costs at most
 * its deadline.
 *
 * Any number of worker processes share the consumer; each holds at most `config.speed.concurrency`
 * tiles (one pull request per free slot, so a busy worker never hoards messages an idle one could
 * take). Nothing is lost if a worker dies: an unacknowledged tile is redelivered after ack_wait, and
 * every step is idempotent (see speed/README.md, "Exactly one result").
 *
 * A consumer deleted under the worker (`nats consumer rm`, `nats stream rm`) is noticed at the next
 * failed pull (shared/adapters/nats/vanished-consumer.ts): re-created when only it is gone, or the
 * worker stops by itself (`ended` says why) when the ingest stream is gone or behind lanemap's record.
 */

import { hostname } from "node:os";
import {
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { ArchiveStore } from "../shared/adapters/archive/index.js";
import type { TileArchive } from "../shared/index.js";
import {
  DeadLetterQueue,
  HEADERS,
  consumerRecovery,
  ensureSpeedConsumer,
  INGEST_STREAM,
  LiveView,
  NatsModelRegistry,
  NatsTileArchive,
  SPEED_ADVISORY_QUEUE,
  SPEED_CONSUMER,
  ensureSpeedResources,
  maxDeliveriesAdvisory,
  speedLaneStatus,
} from "../shared/adapters/nats/index.js";
import {
  IngestStreamBehindError,
  LanemapError,
  TilePool,
  describeError,
  pullBackoff,
  type Config,
  type IngestStreamBehind,
  type ModelRegistry,
} from "../shared/index.js";
import { ActiveModel } from "./active-model.js";
import { EventHub, type SpeedEvent } from "./events.js";
import { createSpeedMetrics, type SpeedMetrics } from "./metrics.js";
import { TilePipeline, cellOfSubject, type SpeedWorkerHooks } from "./pipeline.js";

/** What a worker needs besides config. */
export interface SpeedWorkerDeps {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** Where the metrics go (default a private Registry). */
  readonly registry?: Registry;
  /**
   * The master archive fresh tiles are registered in (default: as `config.storage.backend` says,
   * the data directory's files or the JetStream buckets over `nc`).
   */
  readonly archive?: TileArchive;
  /** Tile threads, decode + classify (default a pool of one thread per slot, closed on stop). */
  readonly pool?: TilePool;
  readonly hooks?: SpeedWorkerHooks;
  /**
   * The model registry whose active pointer the worker follows (default: the NATS registry on `nc`;
   * infra passes the deployment's, mirrored to the data directory, so both lanes read one pointer).
   */
  readonly models?: ModelRegistry;
  /** Name in logs and events (default host:pid). */
  readonly name?: string;
  /** How often consumer lag and the DLQ size are polled for the metrics (default 5 s). */
  readonly pollIntervalMs?: number;
  /**
   * The composition root's ingest clock check (infra/platform/ingest-clock.ts
   * `ingestStreamBehindRecord`, the start-up's own decision), asked again when the consumer
   * vanished under the running worker: behind means the worker stops with INGEST_STREAM_BEHIND
   * instead of re-creating the consumer on a recreated stream. Without it only a missing stream stops it.
   */
  readonly ingestClock?: () => Promise<IngestStreamBehind | null>;
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
  /**
   * Resolves once the worker has stopped: null after `stop()`, the error when it stopped by itself
   * (its ingest stream deleted, or recreated behind lanemap's record, while it ran).
   */
  readonly ended: Promise<LanemapError | null>;
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
  const archive =
    deps.archive ??
    (config.storage.backend === "nats"
      ? await NatsTileArchive.open(nc, { replicas: config.storage.replicas })
      : new ArchiveStore(config.dataDir));
  const concurrency = config.speed.concurrency;

  const jsm = await jetstreamManager(nc);
  const { tiles } = await ensureSpeedResources(nc, jsm, config);
  const js = jetstream(nc);
  const live = await LiveView.open(nc, { replicas: config.storage.replicas });
  const dlq = await DeadLetterQueue.open(nc, tiles);
  const models = deps.models ?? (await NatsModelRegistry.open(nc, { replicas: config.storage.replicas }));
  const consumer = await js.consumers.get(INGEST_STREAM, SPEED_CONSUMER);

  const ownPool = deps.pool === undefined;
  // The pool's own deadline is the base (model loads); each tile brings its own (pipeline.ts).
  const pool = deps.pool ?? new TilePool({ size: concurrency, timeoutMs: config.decodeTimeoutMs });
  const closePools = async (): Promise<void> => {
    if (ownPool) await pool.close();
  };
  let active: ActiveModel;
  try {
    // Threads start now: their start-up is not paid by the first tile.
    await pool.warm();
    // A model is ready once every tile thread has built it (and so validated it).
    active = await ActiveModel.start(
      models,
      async (artifact, version) => {
        await pool.loadModel(artifact, version);
      },
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
    pool,
    live,
    tiles,
    dlq,
    hooks: deps.hooks ?? {},
  });

  // Why the worker stopped by itself (null: it did not); set once, before `stop()`.
  let failure: LanemapError | null = null;
  const fail = (error: LanemapError): void => {
    if (failure || stopping.signal.aborted) return;
    failure = error;
    logger.error({ code: error.code, err: error.message }, "speed worker stopping: its stream is gone");
    events.emit({ type: "stream-lost", code: error.code, reason: error.message });
    stop().catch(() => undefined); // the caller's own stop() gets the same promise
  };
  const { ingestClock } = deps;
  const recover = consumerRecovery(
    {
      jsm,
      stream: INGEST_STREAM,
      consumer: SPEED_CONSUMER,
      recreate: () =>
        ensureSpeedConsumer(jsm, config.speed, {
          description: `re-created by speed worker ${name} at ${new Date().toISOString()}: the previous one vanished under running workers`,
        }),
      ...(ingestClock
        ? {
            refuse: async () => {
              const behind = await ingestClock();
              return behind ? new IngestStreamBehindError(behind) : null;
            },
          }
        : {}),
      streamMissing: "stopping; a start creates it again, empty (the tiles it held are gone)",
    },
    {
      recreated: () => {
        metrics.consumerRecreated.inc();
        logger.warn(
          { stream: INGEST_STREAM, consumer: SPEED_CONSUMER },
          "the speed consumer had vanished (stream intact, not behind lanemap's record): re-created it",
        );
        events.emit({ type: "consumer-recreated", stream: INGEST_STREAM, consumer: SPEED_CONSUMER });
      },
      stop: fail,
      unknown: (err) =>
        logger.debug({ err: describeError(err) }, "cannot tell whether the speed consumer exists"),
    },
  );

  const slot = async (index: number): Promise<void> => {
    let failures = 0;
    while (!stopping.signal.aborted) {
      if (!active.current) {
        if (index === 0) {
          events.emit({ type: "waiting-for-model" });
          if (active.loading)
            logger.warn("the activated model is not loaded yet (retrying its load); waiting");
          else logger.warn("no active model: run `lanemap model activate FILE`; waiting");
        }
        await active.whenReady(stopping.signal).catch(() => undefined);
        continue;
      }
      let batch: ConsumerMessages | undefined;
      try {
        batch = await consumer.fetch({ max_messages: 1, expires: 5_000 });
        if (stopping.signal.aborted) {
          // Stopped while the pull was being set up (a stop right after start): `stop()` has closed
          // the fetches it saw, not this one, which would hold the stop until its 5 s expiry. Not
          // `close()`: nats.js settles it inside an iteration that never comes here. A message the
          // server still delivers to it is redelivered after ack_wait (at least once).
          batch.stop();
          break;
        }
        fetches.add(batch);
        let m: JsMsg | undefined;
        for await (const got of batch) {
          m = got;
          break;
        }
        // The fetch ends before the tile is worked on: its one message came, so the server sends
        // it no more heartbeats, and nats.js's monitor (idle heartbeat = half the expiry) would
        // give the finished pull up as "heartbeats missed" 5-7.5 s into every slow tile — a
        // spurious "pulling tiles failed" and a backoff before the next pull (issue 14).
        batch.stop();
        fetches.delete(batch);
        if (m) {
          // Take the model once: the whole tile uses it even if another is activated meanwhile.
          // (A loaded model is only ever replaced, never unset, so this is the one checked above.)
          const model = active.current ?? (await active.whenReady(stopping.signal));
          await pipeline.handle(m, model);
        }
        failures = 0;
      } catch (err) {
        if (stopping.signal.aborted) break;
        // A vanished consumer fails every pull (a 409, then "heartbeats missed" 5 s after each):
        // asked at once, so it is re-created, or the worker stops, within one pull's expiry.
        const recovery = await recover();
        if (recovery === "stop" || stopping.signal.aborted) break;
        if (recovery === "recreated") {
          failures = 0;
          continue;
        }
        failures++;
        const reason = describeError(err);
        if (failures === 1 || failures % 20 === 0)
          logger.warn({ err: reason, failures }, "pulling tiles failed; retrying");
        events.emit({ type: "consumer-error", reason });
        await pullBackoff(failures, stopping.signal);
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
  let endedWith: (why: LanemapError | null) => void = () => {};
  const ended = new Promise<LanemapError | null>((resolve) => (endedWith = resolve));
  // `fail` (above) calls it: only ever after an await of a slot, so once it is defined here.
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      try {
        stopping.abort(new LanemapError("CANCELLED", "the speed worker is stopping"));
        for (const f of fetches) await f.close().catch(() => undefined);
        await Promise.all(slots);
        clearInterval(poll);
        advisories.unsubscribe();
        active.stop();
        await closePools();
        logger.info("speed worker stopped");
        events.emit({ type: "stopped" });
        events.close();
      } finally {
        endedWith(failure);
      }
    })());

  return {
    name,
    metrics,
    registry,
    modelVersion: () => active.current?.version ?? null,
    status: () => events.iterate(),
    on: (fn) => events.on(fn),
    stop,
    ended,
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
