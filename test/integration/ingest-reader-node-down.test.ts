/**
 * Cluster test (3-node JetStream cluster on loopback, one node SIGKILLed): the kappa replay's read of
 * the ingest stream (`lanemap batch run --from-stream`, shared/adapters/nats/ingest-reader.ts) reads
 * the whole range every time.
 *
 * Why: it read through an ordered consumer, which nats-server before 2.12 (Debian ships 2.9.10) may
 * place on an offline peer (nats-server PR #7165). Measured with node n3 killed, 12 reads of 40
 * messages in a row: 6 failed with a bare "timeout" after 5.0 s, the other 6 took 32-69 ms (load
 * 7-8.5 on 2 cores). A run that met it stopped, or, had the consumer been created and its fetch come
 * back empty, would have ended the replay early.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  INGEST_STREAM,
  INGEST_SUBJECT_PREFIX,
  ensureStreams,
  readIngestMessages,
} from "../../shared/adapters/nats/index.js";
import { killAndRestart, startNatsCluster } from "../helpers/nats-cluster.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig, testLogger, waitFor } from "./speed-fixtures.js";

/** Messages in the stream. */
const MESSAGES = 40;
/** Reads in a row with the node down: one placed on it about one time in two fails almost surely. */
const RUNS = 8;
/** A read slower than this fails the test (all of them took under 0.1 s when they did not meet the dead node). */
const READ_BOUND_MS = 3_000;
/** The node killed: not the one the test's connection prefers. */
const DEAD = 2;

test(
  "with one node of a 3-node cluster SIGKILLed, the replay reads every message of the range, every time",
  { skip: natsMissing() },
  async () => {
    await using cluster = await startNatsCluster();
    await using dir = await tempDir("lanemap-ingest-reader-");
    const jsm = await jetstreamManager(cluster.nc);
    await ensureStreams(jsm, testConfig(dir.path).stream, 3);
    const js = jetstream(cluster.nc);
    for (let i = 1; i <= MESSAGES; i++)
      await js.publish(`${INGEST_SUBJECT_PREFIX}.c0000r0000`, new Uint8Array(64).fill(i));
    await killAndRestart(cluster, DEAD, {
      whileDown: async () => {
        await cluster.waitForMetaLeader();
        // The kill's cost, paid once (an election when the dead node led the stream), not measured.
        await waitFor("a leader of the ingest stream", async () => {
          const info = await jsm.streams.info(INGEST_STREAM).catch(() => null);
          return Boolean(info?.cluster?.leader);
        });

        const logger = testLogger();
        for (let run = 1; run <= RUNS; run++) {
          const t0 = performance.now();
          const seqs: number[] = [];
          for await (const m of readIngestMessages(cluster.nc, { fromSeq: 3, toSeq: MESSAGES - 2, logger }))
            seqs.push(m.streamSeq);
          const ms = performance.now() - t0;
          assert.deepEqual(
            seqs,
            Array.from({ length: MESSAGES - 4 }, (_, i) => i + 3),
            `run ${run}: every message from 3 to ${MESSAGES - 2}, in order`,
          );
          assert.ok(ms < READ_BOUND_MS, `run ${run} took ${Math.round(ms)} ms with a node down`);
        }
      },
    });
  },
);

test(
  "the replay's read creates no consumer, skips a removed message and ends at the range's end",
  { skip: natsMissing() },
  async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("lanemap-ingest-reader-");
    const jsm = await jetstreamManager(nats.nc);
    await ensureStreams(jsm, testConfig(dir.path).stream);
    const js = jetstream(nats.nc);
    for (let i = 1; i <= 10; i++)
      await js.publish(`${INGEST_SUBJECT_PREFIX}.c000${i % 3}r0000`, new Uint8Array(8).fill(i));
    await jsm.streams.deleteMessage(INGEST_STREAM, 5);
    const created: string[] = [];
    const sub = nats.nc.subscribe("$JS.API.CONSUMER.>", {
      callback: (_e, m) => void created.push(m.subject),
    });
    await nats.nc.flush();
    const read = async (fromSeq: number, toSeq: number) => {
      const out: [number, number][] = [];
      for await (const m of readIngestMessages(nats.nc, { fromSeq, toSeq, batch: 3 }))
        out.push([m.streamSeq, m.data[0] ?? -1]);
      return out;
    };
    try {
      assert.deepEqual(
        await read(2, 8),
        [2, 3, 4, 6, 7, 8].map((n) => [n, n]),
        "in order, each message with its own bytes, the removed one skipped",
      );
      assert.deepEqual(
        (await read(9, 20)).map(([seq]) => seq),
        [9, 10],
        "ends where the stream does",
      );
      await nats.nc.flush();
      assert.deepEqual(created, [], "no consumer was created");
    } finally {
      sub.unsubscribe();
    }
  },
);
