/**
 * The `PublishedViews` contract (shared/storage), run against both backends: the data directory's
 * files and NATS (JetStream object store + KV pointer on a real nats-server). Each backend must
 * list only complete versions, move CURRENT by compare-and-set, refuse to remove the current
 * version, hand out a readable folder, and tell a watcher about every move.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { FilePublishedViews } from "../../shared/adapters/archive/index.js";
import {
  NatsPublishedViews,
  VIEW_OBJECT_BUCKET,
  objectStoreStreamName,
  viewVersionBucket,
} from "../../shared/adapters/nats/index.js";
import {
  BATCH_VIEW_FILES,
  LanemapError,
  dataPaths,
  versionName,
  type PublishedViews,
  type ViewPointer,
} from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";
import { eventually } from "../helpers/serving-server.js";
import { tempDataDir, writeNumberedVersion } from "../helpers/serving-views.js";

/** A backend under test: the store, how a complete version gets into it, and how to damage one. */
interface Harness extends AsyncDisposable {
  readonly views: PublishedViews;
  /** Writes version `v` as the batch lane does and publishes it (CURRENT untouched). */
  addVersion(v: number): Promise<string>;
  /** Stores every file of version `v` except its manifest: a publisher that died half way. */
  addIncomplete(v: number): Promise<string>;
  /** Replaces one stored file of a version with other bytes; undefined when the backend cannot. */
  readonly corrupt?: (name: string, file: string) => Promise<void>;
}

async function filesHarness(): Promise<Harness> {
  const data = await tempDataDir();
  const views = new FilePublishedViews(data.dir, { pollIntervalMs: 50 });
  return {
    views,
    async addVersion(v) {
      const name = await writeNumberedVersion(data.dir, v);
      await views.publish(join(dataPaths(data.dir).batchViews, name), name);
      return name;
    },
    async addIncomplete(v) {
      const name = versionName(v);
      const dir = join(dataPaths(data.dir).batchViews, name);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, BATCH_VIEW_FILES.model), "{}\n");
      return name;
    },
    [Symbol.asyncDispose]: () => data[Symbol.asyncDispose](),
  };
}

async function natsHarness(): Promise<Harness> {
  const nats = await natsFixture();
  const source = await tempDataDir();
  const cache = await tempDataDir();
  const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(cache.dir, "cache", "views") });
  return {
    views,
    async addVersion(v) {
      const name = await writeNumberedVersion(source.dir, v);
      await views.publish(join(dataPaths(source.dir).batchViews, name), name);
      return name;
    },
    async addIncomplete(v) {
      const name = await writeNumberedVersion(source.dir, v);
      const dir = join(dataPaths(source.dir).batchViews, name);
      const objects = await new Objm(nats.nc).create(viewVersionBucket(name));
      for (const f of await readdir(dir))
        if (f !== BATCH_VIEW_FILES.manifest)
          await objects.putBlob({ name: f }, new Uint8Array(await readFile(join(dir, f))));
      return name;
    },
    async corrupt(name, file) {
      const objects = await new Objm(nats.nc).open(viewVersionBucket(name));
      const info = await objects.info(file);
      assert.ok(info, `${name}'s ${file} is stored`);
      // Same size, other bytes: only the manifest's digest can tell.
      await objects.putBlob({ name: file }, new Uint8Array(info.size).fill(7));
    },
    async [Symbol.asyncDispose]() {
      await cache[Symbol.asyncDispose]();
      await source[Symbol.asyncDispose]();
      await nats[Symbol.asyncDispose]();
    },
  };
}

