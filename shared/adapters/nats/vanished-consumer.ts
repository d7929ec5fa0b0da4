/**
 * What a running pull loop does when its durable consumer may be gone (issue 14): `nats consumer rm`,
 * `nats stream rm`, a node's store lost. nats.js 3.4 does not say so in a pull loop: a fetch that
 * was waiting ends with a 409 "consumer deleted" status, and every later one against the missing
 * consumer is answered by nobody and ends 5 s later as "heartbeats missed" (a PullSlot's pull, by
 * its own give-up timer, with no error at all). A loop that retries those for ever, as the workers
 * did, keeps "pulling tiles failed" in its log until a restart. So a failed (or unanswered) pull
 * asks CONSUMER.INFO what became of the consumer, and one rule, for both lanes, decides:
 *
 * - consumer there: a passing failure (a reconnect, a leader election); the loop retries as before;
 * - the caller's clock refuses (the speed lane: the ingest stream gone or recreated behind what the
 *   views recorded, shared/view/ingest-clock.ts, asked through the composition root's one check):
 *   the worker stops with that error;
 * - stream gone (and the clock does not refuse): the worker stops with {@link StreamMissingError};
 *   re-creating the stream under running workers would hide what happened (a batch run's queued
 *   tasks, the ingest stream's sequences); a restart creates it again where that is right;
 * - only the consumer gone: re-created with the start-up's own function (same config), and the loop
 *   goes on; what is delivered again is idempotent as always.
 *
 * "Gone" is acted on only when CONSUMER.INFO says so twice, {@link CONFIRM_MS} apart: a stop is for
 * good (exit 1, a supervisor's restart refused), and a cluster recovering from a restart should not
 * get one for a not-found it answers while its assignments are still being applied.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { LanemapError } from "../../errors.js";
import { isConsumerNotFound, isStreamNotFound } from "./jetstream-errors.js";
import { StreamSetupError } from "./streams.js";

/** How long after a first "not found" CONSUMER.INFO is asked again before anything is done (ms). */
export const CONFIRM_MS = 1_000;

/** What CONSUMER.INFO says of a durable consumer a pull loop lost. */
export type ConsumerPresence = "present" | "consumer-missing" | "stream-missing";

/**
 * Whether `consumer` of `stream` exists (ConsumerNotFound 10014, StreamNotFound 10059 say which is gone).
 * @throws what CONSUMER.INFO throws otherwise (a timeout, no responders: nothing is known).
 */
export async function consumerPresence(
  jsm: JetStreamManager,
  stream: string,
  consumer: string,
): Promise<ConsumerPresence> {
  try {
    await jsm.consumers.info(stream, consumer);
    return "present";
  } catch (err) {
    if (isStreamNotFound(err)) return "stream-missing";
    if (isConsumerNotFound(err)) return "consumer-missing";
    throw err;
  }
}

/** A running worker's stream was deleted under it: it stops (NATS_SETUP, exit 1). */
export class StreamMissingError extends StreamSetupError {
  readonly stream: string;
  constructor(stream: string, consequence: string) {
    super(
      `stream ${stream} was deleted under the running worker (JetStream: stream not found): ${consequence}`,
    );
    this.stream = stream;
  }
}

/** What {@link recoverVanishedConsumer} found and did. */
export type ConsumerRecovery =
  | { readonly outcome: "present" }
  | { readonly outcome: "recreated" }
  | { readonly outcome: "stop"; readonly error: LanemapError };

/** What {@link recoverVanishedConsumer} needs: the consumer, and the caller's own decisions. */
export interface VanishedConsumer {
  readonly jsm: JetStreamManager;
  readonly stream: string;
  readonly consumer: string;
  /** Re-creates the consumer: the very function the worker's start-up uses (same config). */
  readonly recreate: () => Promise<unknown>;
  /**
   * The caller's clock, asked only once the consumer or stream is gone: an error when the worker
   * must stop (the speed lane's INGEST_STREAM_BEHIND), null when it may go on.
   */
  readonly refuse?: () => Promise<LanemapError | null>;
  /** What a stop for a missing stream means, for its one line (after "...: "). */
  readonly streamMissing: string;
  /** Wait before the confirming CONSUMER.INFO (default {@link CONFIRM_MS}). */
  readonly confirmMs?: number;
}

/**
 * After a failed or unanswered pull: the consumer is there (retry), or re-created (go on), or the
 * worker must stop with the error returned (module comment).
 * @throws when CONSUMER.INFO, the clock or the re-creation fail (transient: the caller retries at
 *   its next failed pull).
 */
export async function recoverVanishedConsumer(v: VanishedConsumer): Promise<ConsumerRecovery> {
  if ((await consumerPresence(v.jsm, v.stream, v.consumer)) === "present") return { outcome: "present" };
  await new Promise((resolve) => setTimeout(resolve, v.confirmMs ?? CONFIRM_MS));
  // The second answer decides (a stream deleted and already made again: consumer-missing now).
  const presence = await consumerPresence(v.jsm, v.stream, v.consumer);
  if (presence === "present") return { outcome: "present" };
  const refused = (await v.refuse?.()) ?? null;
  if (refused) return { outcome: "stop", error: refused };
  if (presence === "stream-missing")
    return { outcome: "stop", error: new StreamMissingError(v.stream, v.streamMissing) };
  await v.recreate();
  return { outcome: "recreated" };
}

/** What a worker does with the outcomes of {@link consumerRecovery}. */
export interface RecoveryHandlers {
  /** The consumer was re-created: say so (a log line, an event, a metric). */
  readonly recreated: () => void;
  /** The worker must stop with `error`. */
  readonly stop: (error: LanemapError) => void;
  /** The check could not tell (NATS away, a leader election); the pull is retried and checked again. */
  readonly unknown: (err: unknown) => void;
}

/**
 * A worker's check after a failed or unanswered pull: one at a time for all its slots (their pulls
 * fail together when the consumer goes), each caller getting the outcome of the check under way.
 * A check that cannot tell reads "present": the slot backs off and retries as before.
 */
export function consumerRecovery(
  v: VanishedConsumer,
  on: RecoveryHandlers,
): () => Promise<ConsumerRecovery["outcome"]> {
  let running: Promise<ConsumerRecovery["outcome"]> | undefined;
  const check = async (): Promise<ConsumerRecovery["outcome"]> => {
    try {
      const r = await recoverVanishedConsumer(v);
      if (r.outcome === "recreated") on.recreated();
      else if (r.outcome === "stop") on.stop(r.error);
      return r.outcome;
    } catch (err) {
      on.unknown(err);
      return "present";
    } finally {
      running = undefined;
    }
  };
  return () => (running ??= check());
}
