/**
 * A stream JetStream cannot store is an operator's configuration problem: the message names the
 * variable that sized it (LANEMAP_STREAM_MAX_BYTES) and the stream. A real nats-server.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { StreamSetupError, ensureStreams } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { tempDir, testConfig } from "./speed-fixtures.js";

describe("an ingest stream larger than JetStream's storage", { skip: natsMissing() }, () => {
  test("is refused with a message that names LANEMAP_STREAM_MAX_BYTES and the stream", async () => {
    await using nats = await natsFixture();
    await using dir = await tempDir();
    // A petabyte: more than any test machine's JetStream store may hold.
    const config = testConfig(dir.path, { LANEMAP_STREAM_MAX_BYTES: String(2 ** 50) });
    await assert.rejects(ensureStreams(await jetstreamManager(nats.nc), config.stream, 1), (err: unknown) => {
      assert.ok(err instanceof StreamSetupError, String(err));
      assert.match(err.message, /stream LANEMAP_TILES/);
      assert.match(err.message, /insufficient storage/i);
      assert.match(err.message, /max_bytes 1125899906842624, LANEMAP_STREAM_MAX_BYTES: lower it/);
      return true;
    });
  });
});
