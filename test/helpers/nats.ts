/**
 * A real nats-server per test: free loopback port, temporary JetStream store, removed on dispose.
 * Tests that need it skip visibly when nats-server is not installed.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/** A nats-server started by a test with its own command-line flags, for failure scenarios. */
export interface BareNatsServer extends AsyncDisposable {
  readonly url: string;
  readonly pid: number;
  /** Resolves when the server has exited (killed or crashed). */
  readonly exited: Promise<void>;
}

/**
 * Starts nats-server on a free loopback port, without the launcher's configuration: with or
 * without JetStream, and optionally SIGKILLed as soon as a client sends its CONNECT, which is "the
 * server goes away while a role is starting" made exact: every start step the role takes after
 * opening its connection (JetStream checks, streams, consumers) meets a server that is gone.
 * (Killing at the first JetStream request instead races with the server's reply.) Protocol
 * tracing (-DV) tells us when. `config` is a configuration file's text (accounts, limits), passed
 * with -c; the command-line flags (address, port, JetStream) take precedence over it.
 */
export async function startBareNatsServer(options: {
  jetstream: boolean;
  killOnConnect?: boolean;
  config?: string;
}): Promise<BareNatsServer> {
  const dir = await mkdtemp(join(tmpdir(), "lanemap-bare-nats-"));
  const args = ["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", dir];
  if (options.config !== undefined) {
    await writeFile(join(dir, "nats.conf"), options.config);
    args.push("-c", join(dir, "nats.conf"));
  }
  if (options.jetstream) args.push("-js", "-sd", join(dir, "js"));
  if (options.killOnConnect) args.push("-DV");
  const child = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let log = "";
  child.stderr!.on("data", (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
    if (options.killOnConnect && /<<- \[CONNECT /.test(log)) child.kill("SIGKILL");
  });
  const deadline = Date.now() + 10_000;
  let url: string | undefined;
  while (!url) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`nats-server did not start: ${log.trim().split("\n").pop() ?? ""}`);
    for (const f of await readdir(dir)) {
      if (!f.endsWith(".ports")) continue;
      const ports = JSON.parse(await readFile(join(dir, f), "utf8")) as { nats?: string[] };
      url = ports.nats?.[0];
    }
    if (!url) await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    pid: child.pid!,
    exited,
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
