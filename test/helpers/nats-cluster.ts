/**
 * A real 3-node NATS JetStream cluster on loopback, for tests that lose a node: three nats-server
 * processes (infra/nats/launcher.ts), each with its own store folder under one temporary root,
 * client ports chosen by the servers (`-1` + ports file), route ports chosen here by binding port 0
 * and releasing it (the routes of each node must name the others' ports before they start, so the
 * server cannot pick them). Another process may take such a port between our release and the
 * server's bind: then the whole start is retried with new ports, never a fixed one, and every node of
 * the failed attempt is killed — also those that came up after the first failure: a node left running
 * keeps the test file's process alive (its stderr pipe), so the file never exits and the suite hangs.
 *
 * Each cluster gets a name of its own: test files run two at a time, and two clusters of one name can
 * merge when a route port freed by one attempt is taken by the other file's node (nats-server accepts
 * a route from any server of its cluster name); nodes of different names refuse each other's routes.
 *
 * The start resolves once every node's /jsz shows a JetStream meta leader and both other peers
 * current (`meta_cluster`), so an R3 stream can be created at once. The connection it opens lists
 * all three client URLs and reconnects forever, as a lanemap process on a cluster should.
 *
 * The node-kill tests lose a node and bring it back through {@link killAndRestart}, and compare
 * every node's own copy of the streams afterwards through {@link replicasDisagree}: one way to
 * kill, wait and restart, not a copy per test file.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNatsServer, type NatsServer } from "../../infra/nats/launcher.js";
import { checkReplicaAgreement } from "../../shared/adapters/nats/index.js";

/** The prefix of every test cluster's name (`cluster.name` of its nodes: the prefix and 6 hex digits). */
export const CLUSTER_NAME_PREFIX = "lanemap-test-";
/** The nodes' server names, in order: `kill(0)` kills "n1". */
export const NODE_NAMES = ["n1", "n2", "n3"] as const;

export interface NatsCluster extends AsyncDisposable {
  /** The cluster's name (`cluster.name` of every node), {@link CLUSTER_NAME_PREFIX} and 6 hex digits. */
  readonly name: string;
  /** The three nodes, in NODE_NAMES order. */
  readonly servers: readonly NatsServer[];
  /** The client URLs of all three nodes (what NATS_URL lists, comma-separated). */
  readonly urls: readonly string[];
  /** `urls` joined by commas: the NATS_URL of a lanemap child process. */
  readonly natsUrl: string;
  /** A connection of the test's own, to all three URLs, reconnecting forever. */
  readonly nc: NatsConnection;
  /** Kills node `i` (SIGKILL by default: a machine that dies), keeping its store for `restart`. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /**
   * Freezes node `i` (SIGSTOP: a hung VM or a paused host) with `true`, thaws it (SIGCONT) with
   * `false`. A frozen node keeps its routes and client connections open and answers nothing;
   * dispose thaws every node before stopping it.
   */
  freeze(i: number, frozen: boolean): void;
  /** Starts node `i` again on the same ports and store, and waits until it is back in the meta group. */
  restart(i: number): Promise<void>;
  /** Resolves once every running node sees a meta leader and its peers current. */
  waitForMetaLeader(timeoutMs?: number): Promise<void>;
}

/** A free loopback TCP port: bound to port 0, read, released. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The meta group as one node's /jsz reports it. */
interface Jsz {
  meta_cluster?: { leader?: string; replicas?: { name: string; current: boolean; offline?: boolean }[] };
}

/** What one node's /jsz says of the meta group, or null when it does not answer. */
async function metaOf(server: NatsServer): Promise<NonNullable<Jsz["meta_cluster"]> | null> {
  if (server.monitoringUrl === null) return null;
  try {
    const res = await fetch(`${server.monitoringUrl}/jsz`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? (((await res.json()) as Jsz).meta_cluster ?? null) : null;
  } catch {
    return null;
  }
}

async function startOnce(root: string, name: string, attempt: number): Promise<NatsServer[]> {
  const routePorts: number[] = [];
  while (routePorts.length < NODE_NAMES.length) {
    const p = await freePort();
    if (!routePorts.includes(p)) routePorts.push(p);
  }
  // All three start at once: each node's routes retry until the others listen.
  const starts = await Promise.allSettled(
    NODE_NAMES.map((serverName, i) =>
      startNatsServer({
        storeDir: join(root, `${serverName}-${attempt}`),
        serverName,
        monitoring: true,
        cluster: {
          name,
          port: routePorts[i]!,
          routes: routePorts.filter((_, j) => j !== i),
        },
      }),
    ),
  );
  const servers = starts.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = starts.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed === undefined) return servers;
  await Promise.all(servers.map((s) => s.kill("SIGKILL")));
  throw failed.reason;
}

/**
 * Starts the cluster and connects to it; dispose closes the connection, stops the nodes and
 * removes every store folder.
 * @throws Error when no start succeeds in 3 attempts or the meta group has no leader within 30 s.
 */
