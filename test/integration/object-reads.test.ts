/**
 * getBlobWithin (shared/adapters/nats/object-reads.ts): the bounded object-store read the archive and
 * the model registry use returns what nats.js's getBlob returns — the whole object over many
 * chunks, null for an absent one. Real nats-server.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { Objm } from "@nats-io/obj";
import { getBlobWithin } from "../../shared/adapters/nats/object-reads.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";

test(
  "a bounded object read returns a many-chunk object byte for byte and null for an absent one",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    const store = await new Objm(nats.nc).create("reads");
    const bytes = new Uint8Array(randomBytes(700_000)); // several 128 KiB chunks
    await store.putBlob({ name: "tile", options: { max_chunk_size: 128 * 1024 } }, bytes);
    const read = await getBlobWithin(store, "tile", 2_000);
    assert.ok(read);
    assert.equal(read.byteLength, bytes.byteLength);
    assert.ok(Buffer.from(read).equals(Buffer.from(bytes)));
    assert.equal(await getBlobWithin(store, "absent", 2_000), null);
  },
);
