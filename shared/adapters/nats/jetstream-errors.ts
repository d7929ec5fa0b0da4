/**
 * What a JetStream failure means, decided in one place: "the stream (or consumer) does not exist",
 * "storage is full", "a moment without a leader". Every adapter and operator script asks these
 * rather than comparing API codes or messages itself, so a rule changes once (nats.js keeps its own
 * codes in `jetstream/src/jserrors.ts`; these are the few lanemap acts on).
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";

/**
 * True when the JetStream API answered "stream not found" (API error code 10059,
 * `JetStreamApiCodes.StreamNotFound`): the stream asked about does not exist (never created, or
 * deleted). A request that got no answer at all is not this (isTransientBrokerError).
 */
export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

/**
 * True when the JetStream API answered "consumer not found" (API error code 10014,
 * `JetStreamApiCodes.ConsumerNotFound`): the stream exists but the consumer asked about does not.
 */
export function isConsumerNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound;
}

/**
 * True when JetStream refused for want of storage: "insufficient storage resources available"
 * (JetStream API error 10047, a stream's max_bytes above what the server or account may store) or
 * "maximum bytes exceeded" (a full stream that discards new messages). Messages are the server's
 * (nats-server `server/errors.json`), matched as text because the codes differ per case.
 */
export function isStorageFull(err: unknown): boolean {
  return (
    err instanceof Error && /insufficient (storage )?resources|maximum bytes exceeded/i.test(err.message)
  );
}

/**
 * True when a JetStream request or publish failed for a moment, not for good: a timeout, or no
 * responders (nats.js reports those on the JetStream API as "jetstream is not enabled"; a 503 API
 * error) — what a client sees while an R3 stream elects its leader, just after it is created or
 * when a node dies. A full stream is not transient (isStorageFull). Retry only what is idempotent.
 */
export function isTransientBrokerError(err: unknown): boolean {
  if (!(err instanceof Error) || isStorageFull(err)) return false;
  if (err.name === "JetStreamNotEnabled" || err.name === "TimeoutError" || err.name === "NoRespondersError")
    return true;
  if (err instanceof JetStreamApiError) return err.status === 503;
  return /no responders|time ?out/i.test(err.message) || isTransientBrokerError(err.cause);
}

/**
 * True when the broker answered at once that nobody can serve the request now: no responders
 * (nats.js: "jetstream is not enabled") or a 503 API error such as "JetStream system temporarily
 * unavailable" (err_code 10008, no meta leader). What a client sees for the whole of an election
 * (nats-server 2.9's RAFT election timeout is 2–5 s after the leader's last heartbeat, more on a
 * loaded machine), so a retry budget counted in attempts runs out in a fraction of it. A timeout
 * is not this: it costs its own wait.
 */
export function isLeaderlessAnswer(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === "JetStreamNotEnabled" || err.name === "NoRespondersError") return true;
  if (err instanceof JetStreamApiError) return err.status === 503;
  return /no responders/i.test(err.message) || isLeaderlessAnswer(err.cause);
}
