/**
 * `--metrics-port` of the long-running worker commands (`lanemap speed`, `lanemap worker`): their
 * Prometheus registry served at /metrics on a plain HTTP server of its own (no Express: a worker
 * has no API), bound to LANEMAP_HOST.
 */
import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { UsageError } from "./usage.js";

/** The `--metrics-port` flag's port (0 = any free port), or undefined when not given. */
export function metricsPortFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number.parseInt(value, 10);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535))
    throw new UsageError(`--metrics-port must be a port number, got "${value}"`);
  return port;
}

/** Serves the registry's metrics at /metrics; resolves with the server once it listens. */
function serveMetrics(registry: Registry, port: number, host: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("not found: try /metrics\n");
      return;
    }
    registry
      .metrics()
      .then((text) => res.writeHead(200, { "content-type": registry.contentType }).end(text))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** A metrics server that is running; `close` ends it and its open connections. */
export interface MetricsServer {
  close(): void;
}

/**
 * Serves `registry` at /metrics on `port` of `host` when a port was given, and logs the port bound
 * ("metrics at /metrics", info); without a port, nothing is served and `close` does nothing.
 */
export async function startMetricsServer(
  registry: Registry,
  port: number | undefined,
  host: string,
  logger: Logger,
): Promise<MetricsServer> {
  if (port === undefined) return { close: () => {} };
  const server = await serveMetrics(registry, port, host);
  const addr = server.address();
  logger.info({ port: typeof addr === "object" && addr ? addr.port : port }, "metrics at /metrics");
  return {
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}
