/**
 * Issue 14, operator findings F1 and F3: on nats-server 2.9.10 a node SIGKILLed and restarted
 * around a kappa run came back with the catalogue KV a sequence ahead of its peers (F1), and after a
 * failed `ops replay` the killed leader came back with an ingest message the others never got (F3).
 * Both runs made writes the stream's leader refuses. This probes every such write lanemap makes,
 * each through its real adapter on a real 3-node cluster at R3:
 *
 * - (a) a KV create on an existing key: the catalogue's `register` of a tile it holds (a kappa run
 *   registers every tile of the ingest stream again);
 * - (b) a KV update on a stale revision: the CURRENT pointer's compare-and-set lost to another move
 *   (`setCurrent(name, staleRevision)`, as two coordinators publishing at once);
 * - (c) a publish whose Nats-Msg-Id the stream holds inside its duplicate window: `publishTile`
 *   of a tile published moments ago (an ingest re-run, `ops replay` retried);
 * - (d) a publish expecting an empty subject that is not: copies of one bad tile dead-lettered at
 *   once (each letter expects Nats-Expected-Last-Subject-Sequence 0; `ops replay` over bad tiles:
 *   of 5 copies at once the server refuses 4, counted on one server).
 *
 * Each round makes a burst of refused writes mixed with accepted ones and SIGKILLs a node: halfway
 * through the burst, with writes in flight (F1's node died during a kappa run); before it, so the
 * node catches up through every refused write when it is back; or 0, 1.5 or 3 s after it (round
 * by round: KILL_AT); the stream's leader on even rounds, a follower on odd ones. The node is
 * restarted once the two left lead the stream (at once when the kill came before or during the
 * burst, after their election when it came behind it) and a few accepted writes follow (F1's copy
 * stayed offset by later writes);
 * then every node's copy of the stream (messages, first and last sequence, deletes: each node's own
 * /jsz) must be alike within 20 s, and a reader of the adapter must see what was written. Where
 * copies differ the findings also say whether `checkReplicaAgreement` (what `ops status` runs)
 * names the stream.
 *
 * One round per kind by default (the leader killed halfway through the burst), each kind on a
 * cluster of its own and the four at once; LANEMAP_TEST_REFUSED_ROUNDS=N runs N. No kind diverged
 * in 34 rounds each on nats-server 2.9.10 (README, "Writes the leader refuses"): the file stays as
 * the guard.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import {
  DLQ_STREAM,
  DeadLetterQueue,
  INGEST_STREAM,
  NatsPublishedViews,
  NatsTileArchive,
  checkReplicaAgreement,
  ensureStreams,
  kvStreamName,
  retryTransient,
} from "../../shared/adapters/nats/index.js";
import { CATALOGUE_BUCKET, HEADERS, VIEW_POINTER_BUCKET } from "../../shared/adapters/nats/names.js";
import { ViewPointerConflictError, dataPaths } from "../../shared/index.js";
import { publishTile } from "../../speed/index.js";
import { entryOf } from "../helpers/archive-entries.js";
import { natsMissing } from "../helpers/nats.js";
import { NODE_NAMES, killAndRestart, startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.js";
import { tempDataDir, writeNumberedVersion } from "../helpers/serving-views.js";
import { tempDir, testConfig, waitFor } from "./speed-fixtures.js";

const ROUNDS = Number(process.env["LANEMAP_TEST_REFUSED_ROUNDS"] ?? 1);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One kind of refused write through its adapter: the stream it lands in, and what a reader must see. */
interface RefusedWrites {
  /** The JetStream stream the writes go to. */
  readonly stream: string;
  /**
   * This round's burst: refused writes mixed with accepted ones, calling `halfway` once half the
   * refused writes are made (a kill may then land while the rest are in flight); resolves with how
   * many the server refused.
   */
  burst(round: number, halfway: () => void): Promise<number>;
  /** Accepted writes after the restart. */
  later(round: number): Promise<void>;
  /** What a reader must see now, as comparable text. */
  expected(): string[];
  /** What a reader sees now, through the adapter. */
  read(): Promise<string[]>;
}

