/**
 * readObjectBytes (shared/adapters/nats/object-reads.ts): the object read every adapter uses
 * (archive, model registry, live view rasters, view manifests and files, tile objects, batch result
 * rasters) reads without a consumer what nats.js's consumer-based getBlob reads — byte for byte, in
 * every chunk layout — and refuses at once, by name, an object whose chunks do not match its info.
 * Real nats-server.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  CorruptObjectError,
  boundedObjects,
  listObjectInfos,
  putObjectOnce,
  readObjectBytes,
  readObjectToFile,
} from "../../shared/adapters/nats/object-reads.js";
import { isTransientBrokerError } from "../../shared/adapters/nats/jetstream-errors.js";
import { ERROR_CODES, LanemapError } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
import { natsFixture, natsMissing, startBareNatsServer } from "../helpers/nats.js";

const CHUNK = 128 * 1024;

/** Stores `bytes` as `name` in chunks of CHUNK bytes; returns its info's chunk count. */
async function put(store: ObjectStore, name: string, bytes: Uint8Array): Promise<number> {
  return (await store.putBlob({ name, options: { max_chunk_size: CHUNK } }, bytes)).chunks;
}

/** The subject of an object's info, as nats.js names it: the name in padded base64url. */
function metaSubject(bucket: string, name: string): string {
  return `$O.${bucket}.M.${Buffer.from(name).toString("base64").replace(/\+/g, "-").replace(/\//g, "_")}`;
}

/**
 * Asserts readObjectBytes returns exactly what nats.js's getBlob returns for `name`, and that
 * readObjectToFile writes exactly those bytes.
 */
async function assertReadsAsGetBlob(nc: NatsConnection, store: ObjectStore, bucket: string, name: string) {
  const expected = await store.getBlob(name);
  const read = await readObjectBytes(nc, bucket, name, { idleMs: 2_000 });
  assert.ok(expected && read, `${name}: both reads find it`);
  assert.equal(read.byteLength, expected.byteLength, `${name}: size`);
  assert.ok(Buffer.from(read).equals(Buffer.from(expected)), `${name}: bytes`);
  const dir = await mkdtemp(join(tmpdir(), "lanemap-object-read-"));
  try {
    const path = join(dir, "object");
    assert.equal(await readObjectToFile(nc, bucket, name, path, { idleMs: 2_000 }), true);
    assert.ok((await readFile(path)).equals(Buffer.from(expected)), `${name}: the file's bytes`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test(
  "an object of 0 bytes, 1 chunk, exactly 4 chunks or 4 chunks and a partial one reads byte for byte as nats.js's getBlob reads it",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    const store = await new Objm(nats.nc).create("reads");
    const cases: [string, number, number][] = [
      ["empty", 0, 0],
      ["one-chunk", 1_000, 1],
      ["four-chunks", 4 * CHUNK, 4],
      ["four-and-a-bit", 4 * CHUNK + 777, 5],
    ];
    for (const [name, size, chunks] of cases)
      assert.equal(await put(store, name, new Uint8Array(randomBytes(size))), chunks, `${name}: chunks`);
    for (const [name] of cases) await assertReadsAsGetBlob(nats.nc, store, "reads", name);
    assert.equal(await readObjectBytes(nats.nc, "reads", "absent"), null);
    const dir = await mkdtemp(join(tmpdir(), "lanemap-object-read-"));
    assert.equal(await readObjectToFile(nats.nc, "reads", "absent", join(dir, "absent")), false);
    assert.equal((await readFile(join(dir, "absent"))).length, 0, "an absent object leaves the file empty");
    await rm(dir, { recursive: true, force: true });
    assert.equal(await readObjectBytes(nats.nc, "no-such-bucket", "tile"), null);
    await store.delete("four-chunks");
    assert.equal(await readObjectBytes(nats.nc, "reads", "four-chunks"), null);
  },
);

test(
  "a replaced object, its old chunks purged, reads as its new bytes, also from the info listed before it was replaced",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    const store = await new Objm(nats.nc).create("replaced");
    await put(store, "tile", new Uint8Array(randomBytes(3 * CHUNK)));
    const [stale] = await listObjectInfos(await jetstreamManager(nats.nc), "replaced");
    assert.ok(stale);
    const now = new Uint8Array(randomBytes(2 * CHUNK + 5));
    await put(store, "tile", now);
    const jsm = await jetstreamManager(nats.nc);
    const old = await jsm.streams.info("OBJ_replaced", { subjects_filter: `$O.replaced.C.${stale.nuid}` });
    assert.equal(Object.keys(old.state.subjects ?? {}).length, 0, "nats.js purged the old chunks");
    await assertReadsAsGetBlob(nats.nc, store, "replaced", "tile");
    const read = await readObjectBytes(nats.nc, "replaced", "tile", { info: stale });
    assert.ok(read && Buffer.from(read).equals(Buffer.from(now)));
  },
);

test(
  "an object whose chunks are interleaved with another object's messages reads byte for byte as getBlob reads it",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    const store = await new Objm(nats.nc).create("mixed");
    await put(store, "first", new Uint8Array(randomBytes(CHUNK)));
    // Written as the object store writes one (ADR-20), but with other messages between its chunks,
    // as two writers of one bucket leave them: the chunks are not consecutive sequences.
    const js = jetstream(nats.nc);
    const bytes = new Uint8Array(randomBytes(3 * CHUNK + 100));
    const nuid = "interleavedtestnuid00001";
    for (let at = 0; at < bytes.length; at += CHUNK) {
      await js.publish(`$O.mixed.C.${nuid}`, bytes.subarray(at, at + CHUNK));
      await js.publish(`$O.mixed.C.otherobjectnuid000001`, new Uint8Array(randomBytes(64)));
      await js.publish(`$O.mixed.C.otherobjectnuid000001`, new Uint8Array(randomBytes(64)));
    }
    const digest = `SHA-256=${createHash("sha256").update(bytes).digest("base64url")}=`;
    const meta = {
      name: "woven",
      bucket: "mixed",
      nuid,
      size: bytes.length,
      chunks: 4,
      digest,
      mtime: new Date().toISOString(),
      options: { max_chunk_size: CHUNK },
    };
    await js.publish(metaSubject("mixed", "woven"), JSON.stringify(meta));
    await assertReadsAsGetBlob(nats.nc, store, "mixed", "woven");
    await assertReadsAsGetBlob(nats.nc, store, "mixed", "first");
  },
);

