/**
 * getBlobWithin (shared/adapters/nats/object-reads.ts): the bounded object-store read every adapter
 * uses (archive, model registry, live view rasters, view manifests, tile objects, batch result
 * rasters) returns what nats.js's getBlob returns — the whole object over many chunks, null for an
 * absent one — and gives up an object whose chunks never come as a transient error. Real nats-server.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { boundedObjects, getBlobWithin } from "../../shared/adapters/nats/object-reads.js";
import { ERROR_CODES, LanemapError } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
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

test(
  "an object whose chunks never come is given up as a transient STORAGE error naming it, not waited for ever",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    const store = await new Objm(nats.nc).create("stalls");
    const info = await store.putBlob(
      { name: "tile", options: { max_chunk_size: 128 * 1024 } },
      new Uint8Array(randomBytes(300_000)),
    );
    // The object's info is there but its chunks are gone: nats.js's ordered consumer waits for
    // them as it does on a dead node (object-reads.ts).
    const jsm = await jetstreamManager(nats.nc);
    await jsm.streams.purge("OBJ_stalls", { filter: `$O.stalls.C.${info.nuid}` });
    const t0 = Date.now();
    await assert.rejects(
      boundedObjects(store, "tile object", 200).getBlob("tile"),
      (err: unknown) =>
        err instanceof LanemapError &&
        err.code === "STORAGE" &&
        !ERROR_CODES[err.code].permanent &&
        /^reading tile object tile: reading object tile: no data for 200 ms$/.test(err.message),
    );
    assert.ok(Date.now() - t0 < 15_000, `gave up after ${Date.now() - t0} ms`);
  },
);

test("no adapter reads an object with ObjectStore.getBlob, which may wait for ever, rather than the bounded read", async () => {
  const roots = ["shared", "batch", "speed", "serving", "infra"];
  const offenders: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(join(projectRoot, dir), { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (p.endsWith(".ts") && !p.endsWith("object-reads.ts")) {
        const src = await readFile(join(projectRoot, p), "utf8");
        // `objects.getBlob(object)` in shared/pipeline is the TileObjects interface, and
        // boundedObjects(...).getBlob the bounded read itself.
        for (const m of src.matchAll(/\.getBlob\(/g)) {
          const around = src.slice(Math.max(0, m.index - 50), m.index + 20);
          if (!/objects\.getBlob\(object\)|boundedObjects\([^)]*\)\.getBlob\(/.test(around))
            offenders.push(`${p}: ${around.trim()}`);
        }
      }
    }
  };
  for (const r of roots) await walk(r);
  assert.deepEqual(offenders, []);
});