/** What one round found (nulls: nothing wrong). */
interface RoundFindings {
  /** Writes of the burst the server refused (0: the round probed nothing). */
  readonly refused: number;
  /** Node copies that still differed 20 s after the restart and the later writes, in words. */
  readonly diverged: string | null;
  /** When they differed: what checkReplicaAgreement (ops status) said of the stream. */
  readonly detected: string | null;
  /** How what the adapter's reader saw differs from what was written. */
  readonly reader: string | null;
}

/** How `seen` differs from `want`, in words, or null when alike. */
function difference(seen: readonly string[], want: readonly string[]): string | null {
  const s = new Set(seen);
  const w = new Set(want);
  const missing = want.filter((x) => !s.has(x));
  const extra = seen.filter((x) => !w.has(x));
  if (missing.length === 0 && extra.length === 0 && seen.length === want.length) return null;
  return `${seen.length} seen where ${want.length} expected; missing ${missing.length} (${missing.slice(0, 3).join(", ")}), extra ${extra.length} (${extra.slice(0, 3).join(", ")})`;
}

/**
 * Every node's own copy of `stream` exactly alike (messages, first/last seq, deletes) within 20 s,
 * or how the copies differed last and what checkReplicaAgreement named.
 */
async function copiesAlike(
  cluster: NatsCluster,
  stream: string,
): Promise<{ diverged: string | null; detected: string | null }> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    // Read anew each time: a restarted node's monitoring port is its own again.
    const urls = cluster.servers.map((s) => s.monitoringUrl!);
    const a = await checkReplicaAgreement(urls, { resampleMs: 500 });
    const copies = a.nodes.map((n) => {
      const c = n.node === null ? undefined : n.streams.get(stream);
      return c === undefined
        ? `${n.node ?? n.url}: none${n.node === null ? ` (${n.error})` : ""}`
        : `${n.node}: ${c.messages} msgs, seq ${c.firstSeq}..${c.lastSeq}, ${c.numDeleted} deleted`;
    });
    const figures = new Set(copies.map((c) => c.slice(c.indexOf(":"))));
    if (copies.length === NODE_NAMES.length && figures.size === 1 && !copies[0]!.includes("none"))
      return { diverged: null, detected: null };
    if (Date.now() > deadline) {
      const named = a.divergences.filter((d) => d.stream === stream);
      const detected = named.length === 0 ? null : named.map((d) => `${d.node}: ${d.why}`).join("; ");
      return { diverged: copies.join("; "), detected };
    }
    await sleep(1_000);
  }
}

/** A reader's view now, retried through a leader election for up to 20 s. */
async function readNow(r: RefusedWrites): Promise<string | null> {
  let seen: string[] | undefined;
  let error = "";
  const deadline = Date.now() + 20_000;
  while (seen === undefined && Date.now() < deadline) {
    try {
      seen = await r.read();
    } catch (err) {
      error = String(err);
      await sleep(500);
    }
  }
  if (seen === undefined) return `the reader failed: ${error}`;
  return difference(seen, r.expected());
}

/** The node index leading `stream` now. */
async function leaderOf(cluster: NatsCluster, stream: string): Promise<number> {
  const jsm = await jetstreamManager(cluster.nc, { checkAPI: false });
  const leader = (await jsm.streams.info(stream)).cluster?.leader;
  const i = NODE_NAMES.findIndex((n) => n === leader);
  assert.ok(i >= 0, `${stream} has a leader among ${NODE_NAMES.join(", ")} (it names ${leader})`);
  return i;
}

/** True when `stream` has a leader and it is not node `node` (false while it has none). */
async function ledWithout(cluster: NatsCluster, stream: string, node: number): Promise<boolean> {
  const jsm = await jetstreamManager(cluster.nc, { checkAPI: false });
  const leader = (await jsm.streams.info(stream).catch(() => null))?.cluster?.leader;
  return typeof leader === "string" && leader !== "" && leader !== NODE_NAMES[node];
}