async function rejectsWith(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof LanemapError, `a LanemapError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

const backends: { name: string; skip?: string; open: () => Promise<Harness> }[] = [
  { name: "files", open: filesHarness },
  { name: "nats", open: natsHarness, ...(natsMissing() ? { skip: natsMissing()! } : {}) },
];

for (const backend of backends) {
  describe(`published views on ${backend.name}`, { ...(backend.skip ? { skip: backend.skip } : {}) }, () => {
    test("lists complete versions oldest first, and never one whose manifest is missing", async () => {
      await using h = await backend.open();
      assert.deepEqual(await h.views.list(), []);
      assert.equal(await h.views.current(), null);
      await h.addVersion(1);
      await h.addIncomplete(2);
      await h.addVersion(3);
      const listed = await h.views.list();
      assert.deepEqual(
        listed.map((v) => [v.name, v.version, v.manifest.modelVersion]),
        [
          ["v000001", 1, "m-v1"],
          ["v000003", 3, "m-v3"],
        ],
      );
      await rejectsWith(h.views.setCurrent("v000002"), "VIEW_NOT_FOUND");
      await rejectsWith(h.views.materialize("v000002"), "VIEW_NOT_FOUND");
      await rejectsWith(h.views.materialize("v000009"), "VIEW_NOT_FOUND");
    });

    test("CURRENT moves by compare-and-set: a stale revision is a VIEW_POINTER_CONFLICT and the pointer stays", async () => {
      await using h = await backend.open();
      const a = await h.addVersion(1);
      const b = await h.addVersion(2);
      const first = await h.views.setCurrent(a, null);
      assert.equal(first.name, a);
      await rejectsWith(h.views.setCurrent(b, null), "VIEW_POINTER_CONFLICT", /expected revision none/);
      const second = await h.views.setCurrent(b, first.revision);
      assert.ok(second.revision > first.revision);
      // A coordinator that read `first` before the move above must not publish over it.
      await rejectsWith(h.views.setCurrent(a, first.revision), "VIEW_POINTER_CONFLICT", /v000002/);
      assert.deepEqual(await h.views.current(), second);
    });

    test("rollback points CURRENT at an older complete version, and the current one cannot be removed", async () => {
      await using h = await backend.open();
      const a = await h.addVersion(1);
      const b = await h.addVersion(2);
      await h.views.setCurrent(b);
      const back = await h.views.setCurrent(a);
      assert.equal((await h.views.current())?.name, a);
      assert.equal(back.name, a);
      await rejectsWith(h.views.remove(a), "VIEW_IN_USE");
      await h.views.remove(b);
      assert.deepEqual(
        (await h.views.list()).map((v) => v.name),
        [a],
      );
      await rejectsWith(h.views.setCurrent(b), "VIEW_NOT_FOUND");
    });

    test("materialize hands out a folder whose files match the manifest", async () => {
      await using h = await backend.open();
      const a = await h.addVersion(1);
      const dir = await h.views.materialize(a);
      const manifest = JSON.parse(await readFile(join(dir, BATCH_VIEW_FILES.manifest), "utf8")) as {
        name: string;
        files: Record<string, { bytes: number }>;
      };
      assert.equal(manifest.name, a);
      for (const [file, { bytes }] of Object.entries(manifest.files))
        assert.equal((await readFile(join(dir, file))).length, bytes, file);
      assert.equal(await h.views.materialize(a), dir, "a complete copy is reused");
    });

    test("materialize checks every file's digest: a corrupted object is a BATCH_VIEW error naming the file", async () => {
      await using h = await backend.open();
      const a = await h.addVersion(1);
      if (!h.corrupt) {
        // The files backend copies nothing: it hands out the version's own folder, whose files the
        // publisher checked against the manifest when it wrote them.
        assert.match(await h.views.materialize(a), new RegExp(`views/batch/${a}$`));
        return;
      }
      await h.corrupt(a, BATCH_VIEW_FILES.duckdb);
      await rejectsWith(h.views.materialize(a), "BATCH_VIEW", /view\.duckdb/);
      await rejectsWith(h.views.materialize(a), "BATCH_VIEW", /view\.duckdb/);
    });

    test("a watcher hears the pointer at start and every move after", async () => {
      await using h = await backend.open();
      const a = await h.addVersion(1);
      const b = await h.addVersion(2);
      const heard: (ViewPointer | null)[] = [];
      const w = h.views.watch((p) => heard.push(p));
      try {
        await eventually(() => (heard.length >= 1 ? true : undefined));
        assert.equal(heard[0], null);
        await h.views.setCurrent(a);
        await eventually(() => (heard.at(-1)?.name === a ? true : undefined));
        await h.views.setCurrent(b);
        await eventually(() => (heard.at(-1)?.name === b ? true : undefined));
      } finally {
        await w.stop();
      }
      const revisions = heard.filter((p) => p !== null).map((p) => p.revision);
      assert.deepEqual(
        revisions,
        [...revisions].sort((x, y) => x - y),
        "moves arrive in order",
      );
    });
  });
}

describe(
  "NatsPublishedViews' local cache and failures",
  { ...(natsMissing() ? { skip: natsMissing()! } : {}) },
  () => {
    test("a download cut short leaves only a .partial folder, which the next materialize replaces", async () => {
      await using nats = await natsFixture();
      await using source = await tempDataDir();
      await using cache = await tempDataDir();
      const cacheDir = join(cache.dir, "cache", "views");
      const views = await NatsPublishedViews.open(nats.nc, { cacheDir });
      const name = await writeNumberedVersion(source.dir, 1);
      await views.publish(join(dataPaths(source.dir).batchViews, name), name);
      await mkdir(join(cacheDir, `${name}.partial`), { recursive: true });
      await writeFile(join(cacheDir, `${name}.partial`, BATCH_VIEW_FILES.duckdb), "half a file");
      assert.equal(await views.materialize(name), join(cacheDir, name));
      assert.deepEqual(await readdir(cacheDir), [name]);
      await views.setCurrent(name);
      // Kept: a later version this process is about to open.
      assert.deepEqual(await views.evictLocal(["v000002"]), [name], "eviction removes local copies only");
      assert.deepEqual(await readdir(cacheDir), []);
      assert.deepEqual(
        (await views.list()).map((v) => v.name),
        [name],
      );
    });

    test("two processes sharing a cache download one version at once: each gets the whole checked copy, no partial folder stays", async () => {
      await using nats = await natsFixture();
      await using source = await tempDataDir();
      await using cache = await tempDataDir();
      const cacheDir = join(cache.dir, "cache", "views");
      // Two instances: two downloads with nothing shared but the folder, as two processes have.
      const one = await NatsPublishedViews.open(nats.nc, { cacheDir });
      const other = await NatsPublishedViews.open(nats.nc, { cacheDir });
      const name = await writeNumberedVersion(source.dir, 1);
      await one.publish(join(dataPaths(source.dir).batchViews, name), name);
      const published = await readFile(join(dataPaths(source.dir).batchViews, name, BATCH_VIEW_FILES.duckdb));
      for (let round = 0; round < 8; round++) {
        const dirs = await Promise.all([
          one.materialize(name),
          other.materialize(name),
          one.materialize(name),
        ]);
        assert.deepEqual(dirs, [join(cacheDir, name), join(cacheDir, name), join(cacheDir, name)]);
        assert.deepEqual(
          await readdir(cacheDir),
          [name],
          `round ${round}: the version's folder and nothing else`,
        );
        assert.ok((await readFile(join(cacheDir, name, BATCH_VIEW_FILES.duckdb))).equals(published));
        await rm(join(cacheDir, name), { recursive: true });
      }
    });

    test("eviction leaves a copy another process sharing the cache has just used (it may be opening it), and takes it minutes later", async () => {
      await using nats = await natsFixture();
      await using source = await tempDataDir();
      await using cache = await tempDataDir();
      const cacheDir = join(cache.dir, "views");
      const serve = await NatsPublishedViews.open(nats.nc, { cacheDir });
      const diff = await NatsPublishedViews.open(nats.nc, { cacheDir });
      const names = [];
      for (const v of [1, 2, 3]) {
        const name = await writeNumberedVersion(source.dir, v);
        await serve.publish(join(dataPaths(source.dir).batchViews, name), name);
        names.push(name);
      }
      const [v1, v2, v3] = names as [string, string, string];
      for (const name of names) await serve.materialize(name);
      // `views diff v1 v3` beside the serve: it reuses the serve's copies as it opens them.
      await diff.materialize(v1);
      await diff.materialize(v3);
      // The serve, now on v2, evicts the rest: only what no other process has used since it did.
      assert.deepEqual(await serve.evictLocal([v2]), []);
      assert.deepEqual((await readdir(cacheDir)).sort(), [v1, v2, v3]);
      // Used long ago by the other process, the copies are the serve's to remove.
      const longAgo = new Date(Date.now() - 3600_000);
      await utimes(join(cacheDir, v1), longAgo, longAgo);
      await utimes(join(cacheDir, v3), longAgo, longAgo);
      assert.deepEqual((await serve.evictLocal([v2])).sort(), [v1, v3]);
      // And a process evicts what it alone used at once.
      assert.deepEqual(await serve.evictLocal([]), [v2]);
    });

    test("eviction removes a partial folder whose download's process is gone, never one a live download fills", async () => {
      await using nats = await natsFixture();
      await using cache = await tempDataDir();
      const cacheDir = join(cache.dir, "views");
      const views = await NatsPublishedViews.open(nats.nc, { cacheDir });
      const dead = spawnSync("true").pid!;
      const owner = (pid: number) =>
        JSON.stringify({ pid, hostname: hostname(), startedAt: new Date().toISOString() });
      await mkdir(join(cacheDir, "v000001.partial-00aa"), { recursive: true });
      await writeFile(join(cacheDir, "v000001.partial-00aa", ".download-owner.json"), owner(dead));
      await mkdir(join(cacheDir, "v000001.partial-00bb"), { recursive: true });
      await writeFile(join(cacheDir, "v000001.partial-00bb", ".download-owner.json"), owner(process.pid));
      assert.deepEqual(await views.evictLocal([]), ["v000001.partial-00aa"]);
      assert.deepEqual(await readdir(cacheDir), ["v000001.partial-00bb"]);
    });

    test("a broker that is gone is a STORAGE error", async () => {
      await using nats = await natsFixture();
      await using cache = await tempDataDir();
      const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(cache.dir, "views") });
      await nats.nc.close();
      await rejectsWith(views.list(), "STORAGE");
      await rejectsWith(views.current(), "STORAGE");
      await rejectsWith(views.materialize("v000001"), "STORAGE");
    });
  },
);

