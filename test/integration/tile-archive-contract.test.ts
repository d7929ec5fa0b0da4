/**
 * One contract for every `TileArchive` backend (issue 14): the files backend in a temporary data
 * directory and the JetStream backend on a real nats-server keep the same promises, so the lanes
 * can be handed either.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ArchiveStore, TileConflictError } from "../../shared/adapters/archive/index.js";
import { NatsTileArchive, kvKey } from "../../shared/adapters/nats/index.js";
import { LanemapError, TileInvalidError, isPermanent } from "../../shared/errors.js";
import type { TileArchive } from "../../shared/storage/index.js";
import { badOf, entryOf } from "../helpers/archive-entries.js";
import { natsFixture, natsMissing, startNatsServer } from "../helpers/nats.js";
import { tempDir } from "./speed-fixtures.js";

const sha = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A backend under test: an archive, a second view of the same storage (another connection), cleanup. */
interface Backend {
  archive: TileArchive;
  second(): Promise<TileArchive>;
  dispose(): Promise<void>;
}

function contract(name: string, open: () => Promise<Backend>, skip?: string): void {
  describe(`the ${name} tile archive`, { skip }, () => {
    let backend: Backend;
    before(async () => {
      backend = await open();
    });
    after(async () => {
      await backend?.dispose();
    });

    test("stores an object under its sha256, reads it back, and storing it again is a no-op", async () => {
      const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) % 251);
      const first = await backend.archive.putObject(bytes);
      assert.equal(first.contentHash, sha(bytes));
      assert.equal(first.created, true);
      assert.deepEqual(await backend.archive.readObject(first.contentHash), bytes);
      const again = await backend.archive.putObject(bytes);
      assert.deepEqual({ ...again }, { ...first, created: false });
    });

    test("a missing object is OBJECT_MISSING", async () => {
      await assert.rejects(backend.archive.readObject("0".repeat(64)), (err: unknown) => {
        assert.ok(err instanceof LanemapError);
        assert.equal(err.code, "OBJECT_MISSING");
        return true;
      });
    });

    test("the first registration of a tile id wins; the same content again is not created", async () => {
      const entry = entryOf("tile.a-1", "a".repeat(64));
      assert.equal(await backend.archive.get(entry.tileId), undefined);
      const first = await backend.archive.register(entry);
      assert.equal(first.created, true);
      assert.deepEqual(first.entry, entry);
      const again = await backend.archive.register({ ...entry, registeredAt: "2025-01-01T00:00:00Z" });
      assert.equal(again.created, false);
      assert.deepEqual(again.entry, entry);
      assert.deepEqual(await backend.archive.get(entry.tileId), entry);
    });

    test("registering a tile id again with other content is a TILE_CONFLICT", async () => {
      const entry = entryOf("tile-b", "b".repeat(64));
      await backend.archive.register(entry);
      await assert.rejects(
        backend.archive.register({ ...entry, contentHash: "c".repeat(64) }),
        (err: unknown) => err instanceof TileConflictError && err.code === "TILE_CONFLICT",
      );
      assert.equal((await backend.archive.get(entry.tileId))?.contentHash, "b".repeat(64));
    });

    test("an entry that fails the catalogue schema is refused and not stored", async () => {
      const bad = { ...entryOf("tile-c", "not-a-hash"), width: -1 };
      await assert.rejects(backend.archive.register(bad), (err: unknown) => {
        assert.ok(err instanceof TileInvalidError);
        assert.match(err.message, /contentHash/);
        return true;
      });
      assert.equal(await backend.archive.get("tile-c"), undefined);
    });

    test("bad-tile records are kept one per key, the later replacing the older", async () => {
      await backend.archive.recordBad(badOf("broken.tif", "first"));
      await backend.archive.recordBad(badOf("scene 7/ä.tif", "other"));
      await backend.archive.recordBad(badOf("broken.tif", "second"));
      const records = await collect(backend.archive.badTiles());
      assert.deepEqual(records.map((r) => `${r.key}:${r.reason}`).sort(), [
        "broken.tif:second",
        "scene 7/ä.tif:other",
      ]);
    });

    test("clearBad removes one record and says whether there was one", async () => {
      await backend.archive.recordBad(badOf("cleared.tif", "bad once"));
      assert.equal(await backend.archive.clearBad("cleared.tif"), true);
      assert.equal(await backend.archive.clearBad("cleared.tif"), false);
      assert.equal(await backend.archive.clearBad("never-recorded.tif"), false);
      const keys = (await collect(backend.archive.badTiles())).map((r) => r.key);
      assert.ok(!keys.includes("cleared.tif"));
    });

    test("remove takes an entry out, keeps an object another entry shares, deletes the last one (nats: by the next compaction), and frees the id", async () => {
      const bytes = new TextEncoder().encode("shared by two tile ids");
      const { contentHash } = await backend.archive.putObject(bytes);
      await backend.archive.register(entryOf("twin-a", contentHash));
      await backend.archive.register(entryOf("twin-b", contentHash));
      const first = await backend.archive.remove("twin-a");
      assert.equal(first?.entry.tileId, "twin-a");
      assert.equal(first?.objectRemoved, false);
      assert.equal(await backend.archive.get("twin-a"), undefined);
      assert.deepEqual(await backend.archive.readObject(contentHash), bytes);
      const ids = (await collect(backend.archive.entries())).map((e) => e.tileId);
      assert.ok(!ids.includes("twin-a") && ids.includes("twin-b"));
      const last = await backend.archive.remove("twin-b");
      if (backend.archive instanceof NatsTileArchive) {
        // Nothing is purged in place: the object is garbage until a compaction drops its generation.
        assert.equal(last?.objectRemoved, false);
        assert.deepEqual(await backend.archive.readObject(contentHash), bytes);
        const report = await backend.archive.compact({ graceMs: 0 });
        assert.ok(report.before.garbage.objects >= 1);
        assert.ok(report.deleted.length >= 1);
      } else assert.equal(last?.objectRemoved, true);
      await assert.rejects(
        backend.archive.readObject(contentHash),
        (err: unknown) => err instanceof LanemapError && err.code === "OBJECT_MISSING",
      );
      assert.equal(await backend.archive.remove("twin-b"), undefined, "removing twice finds nothing");
      const other = sha(new TextEncoder().encode("new content"));
      const again = await backend.archive.register(entryOf("twin-a", other));
      assert.equal(again.created, true, "a removed id can be registered again, with other content");
      assert.equal((await backend.archive.get("twin-a"))?.contentHash, other);
      await backend.archive.remove("twin-a");
    });

    test("a removal's tombstone is kept one per tile id, the later replacing the older, seen from a second connection, until it is dropped", async () => {
      const first = {
        tileId: "tile.gone-1",
        removedAt: "2026-12-01T10:00:00.000Z",
        ingestSeq: 7,
        contentHash: "d".repeat(64),
      };
      const later = { ...first, removedAt: "2026-12-01T11:00:00.000Z", ingestSeq: 12 };
      const noPosition = { ...first, tileId: "tile-gone-2", ingestSeq: null };
      await backend.archive.recordRemoval(first);
      await backend.archive.recordRemoval(later);
      await backend.archive.recordRemoval(noPosition);
      const byId = (a: { tileId: string }, b: { tileId: string }) => (a.tileId < b.tileId ? -1 : 1);
      const other = await backend.second();
      assert.deepEqual((await collect(other.removals())).sort(byId), [later, noPosition].sort(byId));
      assert.deepEqual(
        await other.removal(first.tileId),
        later,
        "the latest removal of an id is its tombstone",
      );
      assert.equal(await other.removal("never-removed"), undefined);
      assert.equal(await other.dropRemoval(first.tileId), true);
      assert.equal(await backend.archive.removal(first.tileId), undefined, "a dropped tombstone is gone");
      assert.equal(await backend.archive.dropRemoval(first.tileId), false, "dropped once");
      assert.deepEqual(await collect(backend.archive.removals()), [noPosition]);
      assert.equal(await backend.archive.dropRemoval(noPosition.tileId), true);
    });

    test("entries() streams 1,000 registered entries, each once", async () => {
      const ids = Array.from({ length: 1000 }, (_, i) => `bulk-${String(i).padStart(4, "0")}`);
      for (let i = 0; i < ids.length; i += 50)
        await Promise.all(
          ids.slice(i, i + 50).map((id) => backend.archive.register(entryOf(id, sha(Buffer.from(id))))),
        );
      const seen: string[] = [];
      for await (const e of backend.archive.entries()) if (e.tileId.startsWith("bulk-")) seen.push(e.tileId);
      assert.deepEqual(seen.sort(), ids);
    });

    test("a second connection sees what the first wrote", async () => {
      const bytes = new TextEncoder().encode("seen from the other machine");
      const { contentHash } = await backend.archive.putObject(bytes);
      await backend.archive.register(entryOf("tile-d", contentHash));
      const other = await backend.second();
      assert.deepEqual(await other.readObject(contentHash), bytes);
      assert.equal((await other.get("tile-d"))?.contentHash, contentHash);
      assert.equal((await other.register(entryOf("tile-d", contentHash))).created, false);
      assert.ok((await collect(other.badTiles())).some((r) => r.key === "broken.tif"));
    });
  });
}