test(
  "an object with a chunk missing or bytes that do not match its digest is refused at once as corrupt, naming it, and not retried",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    const store = await new Objm(nats.nc).create("broken");
    await put(store, "holed", new Uint8Array(randomBytes(3 * CHUNK)));
    await put(store, "forged", new Uint8Array(randomBytes(2 * CHUNK)));
    const jsm = await jetstreamManager(nats.nc);
    // A chunk of "holed" deleted from the stream.
    const holed = (await listObjectInfos(jsm, "broken")).find((i) => i.name === "holed");
    assert.ok(holed);
    const chunk = await jsm.streams.getMessage("OBJ_broken", { last_by_subj: `$O.broken.C.${holed.nuid}` });
    assert.ok(chunk);
    await jsm.streams.deleteMessage("OBJ_broken", chunk.seq);
    // "forged": its info rewritten with another digest (same chunks, same nuid).
    const forged = await jsm.streams.getMessage("OBJ_broken", {
      last_by_subj: metaSubject("broken", "forged"),
    });
    assert.ok(forged);
    const meta = { ...forged.json<Record<string, unknown>>(), digest: `SHA-256=${"A".repeat(43)}=` };
    await jetstream(nats.nc).publish(forged.subject, JSON.stringify(meta));

    const t0 = Date.now();
    await assert.rejects(
      readObjectBytes(nats.nc, "broken", "holed"),
      (err: unknown) =>
        err instanceof CorruptObjectError &&
        err.name === "CorruptObjectError" &&
        err.message === "object holed of bucket broken is corrupt: 2 of its 3 chunks are stored",
    );
    await assert.rejects(
      boundedObjects(nats.nc, "broken", "tile object").getBlob("forged"),
      (err: unknown) =>
        err instanceof LanemapError &&
        err.code === "STORAGE" &&
        /^object forged of bucket broken is corrupt: its bytes' digest is SHA-256=\S+, its info says SHA-256=A{43}=$/.test(
          err.message,
        ),
    );
    // Not retried (guarded's retries would wait 100 ms + 200 ms + ...): refused at once.
    assert.ok(Date.now() - t0 < 1_000, `refused after ${Date.now() - t0} ms`);
    assert.equal(ERROR_CODES.STORAGE.permanent, false);
  },
);

