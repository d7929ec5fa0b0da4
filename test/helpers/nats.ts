/**
 * A real nats-server per test: free loopback port, temporary JetStream store, removed on dispose.
 * Tests that need it skip visibly when nats-server is not installed.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { natsServerAvailable, startNatsServer, type NatsServer } from "../../infra/nats/launcher.js";

export { startNatsServer, type NatsServer };

/** The reason to skip, or undefined when nats-server is on PATH. */
export function natsMissing(): string | undefined {
  return natsServerAvailable() ? undefined : "nats-server is not installed (apt-get install nats-server)";
}

/** Starts a server and connects to it; dispose closes the connection and removes the server. */
export async function natsFixture(
  options: Parameters<typeof startNatsServer>[0] = {},
): Promise<{ server: NatsServer; nc: NatsConnection } & AsyncDisposable> {
  const server = await startNatsServer(options);
  const nc = await connect({ servers: server.url, name: "lanemap-test" });
  return {
    server,
    nc,
    async [Symbol.asyncDispose]() {
      await nc.close().catch(() => undefined);
      await server.stop();
    },
  };
}
