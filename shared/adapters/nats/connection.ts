/**
 * Connecting to NATS the way every lanemap process should: reconnect forever (a restarted
 * nats-server must never end a worker or the serving layer), with a short wait between attempts so
 * a restart costs seconds, and every connection status change logged.
 */
import { RequestError, connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { LanemapError } from "../../errors.js";

/** nats-server's default max_payload, assumed when the server did not say. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** Options of `connectNats`. */
export interface ConnectNatsOptions {
  /** Server URL(s); a comma-separated string is split. */
  readonly servers: string | readonly string[];
  /** Connection name shown by the server (`nats server report connections`). */
  readonly name: string;
  /** Status changes (disconnect, reconnect, errors) are logged here. */
  readonly logger?: Logger;
  /** Milliseconds between reconnect attempts (default 250). */
  readonly reconnectTimeWaitMs?: number;
  /**
   * How long one server may take to answer a connection (its INFO and the first PONG) before the
   * next listed server is tried, in ms (default {@link DIAL_TIMEOUT_MS}).
   */
  readonly timeoutMs?: number;
  /** Milliseconds between the client's pings of its server (default {@link PING_INTERVAL_MS}). */
  readonly pingIntervalMs?: number;
  /** Pings left unanswered before the server counts as gone (default {@link MAX_PINGS_OUT}). */
  readonly maxPingsOut?: number;
  /**
   * Check at once that the server offers JetStream (default true: every lanemap role stores in
   * JetStream); false only for a caller that uses core NATS alone.
   */
  readonly requireJetStream?: boolean;
}

/**
 * The server answers but offers no JetStream (nats-server started without `-js` or a `jetstream {}`
 * block). Not transient: no retry brings JetStream, so it is NATS_SETUP and said at once.
 */
export class JetStreamMissingError extends LanemapError {
  constructor(server: string) {
    super(
      "NATS_SETUP",
      `NATS_SETUP: ${server} has no JetStream; start nats-server with -js or a jetstream {} block in its config`,
    );
  }
}

/**
 * How long one server may take to answer a new connection before the next is tried. A frozen node
 * (SIGSTOP, a hung VM) accepts the TCP connection in its kernel and never sends INFO: with nats.js's
 * wait of 10 s, every command that picked it from NATS_URL paid 10 s (issue 14, F6). A live
 * nats-server answers in milliseconds, a loaded one well under a second.
 */
export const DIAL_TIMEOUT_MS = 4_000;
/**
 * Client pings: a connection whose server leaves {@link MAX_PINGS_OUT} pings unanswered is dropped
 * and made again to another listed server, within 8-12 s of the server freezing. nats.js's default
 * (2 min x 2) kept a client of a frozen node waiting up to 4 minutes (issue 14, F6): a killed node
 * closes its sockets and is noticed at once; a frozen one only by pings.
 */
export const PING_INTERVAL_MS = 4_000;
/** Unanswered pings after which the server counts as gone (see {@link PING_INTERVAL_MS}). */
export const MAX_PINGS_OUT = 2;

/** How long the JetStream check waits for an answer from the JetStream API (ms). */
const JETSTREAM_CHECK_MS = 1_500;

/**
 * Throws JetStreamMissingError when nothing on `nc`'s cluster answers the JetStream API.
 *
 * Why here and not in each role: nats.js reports "no responders" on the JetStream API as
 * "jetstream is not enabled", which is also what a client sees for a moment while an R3 stream
 * elects a leader, so the roles retry it (transient.ts) — for 30 s against a server that will never
 * have JetStream. One check right after connecting tells the two apart: the server's INFO says
 * `jetstream: true` when it runs JetStream itself; otherwise `$JS.API.INFO` is asked once, which
 * another node of a cluster answers, and "no responders" then means no JetStream anywhere. A
 * timeout is left to the roles' own retries (a cluster without a meta leader yet).
 * @throws JetStreamMissingError (NATS_SETUP).
 */
export async function requireJetStream(nc: NatsConnection): Promise<void> {
  if (nc.info?.jetstream === true) return;
  try {
    await nc.request("$JS.API.INFO", undefined, { timeout: JETSTREAM_CHECK_MS });
  } catch (err) {
    const noResponders =
      (err instanceof RequestError && err.isNoResponders()) ||
      (err instanceof Error && err.name === "NoRespondersError");
    if (noResponders) throw new JetStreamMissingError(`nats://${nc.getServer()}`);
  }
}

/** The connection could not be made. */
export class NatsConnectError extends LanemapError {
  constructor(servers: readonly string[], options?: { cause?: unknown }) {
    super(
      "NATS_CONNECT",
      `cannot connect to NATS at ${servers.join(", ")}: ${options?.cause instanceof Error ? options.cause.message : String(options?.cause)}`,
      options,
    );
  }
}

function serverList(servers: string | readonly string[]): string[] {
  const list = typeof servers === "string" ? servers.split(",") : [...servers];
  return list.map((s) => s.trim()).filter(Boolean);
}

/**
 * Connects with lanemap's reconnect policy (reconnect forever) and checks that the server offers
 * JetStream (requireJetStream). Resolves once connected; the status of the connection is logged
 * until it closes.
 * @throws NatsConnectError when the first connection fails; JetStreamMissingError (NATS_SETUP) when
 *   the server has no JetStream (the connection is closed first).
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const servers = serverList(options.servers);
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
      timeout: options.timeoutMs ?? DIAL_TIMEOUT_MS,
      pingInterval: options.pingIntervalMs ?? PING_INTERVAL_MS,
      maxPingOut: options.maxPingsOut ?? MAX_PINGS_OUT,
    });
  } catch (cause) {
    throw new NatsConnectError(servers, { cause });
  }
  if (options.requireJetStream !== false) {
    try {
      await requireJetStream(nc);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }
  const logger = options.logger;
  if (logger) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect" || s.type === "reconnect")
          logger.info({ nats: s.type, server: s.server }, `nats ${s.type}`);
        else if (s.type === "error") logger.warn({ nats: s.type, err: s.error }, "nats error");
        else if (s.type === "reconnecting" || s.type === "ping")
          logger.debug({ nats: s.type }, "nats status");
      }
    })().catch(() => undefined);
  }
  return nc;
}

/**
 * The largest message payload the connected server accepts, from its INFO. The client refuses to
 * publish anything bigger before sending it, so producers must know it to decide between an inline
 * tile and an object store reference.
 */
export function serverMaxPayload(nc: NatsConnection): number {
  const n = nc.info?.max_payload;
  return typeof n === "number" && n > 0 ? n : DEFAULT_MAX_PAYLOAD;
}

/** How long a process's shutdown waits for its NATS connection to drain before closing it. */
export const DRAIN_TIMEOUT_MS = 5_000;

/**
 * Drains `nc`, or closes it when draining has not finished within `ms` (or failed). A connection
 * whose server went away at the same moment (a host shutting down stops nats-server and lanemap
 * together) would keep drain() waiting for a reconnect that never comes, the process with it; a
 * close gives up what was not flushed, which JetStream redelivers.
 * @returns "drained" or "closed"; never throws.
 */
export async function drainWithin(nc: NatsConnection, ms = DRAIN_TIMEOUT_MS): Promise<"drained" | "closed"> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), ms);
  });
  const outcome = await Promise.race([nc.drain().then(() => "drained" as const), late]).catch(
    () => "failed" as const,
  );
  clearTimeout(timer);
  if (outcome === "drained") return outcome;
  await nc.close().catch(() => undefined);
  return "closed";
}