describe("lanemap views on NATS", { ...(natsMissing() ? { skip: natsMissing()! } : {}) }, () => {
  test("views list and rollback with LANEMAP_STORAGE=nats read and move the pointer in KV", async () => {
    await using nats = await natsFixture();
    await using source = await tempDataDir();
    await using empty = await tempDataDir();
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(source.dir, "cache", "views") });
    for (const v of [1, 2]) {
      const name = await writeNumberedVersion(source.dir, v);
      await views.publish(join(dataPaths(source.dir).batchViews, name), name);
      await views.setCurrent(name);
    }
    const cli = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [join(projectRoot, "infra", "bin", "lanemap.js"), "views", ...args, "--nats", nats.server.url],
        {
          cwd: projectRoot,
          encoding: "utf8",
          env: {
            ...process.env,
            LANEMAP_DATA_DIR: empty.dir,
            LANEMAP_STORAGE: "nats",
            LANEMAP_LOG_LEVEL: "error",
          },
        },
      );
    const list = cli("list", "--json");
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { name: string; current: boolean }[]).map((v) => [v.name, v.current]),
      [
        ["v000001", false],
        ["v000002", true],
      ],
    );
    const rollback = cli("rollback", "1", "--json");
    assert.equal(rollback.status, 0, rollback.stderr);
    assert.equal((JSON.parse(rollback.stdout) as { current: string }).current, "v000001");
    assert.equal((await views.current())?.name, "v000001");
    const unknown = cli("rollback", "9");
    assert.equal(unknown.status, 1);
    assert.match(
      unknown.stderr,
      /v000009 does not exist or is incomplete; complete versions: v000001, v000002/,
    );
  });
});

