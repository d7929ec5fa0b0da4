/**
 * A producer's large tile (over max_payload) is an object `<tileId>.<16 hex of its SHA-256>` of
 * `lanemap-tiles`, referenced by an empty ingest message. nats.js's `putBlob` purges the chunks it
 * wrote when it fails half way, and a writer racing another over the same new name purges the
 * other's: filtered STREAM.PURGEs, which lost a node's copy of a replicated stream on nats-server
 * 2.9.10 (issue 14, nats-removals-node-kill.test.ts). `publishTile` writes the object once and never
 * sends a purge. Real nats-server; the tile is read back as the speed lane reads it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import {
  INGEST_STREAM,
  TILE_OBJECT_BUCKET,
  boundedObjects,
  ensureStreams,
  ensureTileObjects,
  objectStoreStreamName,
} from "../../shared/adapters/nats/index.js";
import { ingestTileBytes } from "../../shared/index.js";
import { publishTile } from "../../speed/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig } from "./speed-fixtures.js";

test(
  "a large tile published concurrently, again, and after an upload that failed half way is read back whole, and no purge is ever sent",
  { skip: natsMissing(), timeout: 60_000 },
  async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir("pub14-publish-once-");
    const limits = testConfig(dir.path).stream;
    const jsm = await jetstreamManager(nats.nc);
    await ensureStreams(jsm, limits);
    await ensureTileObjects(nats.nc, limits);
    const js = jetstream(nats.nc);
    const spy = await connect({ servers: nats.server.url, name: "purge-spy" });
    const purges: string[] = [];
    spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    await spy.flush();
    try {
      // Not a GeoTIFF: publishTile does not read the bytes, and the object path is what is tested.
      const cramped = new Uint8Array(randomBytes(600 * 1024));
      const meta = { tileId: "cramped", cell: "c0001r0001", acquired: "2024-05-01T00:00:00Z" };
      // Room for a few chunks of the upload, not all: the bucket refuses the rest (discard new).
      const stream = objectStoreStreamName(TILE_OBJECT_BUCKET);
      const { config } = await jsm.streams.info(stream);
      await jsm.streams.update(stream, { ...config, max_bytes: 300 * 1024 });
      await assert.rejects(publishTile(js, cramped, meta, { maxPayload: 64 * 1024 }), /maximum bytes/);
      await jsm.streams.update(stream, { ...config, max_bytes: -1 });
      const again = await publishTile(js, cramped, meta, { maxPayload: 64 * 1024 });

      const racing = new Uint8Array(randomBytes(900 * 1024));
      const meta2 = { tileId: "racing", cell: "c0002r0001", acquired: "2024-05-02T00:00:00Z" };
      const raced = await Promise.all(
        [1, 2, 3, 4].map(() => publishTile(js, racing, meta2, { maxPayload: 64 * 1024 })),
      );
      const later = await publishTile(js, racing, meta2, { maxPayload: 64 * 1024 });
      await nats.nc.flush();
      await spy.flush();
      assert.deepEqual(purges, [], "no purge request was sent");

      assert.match(again.object ?? "", /^cramped\.[0-9a-f]{16}$/);
      assert.equal(new Set([...raced, later].map((p) => p.object)).size, 1, "one object name");
      assert.equal(new Set([...raced, later].map((p) => p.seq)).size, 1, "one ingest message");
      const objects = boundedObjects(nats.nc, TILE_OBJECT_BUCKET, "tile object");
      for (const [sent, bytes] of [
        [again, cramped],
        [later, racing],
      ] as const) {
        const m = await jsm.streams.getMessage(INGEST_STREAM, { seq: sent.seq });
        assert.ok(m, `ingest message ${sent.seq}`);
        assert.equal(m.data.length, 0, "the message only references the object");
        const read = await ingestTileBytes({ headers: m.header, data: m.data }, objects);
        assert.ok(Buffer.from(read).equals(Buffer.from(bytes)), `${sent.object}: the bytes published`);
      }
    } finally {
      await spy.close();
    }
  },
);