contract("files", async () => {
  const dir = await tempDir("lanemap-archive-contract-");
  return {
    archive: new ArchiveStore(dir.path),
    second: async () => new ArchiveStore(dir.path),
    dispose: async () => dir[Symbol.asyncDispose](),
  };
});

contract(
  "nats",
  async () => {
    const server = await startNatsServer();
    const connections: NatsConnection[] = [];
    const open = async (): Promise<TileArchive> => {
      const nc = await connect({ servers: server.url, name: "lanemap-archive-contract" });
      connections.push(nc);
      return NatsTileArchive.open(nc, { replicas: 1 });
    };
    return {
      archive: await open(),
      second: open,
      async dispose() {
        for (const nc of connections) await nc.close().catch(() => undefined);
        await server.stop();
      },
    };
  },
  natsMissing(),
);

describe("the nats tile archive, beyond the contract", { skip: natsMissing() }, () => {
  test("tile ids map to distinct KV-safe keys", () => {
    assert.equal(kvKey("LC08_L2SP_021048"), "LC08_L2SP_021048");
    assert.equal(kvKey("tile.2024"), "tile=2E2024");
    assert.notEqual(kvKey("a.b"), kvKey("a_b"));
    assert.notEqual(kvKey("a=2Eb"), kvKey("a.b"));
    assert.match(kvKey("scene 7/ä.tif"), /^[-_=A-Za-z0-9]+$/);
  });

  test("a broker that is gone is a transient STORAGE error, not a crash", async () => {
    await using nats = await natsFixture();
    const archive = await NatsTileArchive.open(nats.nc, { replicas: 1 });
    await nats.server.stop();
    await assert.rejects(archive.get("tile-gone"), (err: unknown) => {
      assert.ok(err instanceof LanemapError);
      assert.equal(err.code, "STORAGE");
      assert.equal(isPermanent(err), false);
      return true;
    });
  });
});