test(
  "a read whose stream does not answer is given up after the request bound as a transient STORAGE error naming it",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    // A server whose JetStream API takes requests and never answers them, as a stream without a
    // leader: a subscriber swallows them (a server without JetStream, so it is the only one).
    await using server = await startBareNatsServer({ jetstream: false });
    const nc = await connect({ servers: server.url });
    try {
      nc.subscribe("$JS.API.>", { callback: () => undefined });
      await nc.flush();
      const t0 = Date.now();
      await assert.rejects(
        boundedObjects(nc, "silent", "tile object", 200).getBlob("tile"),
        (err: unknown) =>
          err instanceof LanemapError &&
          err.code === "STORAGE" &&
          !ERROR_CODES[err.code].permanent &&
          isTransientBrokerError(err.cause) &&
          err.message.startsWith("reading tile object tile: "),
      );
      // 6 tries of 200 ms and the retries' pauses (100 ms, 200 ms, ... 1.6 s): not for ever.
      assert.ok(Date.now() - t0 < 10_000, `gave up after ${Date.now() - t0} ms`);
    } finally {
      await nc.close();
    }
  },
);

test(
  "putObjectOnce writes an object nats.js reads as its own, writes nothing when the object holds the bytes, and never sends a purge, even over an existing name",
  { skip: natsMissing(), timeout: 30_000 },
  async () => {
    await using nats = await natsFixture();
    const store = await new Objm(nats.nc).create("once");
    // A filtered STREAM.PURGE lost a node's copy on nats-server 2.9.10 (issue 14): none may be sent.
    const spy = await connect({ servers: nats.server.url, name: "purge-spy" });
    const purges: string[] = [];
    spy.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    await spy.flush();
    try {
      const first = new Uint8Array(randomBytes(2 * CHUNK + 99));
      const second = new Uint8Array(randomBytes(CHUNK + 1));
      assert.equal(await putObjectOnce(nats.nc, "once", "r", first), true, "written");
      await put(store, "by-nats", first);
      const [ours, theirs] = [await store.info("r"), await store.info("by-nats")];
      assert.deepEqual(
        [ours?.size, ours?.chunks, ours?.digest, ours?.deleted],
        [theirs?.size, theirs?.chunks, theirs?.digest, theirs?.deleted],
        "the info nats.js writes for the same bytes",
      );
      assert.ok(Buffer.from((await store.getBlob("r"))!).equals(first), "nats.js's getBlob reads it");
      await assertReadsAsGetBlob(nats.nc, store, "once", "r");
      assert.equal(
        await putObjectOnce(nats.nc, "once", "r", first),
        false,
        "the same bytes again: nothing written",
      );
      assert.equal(await putObjectOnce(nats.nc, "once", "r", second), true, "other bytes over the name");
      assert.ok(
        Buffer.from((await readObjectBytes(nats.nc, "once", "r"))!).equals(second),
        "the newest bytes",
      );
      assert.ok(Buffer.from((await store.getBlob("r"))!).equals(second));
      await nats.nc.flush();
      await spy.flush();
      assert.deepEqual(purges, [], "no purge request was sent");
    } finally {
      await spy.close();
    }
  },
);

test("no adapter reads an object with ObjectStore.get or getBlob (a consumer) rather than readObjectBytes", async () => {
  const roots = ["shared", "batch", "speed", "serving", "infra"];
  const offenders: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(join(projectRoot, dir), { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (p.endsWith(".ts") && !p.endsWith("object-reads.ts")) {
        const src = await readFile(join(projectRoot, p), "utf8");
        // `objects.getBlob(object)` in shared/pipeline is the TileObjects interface, and
        // boundedObjects(...).getBlob the consumer-free read itself.
        for (const m of src.matchAll(/\.getBlob\(|(?:objects|[sS]tore|rasters)(?:\(\)\))?\.get\(/g)) {
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
