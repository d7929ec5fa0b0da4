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
    const why = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    // A port that accepts the connection but never speaks NATS (nats-server's monitoring or cluster
    // port, another service) ends in the client's dial timeout, which alone says nothing.
    const hint =
      why === "timeout"
        ? " (nothing answered as a NATS server: is it nats-server's client port, 4222 by default, not its monitoring or cluster port?)"
        : "";
    super("NATS_CONNECT", `cannot connect to NATS at ${servers.join(", ")}: ${why}${hint}`, options);
  }
}

function serverList(servers: string | readonly string[]): string[] {
  const list = typeof servers === "string" ? servers.split(",") : [...servers];
  return list.map((s) => s.trim()).filter(Boolean);
}

// NATS_URL as it may be shown: defined with the configuration, which must not print credentials
// either when it refuses a value.
export { redactNatsUrl } from "../../config.js";

/** What a server URL's user information asks for: a user and password, or a token. */
export type NatsUrlCredentials =
  { readonly user: string; readonly pass: string } | { readonly token: string };

/**
 * Splits the credentials off server URLs: `nats://user:password@host:4222` (nats-server's
 * `authorization { user, password }` or `users`) or `nats://token@host:4222` (`authorization {
 * token }`), percent-decoded — the URL convention of nats-server's own clients (the Go client,
 * the `nats` CLI), which nats.js does not read from a URL. Every URL that has credentials must have
 * the same ones (one connection authenticates once, whichever server it reaches); a URL without
 * any uses them too.
 * @returns the URLs without user information (safe to log), and the credentials if any.
 * @throws LanemapError CONFIG when two URLs carry different credentials, or one cannot be decoded.
 */
export function splitUrlCredentials(servers: readonly string[]): {
  servers: string[];
  credentials?: NatsUrlCredentials;
} {
  let found: { userinfo: string; credentials: NatsUrlCredentials } | undefined;
  const bare = servers.map((s) => {
    const m = /^((?:[a-z][a-z0-9+.-]*:\/\/)?)([^@/]*)@(.*)$/i.exec(s);
    if (!m) return s;
    const [, scheme = "", userinfo = "", rest = ""] = m;
    if (found && found.userinfo !== userinfo)
      throw new LanemapError(
        "CONFIG",
        "NATS_URL: the servers carry different credentials; give every URL the same user:password (or token), or only one",
      );
    if (!found) {
      const colon = userinfo.indexOf(":");
      let credentials: NatsUrlCredentials;
      try {
        credentials =
          colon < 0
            ? { token: decodeURIComponent(userinfo) }
            : {
                user: decodeURIComponent(userinfo.slice(0, colon)),
                pass: decodeURIComponent(userinfo.slice(colon + 1)),
              };
      } catch (cause) {
        throw new LanemapError(
          "CONFIG",
          "NATS_URL: the credentials before '@' are not valid percent-encoding",
          { cause },
        );
      }
      found = { userinfo, credentials };
    }
    return `${scheme}${rest}`;
  });
  return found ? { servers: bare, credentials: found.credentials } : { servers: bare };
}

/**
 * Connects with lanemap's reconnect policy (reconnect forever) and checks that the server offers
 * JetStream (requireJetStream). Resolves once connected; the status of the connection is logged
 * until it closes.
 * Credentials ride in the URLs (`nats://user:password@host:4222`, `nats://token@host:4222`:
 * {@link splitUrlCredentials}); they are never logged or put in an error.
 * @throws NatsConnectError when the first connection fails (a refused login: the server's
 *   "Authorization Violation"); JetStreamMissingError (NATS_SETUP) when the server has no
 *   JetStream (the connection is closed first); LanemapError CONFIG when the URLs carry
 *   different credentials.
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  // The URLs without their credentials are what errors and logs show.
  const { servers, credentials } = splitUrlCredentials(serverList(options.servers));
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      ...credentials,
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
