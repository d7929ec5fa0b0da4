/**
 * The speed lane's Prometheus metrics, registered on a Registry the caller passes in (never the
 * global one: two workers in one test process, or a worker beside serving, must not collide).
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The metrics one speed worker updates. */
export interface SpeedMetrics {
  /** Tiles handled, by outcome (classified, duplicate, removed, failed, retried); rate() = tiles/s. */
  readonly tiles: Counter<"outcome">;
  /** Publish time (JetStream timestamp) -> result written to the live view, seconds. */
  readonly latency: Histogram;
  /** Time a worker spends on one tile (fetch, register, decode, classify, write), seconds. */
  readonly processing: Histogram;
  /** Dead letters this worker wrote. */
  readonly deadLetters: Counter;
  /** Messages in the dead-letter stream (polled). */
  readonly deadLetterQueue: Gauge;
  /** Consumer lag: messages not yet delivered to any worker (num_pending, polled). */
  readonly lag: Gauge;
  /** Delivered but not yet acknowledged (num_ack_pending, polled). */
  readonly ackPending: Gauge;
  /** Tiles this worker is working on now. */
  readonly inFlight: Gauge;
  /** 1 for the model version this worker classifies with (label `version`). */
  readonly model: Gauge<"version">;
  /** Times this worker re-created the vanished durable consumer (vanished-consumer.ts). */
  readonly consumerRecreated: Counter;
}

/** The outcomes `lanemap_speed_tiles_total` counts a tile under. */
export const TILE_OUTCOMES = ["classified", "duplicate", "removed", "retried", "failed"] as const;

/**
 * Creates the speed metrics on `registry`, every outcome's series at 0 (a counter with no sample
 * until its first event reads as "no data" to `rate()` and to alerts). Call once per registry.
 */
export function createSpeedMetrics(registry: Registry): SpeedMetrics {
  const registers = [registry];
  const metrics: SpeedMetrics = {
    tiles: new Counter({
      name: "lanemap_speed_tiles_total",
      help: "Tiles handled by the speed lane, by outcome.",
      labelNames: ["outcome"],
      registers,
    }),
    latency: new Histogram({
      name: "lanemap_speed_latency_seconds",
      help: "Ingest publish time to live view write, per classified tile.",
      buckets: [0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60],
      registers,
    }),
    processing: new Histogram({
      name: "lanemap_speed_processing_seconds",
      help: "Worker time per tile: fetch, register, decode, classify, write.",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 5, 10],
      registers,
    }),
    deadLetters: new Counter({
      name: "lanemap_speed_dead_letters_total",
      help: "Tiles this worker dead-lettered.",
      registers,
    }),
    deadLetterQueue: new Gauge({
      name: "lanemap_speed_dlq_messages",
      help: "Messages in the dead-letter stream.",
      registers,
    }),
    lag: new Gauge({
      name: "lanemap_speed_consumer_pending",
      help: "Ingest messages not yet delivered to any speed worker (consumer lag).",
      registers,
    }),
    ackPending: new Gauge({
      name: "lanemap_speed_consumer_ack_pending",
      help: "Ingest messages delivered and not yet acknowledged.",
      registers,
    }),
    inFlight: new Gauge({
      name: "lanemap_speed_in_flight",
      help: "Tiles this worker is processing now.",
      registers,
    }),
    model: new Gauge({
      name: "lanemap_speed_model_info",
      help: "1 for the model version this worker classifies with.",
      labelNames: ["version"],
      registers,
    }),
    consumerRecreated: new Counter({
      name: "lanemap_speed_consumer_recreated_total",
      help: "Times this worker re-created the speed consumer after it vanished (nats consumer rm).",
      registers,
    }),
  };
  for (const outcome of TILE_OUTCOMES) metrics.tiles.inc({ outcome }, 0);
  return metrics;
}
