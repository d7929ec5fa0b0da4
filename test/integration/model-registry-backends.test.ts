/**
 * The model registry on both backends: `lanemap model list|show|activate` on a data directory
 * without NATS (files), the NATS registry's class catalogue (compare-and-set in KV), and the
 * reconciliation that lets a model trained without NATS be the one `lanemap start` applies.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { openModelRegistry } from "../../infra/platform/models.js";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import { NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import { parseConfig, sealModel, serializeModel, type Model } from "../../shared/index.js";
import { projectRoot } from "../helpers/env.js";
import { tinyModel } from "../helpers/models.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";

const CLI = join(projectRoot, "infra", "bin", "lanemap.js");

function lanemap(
  args: string[],
  dataDir: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    LANEMAP_LOG_LEVEL: "error",
  };
  delete env["NATS_URL"];
  const child = spawn(process.execPath, [CLI, ...args, "--data-dir", dataDir], { cwd: projectRoot, env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lanemap-backends-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the model registry's backends", () => {
  test("without NATS, lanemap model activate|list|show work on the data directory's files", () =>
    withDir(async (dir) => {
      const a = tinyModel(["forest", "water"]);
      const b = tinyModel(["forest", "water", "wetland"]);
      const file = join(dir, "b.json");
      await writeFile(file, serializeModel(b));
      await (await FileModelRegistry.open(dir)).put(a, { trainedBy: "ana" });

      const activated = await lanemap(["model", "activate", file, "--json"], dir);
      assert.equal(activated.code, 0, activated.stderr);
      const out = JSON.parse(activated.stdout) as {
        version: string;
        backend: string;
        current: { revision: number };
      };
      assert.deepEqual([out.version, out.backend, out.current.revision], [b.version, "files", 1]);

      const list = await lanemap(["model", "list"], dir);
      assert.equal(list.code, 0, list.stderr);
      assert.match(
        list.stdout,
        new RegExp(`^\\* ${b.version} .*classes: 1 forest, 2 water, 3 wetland$`, "m"),
      );
      assert.match(list.stdout, new RegExp(`^  ${a.version} .*by ana`, "m"));

      const back = await lanemap(["model", "activate", a.version], dir);
      assert.equal(back.code, 0, back.stderr);
      assert.match(back.stdout, /revision 2, files registry/);
      const show = await lanemap(["model", "show", a.version], dir);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, new RegExp(`model ${a.version} \\(active\\)`));
      assert.match(show.stdout, /class {3}2 {2}#[0-9a-f]{6} {2}water \(2 samples\)/);

      const unknown = await lanemap(["model", "show", "0123456789abcdef"], dir);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /0123456789abcdef is not in the registry/);
    }));

  test("lanemap model show takes a unique version prefix, lists the candidates of an ambiguous one, and names the label set once", () =>
    withDir(async (dir) => {
      const base = tinyModel(["forest", "water", "crop"]);
      // What the trainer stores: source "label set v1", label set "v1".
      const trained = sealModel(
        {
          format: base.format,
          classes: base.classes,
          features: base.features,
          scaling: base.scaling,
          k: base.k,
          samples: base.samples,
          training: { ...base.training, source: "label set v1" },
        },
        "2026-01-01T00:00:00.000Z",
      );
      const registry = await FileModelRegistry.open(dir);
      await registry.put(trained, { trainedBy: "job-1", labelSet: "v1" });
      const show = await lanemap(["model", "show", trained.version.slice(0, 6)], dir);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, new RegExp(`model ${trained.version}`));
      assert.match(show.stdout, /labels {4}label set v1\n/);
      assert.doesNotMatch(show.stdout, /label set v1 \(label set/);

      // Models until two share a 4-digit prefix (a salt changes the content, so the version).
      const seen = new Map<string, Model>();
      let shared: string[] | undefined;
      for (let salt = 1; !shared && salt < 5000; salt++) {
        const m = tinyModel(["forest", "water"], { salt });
        const twin = seen.get(m.version.slice(0, 4));
        if (twin) {
          await registry.put(twin, { trainedBy: "ana" });
          await registry.put(m, { trainedBy: "ana" });
          shared = [twin.version, m.version];
        } else seen.set(m.version.slice(0, 4), m);
      }
      assert.ok(shared, "two versions share a 4-digit prefix");
      const ambiguous = await lanemap(["model", "show", (shared[0] as string).slice(0, 4)], dir);
      assert.equal(ambiguous.code, 2, ambiguous.stderr);
      for (const v of shared) assert.match(ambiguous.stderr, new RegExp(v));
      const none = await lanemap(["model", "show", "ffff0000"], dir);
      assert.notEqual(none.code, 0);
      const short = await lanemap(["model", "show", "abc"], dir);
      assert.equal(short.code, 2);
      assert.match(short.stderr, /4 or more hex digits/);
    }));

  test(
    "the NATS registry keeps the class catalogue and refuses a model whose ids disagree",
    { skip: natsMissing() },
    async () => {
      await using nats = await natsFixture();
      const registry = await NatsModelRegistry.open(nats.nc);
      await registry.put(tinyModel(["forest", "water"]));
      await registry.put(tinyModel(["forest", "water", "wetland"]));
      assert.deepEqual(
        (await registry.classes()).classes.map((c) => `${c.id} ${c.name}`),
        ["1 forest", "2 water", "3 wetland"],
      );
      await assert.rejects(
        registry.put(tinyModel(["cloud", "forest"])),
        (e: unknown) => (e as { code?: string }).code === "MODEL",
      );
      // Concurrent writers of new names never give one id to two names (compare-and-set on the key).
      const other = await NatsModelRegistry.open(nats.nc);
      const results = await Promise.allSettled([
        registry.put(tinyModel(["forest", "water", "wetland", "cloud"], { ids: [1, 2, 3, 4] })),
        other.put(tinyModel(["forest", "water", "wetland", "snow"], { ids: [1, 2, 3, 4], salt: 1 })),
      ]);
      assert.deepEqual(
        results.map((r) => r.status).sort(),
        ["fulfilled", "rejected"],
        "exactly one of two models giving id 4 to different names is stored",
      );
      const ids = (await registry.classes()).classes.map((c) => c.id);
      assert.equal(new Set(ids).size, ids.length);
    },
  );

  test(
    "a model activated on files before NATS is adopted by the NATS registry, and NATS activations reach the files",
    { skip: natsMissing() },
    async () => {
      await using nats = await natsFixture();
      await withDir(async (dir) => {
        const config = parseConfig({ LANEMAP_DATA_DIR: dir, LANEMAP_LOG_LEVEL: "silent" });
        const files = await FileModelRegistry.open(dir);
        const offline = tinyModel(["forest", "water"]);
        await files.put(offline, { trainedBy: "offline" });
        await files.activate(offline.version);

        const registry = await openModelRegistry(config, nats.nc);
        assert.equal(registry.backend, "nats");
        assert.equal((await registry.active())?.version, offline.version, "the later (only) activation wins");
        assert.equal((await registry.get(offline.version))?.trainedBy, "offline");

        const online = tinyModel(["forest", "water", "wetland"]);
        await registry.put(online, { trainedBy: "online" });
        await registry.activate(online.version);
        const pointer = await files.active();
        assert.equal(pointer?.version, online.version, "the files mirror the NATS activation");
        assert.equal((await files.get(online.version))?.trainedBy, "online");
        assert.deepEqual(
          (await files.classes()).classes.map((c) => c.name),
          ["forest", "water", "wetland"],
        );
      });
    },
  );
});
