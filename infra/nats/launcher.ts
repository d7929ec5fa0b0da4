/**
 * Starts a real nats-server child process with JetStream: on a free loopback port (config
 * `port: -1` + a ports file, never a fixed port), with its store in a folder of ours. Used by
 * `lanemap start` (embedded mode, store in the data directory) and by every test that needs NATS
 * (store in a temporary folder that dispose removes whole). Modelled on nats.js's nst launcher.
 * With `cluster` it starts one node of a JetStream cluster (test/helpers/nats-cluster.ts starts three).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LanemapError } from "../../shared/index.js";

/** nats-server is not on PATH. */
export class NatsServerMissingError extends LanemapError {
  constructor() {
    super(
      "NATS_SERVER_MISSING",
      "nats-server is not installed or not on PATH. Install it (Debian/Ubuntu: `sudo apt-get install nats-server`; macOS: `brew install nats-server`) or set NATS_URL to a running server.",
    );
  }
}

/**
 * The ping settings of a cluster node, the same as infra/nats/cluster-node-*.conf's (a deployment
 * test compares them): a node pings its routes and clients every `interval` and drops one that
 * leaves `max` pings unanswered. nats-server's default (2 min x 2) kept the routes and clients of a
 * frozen node (SIGSTOP, a hung VM) for 4-6 minutes (issue 14, F6); these drop them in 15-20 s.
 */
export const CLUSTER_PING = { interval: "5s", max: 3 } as const;

export interface NatsServerOptions {
  /** JetStream store folder; default a new temporary folder removed on stop. */
  storeDir?: string;
  /** Largest message payload (bytes); nats-server's default is 1 MiB. */
  maxPayload?: number;
  /** Fixed port (tests and the embedded default use -1: any free port). */
  port?: number;
  /** Stop waiting for the server to come up after this long. */
  startTimeoutMs?: number;
  /** The node's name in a cluster (`server_name`; JetStream peers are known by it). */
  serverName?: string;
  /**
   * Makes this server a node of a JetStream cluster: its route listener on loopback `port` (a fixed
   * port, since the other nodes' routes name it) and routes to the other nodes' route `routes`.
   */
  cluster?: { readonly name: string; readonly port: number; readonly routes: readonly number[] };
  /** Serve the monitoring endpoints (/varz, /jsz) on a free loopback port (`monitoringUrl`). */
  monitoring?: boolean;
}

export interface NatsServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  /** `http://127.0.0.1:<port>` of /varz, /jsz, ... when started with `monitoring`, else null. */
  readonly monitoringUrl: string | null;
  /** Stops the server (SIGTERM, then SIGKILL) and removes a temporary store. */
  stop(): Promise<void>;
  /** Kills the server without cleaning up (to test restarts); `restart()` brings it back. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and store. */
  restart(): Promise<void>;
}

/**
 * True when a nats-server binary is on PATH (its `--version` exits 0 within 10 s: a probe that hung
 * would hold `lanemap start` before it printed a line).
 */
export function natsServerAvailable(): boolean {
  const r = spawnSync("nats-server", ["--version"], {
    stdio: "ignore",
    timeout: 10_000,
    killSignal: "SIGKILL",
  });
  return r.status === 0;
}

/** The ports file nats-server writes into `ports_file_dir` once it listens. */
interface PortsFile {
  nats?: string[];
  monitoring?: string[];
}

async function waitForPort(dir: string, child: ChildProcess, deadline: number): Promise<PortsFile> {
  for (;;) {
    if (child.exitCode !== null)
      throw new LanemapError("NATS_SERVER", `nats-server exited with code ${child.exitCode}`);
    try {
      const names = await readdir(dir);
      const f = names.find((n) => n.endsWith(".ports"));
      if (f) {
        const ports = JSON.parse(await readFile(join(dir, f), "utf8")) as PortsFile;
        if (ports.nats?.[0]) return ports;
      }
    } catch {
      // Not written yet.
    }
    if (Date.now() > deadline)
      throw new LanemapError("NATS_SERVER", "nats-server did not report its port in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once("exit", () => r()));
}

/** Starts nats-server with JetStream and resolves once it accepts connections. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  if (!natsServerAvailable()) throw new NatsServerMissingError();
  const temporary = options.storeDir === undefined;
  const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), "lanemap-nats-")));
  const runDir = join(storeDir, "run");
  await mkdir(runDir, { recursive: true });
  let port = options.port ?? -1;
  let monitoringUrl: string | null = null;
  let child: ChildProcess;
  let stderr = "";

  const launch = async (): Promise<void> => {
    await rm(runDir, { recursive: true, force: true });
    await mkdir(runDir, { recursive: true });
    const conf = join(runDir, "nats.conf");
    const { cluster } = options;
    await writeFile(
      conf,
      [
        ...(options.serverName === undefined ? [] : [`server_name: ${JSON.stringify(options.serverName)}`]),
        `listen: 127.0.0.1:${port}`,
        options.monitoring ? `http: "127.0.0.1:-1"` : `http: 0`,
        `ports_file_dir: ${JSON.stringify(runDir)}`,
        `max_payload: ${options.maxPayload ?? 1024 * 1024}`,
        `jetstream { store_dir: ${JSON.stringify(join(storeDir, "jetstream"))} }`,
        ...(cluster === undefined
          ? []
          : [
              `ping_interval: ${JSON.stringify(CLUSTER_PING.interval)}`,
              `ping_max: ${CLUSTER_PING.max}`,
              `cluster {`,
              `  name: ${JSON.stringify(cluster.name)}`,
              `  listen: "127.0.0.1:${cluster.port}"`,
              `  routes: [${cluster.routes.map((p) => `"nats-route://127.0.0.1:${p}"`).join(", ")}]`,
              `}`,
            ]),
        "",
      ].join("\n"),
    );
    // Its own process group: a Ctrl-C at the terminal signals the whole foreground group, and the
    // server must outlive it until lanemap has stopped in order (speed workers ack their tiles in
    // flight, the connection drains), then lanemap stops it.
    child = spawn("nats-server", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"], detached: true });
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    try {
      const ports = await waitForPort(runDir, child, Date.now() + (options.startTimeoutMs ?? 10_000));
      port = Number(new URL(ports.nats![0]!).port);
      monitoringUrl = ports.monitoring?.[0] ?? null;
    } catch (err) {
      child.kill("SIGKILL");
      throw new LanemapError(
        "NATS_SERVER",
        `${(err as Error).message}: ${stderr.trim().split("\n").pop() ?? ""}`,
        {
          cause: err,
        },
      );
    }
  };

  await launch();
  const kill = async (signal: NodeJS.Signals = "SIGKILL"): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited(child);
    }
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited(child);
      clearTimeout(t);
    }
    if (temporary) await rm(storeDir, { recursive: true, force: true });
  };
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get pid() {
      return child.pid ?? -1;
    },
    get monitoringUrl() {
      return monitoringUrl;
    },
    storeDir,
    stop,
    kill,
    restart: launch,
    [Symbol.asyncDispose]: stop,
  };
}