export async function startNatsCluster(): Promise<NatsCluster> {
  const root = await mkdtemp(join(tmpdir(), "lanemap-nats-cluster-"));
  const name = `${CLUSTER_NAME_PREFIX}${randomBytes(3).toString("hex")}`;
  let servers: NatsServer[] | undefined;
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3 && servers === undefined; attempt++) {
    try {
      servers = await startOnce(root, name, attempt);
    } catch (err) {
      // A route port taken by someone else between freePort() and the server's bind.
      lastError = err;
    }
  }
  if (servers === undefined) {
    await rm(root, { recursive: true, force: true });
    throw new Error(`the 3-node cluster did not start: ${(lastError as Error).message}`, {
      cause: lastError,
    });
  }
  const nodes = servers;
  const down = new Set<number>();

  const waitForMetaLeader = async (timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const up = [0, 1, 2].filter((i) => !down.has(i));
      const metas = await Promise.all(up.map((i) => metaOf(nodes[i]!)));
      // Every running node follows the same leader, and the leader (only it knows how its
      // followers are doing) sees the other running nodes current.
      const leader = metas[0]?.leader;
      const agreed = leader !== undefined && metas.every((m) => m?.leader === leader);
      const atLeader = metas[up.findIndex((i) => NODE_NAMES[i] === leader)];
      const current = (atLeader?.replicas ?? []).filter((r) => r.current && r.offline !== true).length;
      if (agreed && current >= up.length - 1) return;
      if (Date.now() > deadline)
        throw new Error(`no JetStream meta leader with ${up.length} current peers after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /**
   * Resolves once every running node answers a JetStream API request (account info). A node can
   * report the meta leader a moment before it serves the account's JetStream API; a client sent
   * there meanwhile hears "jetstream not enabled" (seen once in cluster-scale.test.ts).
   */
  const waitForJetStreamApi = async (timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (const i of [0, 1, 2].filter((n) => !down.has(n))) {
      const probe = await connect({ servers: nodes[i]!.url, name: "lanemap-test-cluster-probe" });
      try {
        for (;;) {
          try {
            await jetstreamManager(probe, { timeout: 2_000 });
            break;
          } catch (err) {
            if (Date.now() > deadline)
              throw new Error(`node ${i} serves no JetStream API after ${timeoutMs} ms: ${String(err)}`, {
                cause: err,
              });
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      } finally {
        await probe.close();
      }
    }
  };

  const frozen = new Set<number>();
  const freeze = (i: number, on: boolean): void => {
    process.kill(nodes[i]!.pid, on ? "SIGSTOP" : "SIGCONT");
    if (on) frozen.add(i);
    else frozen.delete(i);
  };
  const stopAll = async (): Promise<void> => {
    // A stopped process hears SIGTERM only once it runs again.
    for (const i of [...frozen]) freeze(i, false);
    await Promise.all(nodes.map((s) => s.stop()));
    await rm(root, { recursive: true, force: true });
  };

  let nc: NatsConnection;
  try {
    await waitForMetaLeader();
    await waitForJetStreamApi();
    nc = await connect({
      servers: nodes.map((s) => s.url),
      name: "lanemap-test-cluster",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
  } catch (err) {
    await stopAll();
    throw err;
  }

  const urls = nodes.map((s) => s.url);
  return {
    name,
    servers: nodes,
    urls,
    natsUrl: urls.join(","),
    nc,
    waitForMetaLeader,
    freeze,
    async kill(i, signal = "SIGKILL") {
      await nodes[i]!.kill(signal);
      down.add(i);
    },
    async restart(i) {
      await nodes[i]!.restart();
      down.delete(i);
      await waitForMetaLeader();
    },
    async [Symbol.asyncDispose]() {
      await nc.close().catch(() => undefined);
      await stopAll();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How {@link killAndRestart} loses node `i` and when it brings it back. */
export interface KillAndRestartOptions<T> {
  /** How long the node stays down, counted from its exit (default 0: restarted once `whileDown` is done). */
  readonly downMs?: number;
  /**
   * What the test does with the node down (reads with it gone, an election to wait for): runs once
   * the node has exited, and the node is restarted only once it is done and `downMs` has passed.
   */
  readonly whileDown?: () => Promise<T>;
}

/**
 * Loses node `i` of `cluster` and brings it back, as every node-kill test does: SIGKILLs it (a
 * machine that dies; its store kept), runs `whileDown` and waits out `downMs`, both from the node's
 * exit, then restarts it on the same ports and store. Resolves with what `whileDown` resolved with,
 * once every running node sees it back in the meta group. A node already killed (a kill that landed
 * halfway through a burst of writes) is not killed again: its down time starts now.
 */
export async function killAndRestart<T = undefined>(
  cluster: NatsCluster,
  i: number,
  options: KillAndRestartOptions<T> = {},
): Promise<T | undefined> {
  await cluster.kill(i);
  const [, result] = await Promise.all([sleep(options.downMs ?? 0), options.whileDown?.()]);
  await cluster.restart(i);
  return result;
}

/**
 * Waits up to `timeoutMs` until every node's own copy (its /jsz, checkReplicaAgreement: what `ops
 * status` runs) of every stream `which` selects agrees, every node answering. Resolves with null
 * then, or with what disagreed at the last look, in words: a restarted node catches up within
 * seconds, a diverged copy never does.
 */
export async function replicasDisagree(
  cluster: NatsCluster,
  which: (stream: string) => boolean,
  timeoutMs = 20_000,
): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Read anew each time: a restarted node's monitoring port is its own again.
    const urls = cluster.servers.map((s) => s.monitoringUrl!);
    let last: string;
    try {
      const a = await checkReplicaAgreement(urls, { resampleMs: 1_000 });
      const odd = a.divergences.filter((d) => which(d.stream));
      const silent = a.nodes.flatMap((n) => (n.node === null ? [`${n.url}: ${n.error}`] : []));
      if (odd.length === 0 && silent.length === 0) return null;
      last = [
        ...odd.map((d) => `${d.stream} on ${d.node}${d.isLeader ? " (its leader)" : ""}: ${d.why}`),
        ...silent,
      ].join("; ");
    } catch (err) {
      last = `the check failed: ${String(err)}`;
    }
    if (Date.now() > deadline) return last;
    await sleep(50);
  }
}