/**
 * When each round's kill lands, by round: halfway through the burst, with writes in flight (F1: a
 * node killed during a kappa run); before it, so the node catches up through every refused write
 * when it is back; or 0, 1.5 or 3 s after its last write.
 */
const KILL_AT = ["halfway", "before", 0, 1_500, 3_000] as const;

/** Rounds of burst, kill, restart and later writes against `r`; resolves with each round's findings. */
async function probe(t: TestContext, cluster: NatsCluster, r: RefusedWrites): Promise<RoundFindings[]> {
  const out: RoundFindings[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const leader = await leaderOf(cluster, r.stream);
    // F3 was the stream's leader; F1 did not say: the leader on even rounds, a follower on odd ones.
    const victim = round % 2 === 0 ? leader : (leader + 1 + (round % 3 === 0 ? 1 : 0)) % 3;
    const when = KILL_AT[round % KILL_AT.length]!;
    let killed: Promise<void> | undefined;
    if (when === "before") await (killed = cluster.kill(victim));
    const refused = await r.burst(round, () => {
      if (when === "halfway") killed ??= cluster.kill(victim);
    });
    if (killed === undefined) await sleep(typeof when === "number" ? when : 0);
    // A kill already landed (before or halfway through the burst) is awaited, not made again.
    await killed;
    // Back once the two left lead the stream, which the node then rejoins as a follower behind them:
    // after a kill before or halfway through the burst that is at once (a new leader stored the
    // burst's later writes); after a kill of the leader behind the burst, once they elected one.
    // (A fixed 3 s here cost each default round 3 s after the election it had already waited out.)
    await killAndRestart(cluster, victim, {
      whileDown: () =>
        waitFor(
          `a leader of ${r.stream} other than ${NODE_NAMES[victim]}`,
          () => ledWithout(cluster, r.stream, victim),
          60_000,
        ),
    });
    await r.later(round);
    const { diverged, detected } = await copiesAlike(cluster, r.stream);
    const reader = await readNow(r);
    const f = { refused, diverged, detected, reader };
    const at =
      typeof when === "number"
        ? `${when} ms after the burst`
        : when === "halfway"
          ? "halfway through the burst"
          : "before the burst, down through it";
    t.diagnostic(
      `round ${round + 1} (${NODE_NAMES[victim]}${victim === leader ? ", the leader," : ""} killed ${at}): ${JSON.stringify(f)}`,
    );
    out.push(f);
  }
  return out;
}

/** Asserts that every round's burst was refused in part (else it probed nothing) and that none went wrong. */
function assertSound(findings: readonly RoundFindings[]): void {
  assert.deepEqual(
    findings.filter((f) => f.refused === 0),
    [],
    "every round's burst had writes the server refused",
  );
  assert.deepEqual(
    findings.filter((f) => f.diverged ?? f.reader),
    [],
    "no copy diverged, no reader saw other than what was written",
  );
}

/** Accepted writes per burst, refused ones per burst, accepted writes after each restart. */
const NEW_PER_BURST = 5;
const REFUSED_PER_BURST = 20;
const LATER = 3;
/** Entries written before the first round: more than a burst refuses. */
const FILLED = 30;