describe("published views in NATS: the two layouts", { skip: natsMissing() }, () => {
  test("a version stored in the legacy shared bucket lists, downloads with its checksums and is removed, while a new publish gets a bucket of its own that its removal deletes whole", async () => {
    await using nats = await natsFixture();
    await using source = await tempDataDir();
    await using cache = await tempDataDir();
    const jsm = await jetstreamManager(nats.nc);
    // v1 as a deployment from before per-version buckets holds it: `<version>/<file>`, manifest last.
    const old = await writeNumberedVersion(source.dir, 1);
    const oldDir = join(dataPaths(source.dir).batchViews, old);
    const legacy = await new Objm(nats.nc).create(VIEW_OBJECT_BUCKET);
    const files = (await readdir(oldDir)).sort(
      (a, b) => Number(a === BATCH_VIEW_FILES.manifest) - Number(b === BATCH_VIEW_FILES.manifest),
    );
    for (const f of files) await legacy.putBlob({ name: `${old}/${f}` }, await readFile(join(oldDir, f)));

    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(cache.dir, "views") });
    const fresh = await writeNumberedVersion(source.dir, 2);
    await views.publish(join(dataPaths(source.dir).batchViews, fresh), fresh);
    const own = objectStoreStreamName(viewVersionBucket(fresh));
    assert.ok((await jsm.streams.info(own)).state.messages > 0, `${fresh} is stored in ${own}`);
    assert.equal(
      (await legacy.list()).filter((o) => o.name.startsWith(`${fresh}/`)).length,
      0,
      "nothing new goes to the legacy bucket",
    );
    assert.deepEqual(
      (await views.list()).map((v) => v.name),
      [old, fresh],
    );
    assert.deepEqual(await views.damaged(), []);
    for (const name of [old, fresh]) {
      const dir = await views.materialize(name);
      assert.deepEqual(
        await readFile(join(dir, BATCH_VIEW_FILES.manifest)),
        await readFile(join(dataPaths(source.dir).batchViews, name, BATCH_VIEW_FILES.manifest)),
      );
    }
    await views.setCurrent(fresh, null);
    await views.remove(old);
    await assert.rejects(
      jsm.streams.info(objectStoreStreamName(VIEW_OBJECT_BUCKET)),
      /stream not found/,
      "with its last version the legacy bucket's stream is deleted whole, not left as delete markers",
    );
    assert.deepEqual(
      (await views.list()).map((v) => v.name),
      [fresh],
    );
    const third = await writeNumberedVersion(source.dir, 3);
    await views.publish(join(dataPaths(source.dir).batchViews, third), third);
    await views.setCurrent(third);
    await views.remove(fresh);
    await assert.rejects(jsm.streams.info(own), /stream not found/, `${own} is deleted whole`);
    assert.deepEqual(
      (await views.list()).map((v) => v.name),
      [third],
    );
  });

  test("removing a version of the legacy bucket moves the versions it still holds to buckets of their own and drops the legacy stream whole, purging nothing", async () => {
    await using nats = await natsFixture();
    await using source = await tempDataDir();
    await using cache = await tempDataDir();
    const jsm = await jetstreamManager(nats.nc);
    // A filtered STREAM.PURGE (an ObjectStore.delete) lost a node's copy on nats-server 2.9.10 (issue 14).
    const purges: string[] = [];
    nats.nc.subscribe("$JS.API.STREAM.PURGE.>", { callback: (_, m) => void purges.push(m.subject) });
    const legacy = await new Objm(nats.nc).create(VIEW_OBJECT_BUCKET);
    const olds: string[] = [];
    for (const n of [1, 2, 3]) {
      const name = await writeNumberedVersion(source.dir, n);
      const dir = join(dataPaths(source.dir).batchViews, name);
      const files = (await readdir(dir)).sort(
        (a, b) => Number(a === BATCH_VIEW_FILES.manifest) - Number(b === BATCH_VIEW_FILES.manifest),
      );
      for (const f of files) await legacy.putBlob({ name: `${name}/${f}` }, await readFile(join(dir, f)));
      olds.push(name);
    }
    const [first, second, third] = olds as [string, string, string];
    const views = await NatsPublishedViews.open(nats.nc, { cacheDir: join(cache.dir, "views") });
    await views.setCurrent(third, null);

    await views.remove(first);
    await nats.nc.flush();
    assert.deepEqual(purges, [], "no purge request");
    await assert.rejects(
      jsm.streams.info(objectStoreStreamName(VIEW_OBJECT_BUCKET)),
      /stream not found/,
      "the legacy stream is deleted whole",
    );
    for (const name of [second, third])
      assert.ok(
        (await jsm.streams.info(objectStoreStreamName(viewVersionBucket(name)))).state.messages > 0,
        `${name} moved to a bucket of its own`,
      );
    assert.deepEqual(
      (await views.list()).map((v) => v.name),
      [second, third],
    );
    assert.equal((await views.current())?.name, third, "CURRENT still names the moved version");
    await using fresh = await tempDataDir();
    const other = await NatsPublishedViews.open(nats.nc, { cacheDir: join(fresh.dir, "views") });
    for (const name of [second, third]) {
      const dir = await other.materialize(name);
      assert.deepEqual(
        await readFile(join(dir, BATCH_VIEW_FILES.manifest)),
        await readFile(join(dataPaths(source.dir).batchViews, name, BATCH_VIEW_FILES.manifest)),
        `${name} downloads from its own bucket, checksums verified`,
      );
    }
  });
});
