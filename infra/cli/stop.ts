/**
 * How a long-running role (serve, worker, speed, batch schedule, start) stops: on the first
 * SIGTERM or SIGINT it closes what it holds in order, and whatever is still pending after
 * {@link STOP_DEADLINE_MS} is given up: the process exits 0 all the same (a stop was asked for).
 *
 * Why a deadline: each step is bounded on its own (HTTP keep-alive sockets closed after a second,
 * the NATS drain closed after {@link STOP_DRAIN_MS}), but their sum, or a tile still classifying,
 * could outlast what a supervisor waits (systemd's TimeoutStopSec, then SIGKILL); issue 14's
 * operator saw `lanemap serve` take 7 s with its nats-server gone (2 s of HTTP grace, 5 s of drain).
 * Nothing given up is lost: an unacknowledged tile or task is redelivered by JetStream, a stopped
 * batch run keeps its checkpoint.
 */
import type { Logger } from "pino";

/** The most a role takes from a stop signal to its exit (ms); the units' TimeoutStopSec is above it. */
export const STOP_DEADLINE_MS = 2_500;

/** How long a stopping role waits for its NATS connection to drain before closing it (ms). */
export const STOP_DRAIN_MS = 1_000;

/**
 * Resolves with the first SIGTERM or SIGINT, logged; from then on the process exits (code 0)
 * within {@link STOP_DEADLINE_MS} even when the caller's shutdown has not finished.
 */
export function stopSignal(logger: Logger, message = "stopping"): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      logger.info({ signal, deadlineMs: STOP_DEADLINE_MS }, message);
      setTimeout(() => {
        logger.warn({ deadlineMs: STOP_DEADLINE_MS }, "shutdown did not finish in time: exiting anyway");
        logger.flush();
        process.exit(process.exitCode ?? 0);
      }, STOP_DEADLINE_MS).unref();
      resolve(signal);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
