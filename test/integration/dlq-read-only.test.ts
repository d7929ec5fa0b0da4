/**
 * `lanemap dlq list` only reads: it creates no stream when none exists and leaves an existing
 * stream's limits as they are, whatever LANEMAP_STREAM_* its environment says (issue 14, F4: it
 * created or updated LANEMAP_TILES, a meta-leader round trip a node loss delays, and a rewrite of
 * the deployment's limits from an operator's shell).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { DLQ_STREAM, INGEST_STREAM, ensureStreams } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { runLanemap, tempDir, testConfig, testEnv } from "./speed-fixtures.js";

describe("lanemap dlq list is read-only", { skip: natsMissing() }, () => {
  test("on a server with no lanemap stream it says there are no dead letters and creates no stream", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const r = await runLanemap(["dlq", "list"], testEnv(dir.path, { NATS_URL: nats.server.url }));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no dead letters$/m);
    const jsm = await jetstreamManager(nats.nc);
    for (const stream of [INGEST_STREAM, DLQ_STREAM])
      await assert.rejects(jsm.streams.info(stream), JetStreamApiError, `${stream} was not created`);
  });

  test("it leaves the streams' limits as they are when its environment asks for others", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    const jsm = await jetstreamManager(nats.nc);
    const deployed = testConfig(dir.path, { LANEMAP_STREAM_MAX_BYTES: String(64 * 1024 * 1024) });
    await ensureStreams(jsm, deployed.stream);
    const before = await Promise.all([INGEST_STREAM, DLQ_STREAM].map((s) => jsm.streams.info(s)));

    const r = await runLanemap(
      ["dlq", "list", "--json"],
      testEnv(dir.path, { NATS_URL: nats.server.url, LANEMAP_STREAM_MAX_BYTES: String(32 * 1024 * 1024) }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
    const after = await Promise.all([INGEST_STREAM, DLQ_STREAM].map((s) => jsm.streams.info(s)));
    for (const [i, info] of after.entries()) {
      assert.equal(info.config.max_bytes, 64 * 1024 * 1024, `${info.config.name} keeps its max_bytes`);
      assert.deepEqual(info.config, before[i]!.config, `${info.config.name} is not updated`);
    }
  });
});
