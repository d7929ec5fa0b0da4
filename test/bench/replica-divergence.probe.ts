/**
 * The rolling-kill reproduction of issue 14 F3 (README "Scaling out", replicas that diverge): not a
 * test (2.5 min a round, and whether a round diverges is up to nats-server), a probe an operator
 * re-runs to see whether the nats-server installed here still leaves replicas diverged.
 *
 * Per round: a 3-node loopback cluster (test/helpers/nats-cluster.ts), `OBJ_lanemap-views` and
 * `KV_lanemap-live` at R3, a writer putting 300 KB objects and KV entries and deleting an object
 * every fifth round, while nodes b, c, b, c, a, b are SIGKILLed 9 s apart and restarted 3 s later;
 * then every node's copies are compared as `lanemap ops status` compares them and, when some
 * diverged, repaired as `lanemap ops repair-replicas` does (`--trust-leader` with TRUST=1).
 *
 *   ROUNDS=3 TRUST=1 node --import tsx test/bench/replica-divergence.probe.ts
 */
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { pino } from "pino";
import { formatRepairReplicas, repairReplicas } from "../../infra/ops/index.js";
import { checkReplicaAgreement, type NodeReport } from "../../shared/adapters/nats/index.js";
import { startNatsCluster } from "../helpers/nats-cluster.js";

const ROUNDS = Number(process.env.ROUNDS ?? 1);
/** Nodes killed in turn (b, c, b, c, a, b), as in the operator's check. */
const KILLS = [1, 2, 1, 2, 0, 1];

const copies = (nodes: readonly NodeReport[]): string[] =>
  nodes.flatMap((n) =>
    n.node === null
      ? [`${n.url}: ${n.error}`]
      : [...n.streams].map(
          ([s, c]) =>
            `${n.node} ${s}: ${c.messages} msgs, first_seq ${c.firstSeq}, last_seq ${c.lastSeq}, ${c.numDeleted} deleted, leader ${c.leader}`,
        ),
  );

for (let round = 0; round < ROUNDS; round++) {
  await using cluster = await startNatsCluster();
  const os = await new Objm(cluster.nc).create("lanemap-views", { replicas: 3 });
  const kv = await new Kvm(cluster.nc).create("lanemap-live", { replicas: 3, history: 1 });
  let stop = false;
  let written = 0;
  let failed = 0;
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      const name = (k: number) => `v${String(k % 40).padStart(6, "0")}/class.bin`;
      try {
        await os.putBlob({ name: name(i) }, new Uint8Array(300_000 + (i % 7) * 1000));
        await kv.put(`tile.${i % 50}`, new Uint8Array(200));
        if (i % 5 === 0) await os.delete(name(i + 20)).catch(() => undefined);
        written++;
      } catch {
        // A node just died: the write is lost or retried by the next round of the loop.
        failed++;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  for (const n of KILLS) {
    await new Promise((r) => setTimeout(r, 9_000));
    await cluster.kill(n, "SIGKILL");
    await new Promise((r) => setTimeout(r, 3_000));
    // Not cluster.restart(), which waits for the meta group: the next kill comes 9 s after the
    // start, whether or not the node has caught up (as in the operator's check).
    await cluster.servers[n]!.restart();
  }
  await new Promise((r) => setTimeout(r, 8_000));
  stop = true;
  await writer;
  // Catch-up time for every node before the copies are compared.
  await new Promise((r) => setTimeout(r, 5_000));
  const urls = cluster.servers.map((s) => s.monitoringUrl!);
  const found = await checkReplicaAgreement(urls);
  console.log(`round ${round + 1}: ${written} writes, ${failed} failed`);
  for (const line of copies(found.nodes)) console.log(`  ${line}`);
  for (const d of found.divergences) console.log(`  DIVERGED ${d.stream} on ${d.node}: ${d.why}`);
  if (found.divergences.length > 0) {
    const t0 = performance.now();
    const report = await repairReplicas({
      nc: cluster.nc,
      monitorUrls: urls,
      dryRun: false,
      trustLeader: process.env.TRUST === "1",
      logger: pino({ level: "silent" }),
    });
    console.log(`  repair (${Math.round(performance.now() - t0)} ms):`);
    for (const line of formatRepairReplicas(report).split("\n")) console.log(`    ${line}`);
  }
}