describe(
  "writes the leader refuses in replicated streams when a node dies around them",
  // Each kind on a cluster of its own, all four at once: a round is mostly waiting (the election
  // after the kill, the restart), and a kill of one kind's node must not land in another's round.
  { skip: natsMissing(), concurrency: true },
  () => {
    test("registering catalogued tiles again (KV creates refused as 'key exists') leaves every node's copy of the catalogue alike and every entry readable", async (t) => {
      await using cluster = await startNatsCluster();
      const archive = await NatsTileArchive.open(cluster.nc, { replicas: 3 });
      const ids: string[] = [];
      const hashOf = (id: string) => createHash("sha256").update(id).digest("hex");
      const register = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const id = `t${String(ids.length).padStart(4, "0")}`;
          // created is false when a create stored before its ack was lost is retried: still ours.
          const { entry } = await archive.register(entryOf(id, hashOf(id)));
          assert.equal(entry.contentHash, hashOf(id));
          ids.push(id);
        }
      };
      await register(FILLED);
      const findings = await probe(t, cluster, {
        stream: kvStreamName(CATALOGUE_BUCKET),
        async burst(_, halfway) {
          // A kappa run's pass: the latest tiles registered again (refused), a few new ones.
          let refused = 0;
          for (const [i, id] of ids.slice(-REFUSED_PER_BURST).entries()) {
            if (i === REFUSED_PER_BURST / 2) halfway();
            if (!(await archive.register(entryOf(id, hashOf(id)))).created) refused++;
          }
          await register(NEW_PER_BURST);
          return refused;
        },
        later: () => register(LATER),
        expected: () => [...ids],
        read: async () => {
          const seen: string[] = [];
          for await (const e of archive.entries()) seen.push(e.tileId);
          return seen;
        },
      });
      assertSound(findings);
    });

    test("moving CURRENT on a stale revision (KV updates refused) leaves every node's copy of the pointer alike and the last accepted move current", async (t) => {
      await using cluster = await startNatsCluster();
      await using source = await tempDataDir();
      await using cache = await tempDataDir();
      const views = await NatsPublishedViews.open(cluster.nc, {
        cacheDir: join(cache.dir, "cache", "views"),
        replicas: 3,
      });
      const names: string[] = [];
      for (let v = 1; v <= 2; v++) {
        const name = await writeNumberedVersion(source.dir, v);
        await views.publish(join(dataPaths(source.dir).batchViews, name), name);
        names.push(name);
      }
      let current = (await views.setCurrent(names[0]!, null)).name;
      /** Moves CURRENT to the other version; resolves with the revision it moved from. */
      const move = async (): Promise<number> => {
        const next = names[(names.indexOf(current) + 1) % names.length]!;
        for (const deadline = Date.now() + 20_000; ;) {
          const pointer = await views.current();
          // A move stored before its answer was lost (the leader killed) is already done.
          if (pointer!.name === next) {
            current = next;
            return pointer!.revision - 1;
          }
          try {
            current = (await views.setCurrent(next, pointer!.revision)).name;
            return pointer!.revision;
          } catch (err) {
            if (Date.now() > deadline) throw err;
            await sleep(250);
          }
        }
      };
      const findings = await probe(t, cluster, {
        stream: kvStreamName(VIEW_POINTER_BUCKET),
        async burst(_, halfway) {
          // Two coordinators publishing at once: each move's loser holds the revision it read.
          let refused = 0;
          for (let i = 0; i < NEW_PER_BURST; i++) {
            if (i === Math.floor(NEW_PER_BURST / 2)) halfway();
            const stale = await move();
            for (let j = 0; j < REFUSED_PER_BURST / NEW_PER_BURST; j++) {
              // Refused (a conflict), or lost with a dying leader: a stale revision is never stored.
              const lost = await views.setCurrent(names[0]!, stale).then(
                () => assert.fail(`a move on stale revision ${stale} was stored`),
                (err: unknown) => err,
              );
              if (lost instanceof ViewPointerConflictError) refused++;
            }
          }
          return refused;
        },
        async later() {
          for (let i = 0; i < LATER; i++) await move();
        },
        expected: () => [`current ${current}`],
        read: async () => [`current ${(await views.current())?.name ?? "none"}`],
      });
      assertSound(findings);
    });

    test("publishing tiles again inside the duplicate window (Nats-Msg-Id duplicates) leaves every node's copy of the ingest stream alike and each tile in it once", async (t) => {
      await using cluster = await startNatsCluster();
      await using dir = await tempDir("lanemap-refused-ingest-");
      const jsm = await jetstreamManager(cluster.nc);
      await ensureStreams(jsm, testConfig(dir.path).stream, 3);
      const js = jetstream(cluster.nc);
      const tiles: string[] = [];
      const bytesOf = (id: string) => new TextEncoder().encode(`tile ${id}`);
      const publish = async (id: string) =>
        publishTile(js, bytesOf(id), { tileId: id, cell: "c3_4", acquired: "2024-06-01T10:40:00Z" });
      const fresh = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const id = `i${String(tiles.length).padStart(4, "0")}`;
          // Retried inside publishTile with its Nats-Msg-Id: a lost ack comes back as a duplicate.
          await publish(id);
          tiles.push(id);
        }
      };
      await fresh(FILLED);
      const findings = await probe(t, cluster, {
        stream: INGEST_STREAM,
        async burst(_, halfway) {
          // The latest tiles again (inside the window: refused as duplicates), then a few new ones.
          let refused = 0;
          for (const [i, id] of tiles.slice(-REFUSED_PER_BURST).entries()) {
            if (i === REFUSED_PER_BURST / 2) halfway();
            if ((await publish(id)).duplicate) refused++;
          }
          await fresh(NEW_PER_BURST);
          return refused;
        },
        later: () => fresh(LATER),
        expected: () => [...tiles],
        read: async () => {
          const info = await jsm.streams.info(INGEST_STREAM);
          const seen: string[] = [];
          for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
            const m = await jsm.streams.getMessage(INGEST_STREAM, { seq });
            if (m) seen.push(m.header.get(HEADERS.tileId));
          }
          return seen;
        },
      });
      assertSound(findings);
    });

    test("dead-lettering copies of one bad tile at once (publishes expecting an empty subject refused) leaves every node's copy of the dead letters alike and one letter per tile", async (t) => {
      await using cluster = await startNatsCluster();
      await using dir = await tempDir("lanemap-refused-dlq-");
      await ensureStreams(await jetstreamManager(cluster.nc), testConfig(dir.path).stream, 3);
      const dlq = await DeadLetterQueue.open(cluster.nc);
      const bad: string[] = [];
      let originalSeq = 1000;
      /** Copies of one bad tile (ops replay's copies: the same bytes, each its own sequence) at once. */
      const deadLetter = (id: string, copies: number) =>
        Promise.all(
          Array.from({ length: copies }, () => {
            const h = headers();
            h.set(HEADERS.tileId, id);
            const input = {
              originalSeq: ++originalSeq,
              subject: "tiles.in.c3_4",
              headers: h,
              data: new TextEncoder().encode(`bad tile ${id}`),
              code: "TILE_DECODE",
              reason: `bad tile ${id}`,
              deliveries: 2,
            } as const;
            // A request lost while the restarted node's streams elect: the speed lane redelivers.
            return retryTransient(`dead-lettering ${id}`, () => dlq.add(input));
          }),
        );
      const fresh = async (n: number, copies: number, halfway?: () => void) => {
        let refused = 0;
        for (let i = 0; i < n; i++) {
          if (i === Math.floor(n / 2)) halfway?.();
          const id = `b${String(bad.length).padStart(4, "0")}`;
          const added = await deadLetter(id, copies);
          assert.equal(new Set(added.map((a) => a.seq)).size, 1, `one letter for ${id}`);
          // Every copy but the one written was either refused by the server or saw the letter first.
          refused += added.filter((a) => a.duplicate).length;
          bad.push(id);
        }
        return refused;
      };
      await fresh(FILLED, 1);
      const findings = await probe(t, cluster, {
        stream: DLQ_STREAM,
        burst: (_, halfway) => fresh(REFUSED_PER_BURST / 4, 5, halfway),
        later: async () => void (await fresh(LATER, 1)),
        expected: () => [...bad],
        read: async () => (await dlq.list()).map((l) => l.tileId ?? "none"),
      });
      assertSound(findings);
    });
  },
);
