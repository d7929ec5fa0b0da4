/**
 * An upload that died between storing its artifact and writing its record leaves the object
 * without a record; the upload run again must not put the object over its name, which purges the
 * old chunks in place (a filtered STREAM.PURGE: the removal that lost a node's copy of a replicated
 * stream on nats-server 2.9.10, issue 14, nats-removals-node-kill.test.ts).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import { NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import { MODEL_OBJECT_BUCKET } from "../../shared/adapters/nats/names.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";

describe("uploading a model whose artifact a crashed upload left", { skip: natsMissing() }, () => {
  test("records the version over the artifact already stored, purges nothing, and reads the artifact back", async () => {
    await using nats = await natsFixture();
    const registry = await NatsModelRegistry.open(nats.nc);
    const artifact = new Uint8Array(300 * 1024).map((_, i) => i % 251);
    // What the crashed upload left: the object, no record.
    const objects = await new Objm(nats.nc).open(MODEL_OBJECT_BUCKET);
    await objects.putBlob({ name: "m-crashed" }, artifact);
    assert.equal(await registry.record("m-crashed"), undefined);

    const spy = await connect({ servers: nats.server.url, name: "purge-spy" });
    const purges: string[] = [];
    const sub = spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    await spy.flush();
    const { created } = await registry.upload("m-crashed", artifact);
    await nats.nc.flush();
    await spy.flush();
    sub.unsubscribe();
    await spy.close();
    assert.deepEqual(purges, [], "no purge of the artifacts' bucket");
    assert.equal(created, true);
    assert.deepEqual(await registry.artifact("m-crashed"), artifact);
  });
});
