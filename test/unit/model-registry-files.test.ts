import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, utimes, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileModelRegistry } from "../../shared/adapters/archive/index.js";
import {
  ModelNotFoundError,
  NoActiveModelError,
  resolveActiveModel,
  serializeModel,
  type ActiveModelPointer,
} from "../../shared/internal.js";
import { tinyModel } from "../helpers/models.js";

async function withDataDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lanemap-registry-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the model registry on files", () => {
  test("stores a model with its who/when and label-set facts, and reads the same model back", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      const model = tinyModel(["forest", "water"]);
      const { entry, created } = await registry.put(model, { trainedBy: "ana", labelSet: "labels-3" });
      assert.equal(created, true);
      assert.equal(entry.trainedBy, "ana");
      assert.equal(entry.labelSet, "labels-3");
      assert.deepEqual(
        entry.classes.map((c) => [c.id, c.name]),
        [
          [1, "forest"],
          [2, "water"],
        ],
      );
      assert.equal(entry.samples, 4);
      assert.deepEqual(await registry.model(model.version), model);
      assert.deepEqual(
        (await registry.list()).map((e) => e.version),
        [model.version],
      );
    }));

  test("putting the same model again is a no-op that keeps the first entry", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      const model = tinyModel(["forest"]);
      await registry.put(model, { trainedBy: "first" });
      const again = await registry.put(model, { trainedBy: "second" });
      assert.equal(again.created, false);
      assert.equal(again.entry.trainedBy, "first");
    }));

  test("an artifact changed after it was stored is refused on read", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      const model = tinyModel(["forest"]);
      await registry.put(model);
      const path = join(dir, "models", `${model.version}.json`);
      await writeFile(path, serializeModel(model).replace('"k": 1', '"k":  1'));
      await assert.rejects(registry.model(model.version), /does not match its recorded digest/);
    }));

  test("nothing is active until a version is activated; unknown versions are refused", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      assert.equal(await registry.active(), null);
      await assert.rejects(resolveActiveModel(registry), NoActiveModelError);
      await registry.put(tinyModel(["forest"]));
      assert.equal(await registry.active(), null, "put does not activate");
      await assert.rejects(registry.activate("0123456789abcdef"), ModelNotFoundError);
      await assert.rejects(registry.activate("../../etc/passwd"), ModelNotFoundError);
    }));

  test("the active pointer's revision grows with every activation, also back to an earlier version", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      const a = tinyModel(["forest"]);
      const b = tinyModel(["forest", "water"]);
      await registry.put(a);
      await registry.put(b);
      const revisions: number[] = [];
      for (const v of [a.version, b.version, a.version])
        revisions.push((await registry.activate(v)).revision);
      assert.deepEqual(revisions, [1, 2, 3]);
      assert.equal((await registry.active())?.version, a.version);
      assert.equal((await resolveActiveModel(registry)).model.version, a.version);
      assert.equal((await resolveActiveModel(registry, b.version)).model.version, b.version);
    }));

  test("concurrent activations from several registries on one directory never share a revision", () =>
    withDataDir(async (dir) => {
      const first = await FileModelRegistry.open(dir);
      const model = tinyModel(["forest"]);
      await first.put(model);
      const others = await Promise.all([1, 2, 3, 4].map(() => FileModelRegistry.open(dir)));
      const pointers = await Promise.all(
        [first, ...others].flatMap((r) => [r.activate(model.version), r.activate(model.version)]),
      );
      const revisions = pointers.map((p) => p.revision).sort((x, y) => x - y);
      assert.deepEqual(revisions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal((await first.active())?.revision, 10);
    }));

  test("the pointer is replaced atomically: only ACTIVE remains, no temporary or lock file", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      const model = tinyModel(["forest"]);
      await registry.put(model);
      await registry.activate(model.version);
      await registry.activate(model.version);
      const names = (await readdir(join(dir, "models"))).sort();
      assert.deepEqual(names, [`${model.version}.json`, "ACTIVE", "classes.json", "registry"]);
      const pointer = JSON.parse(await readFile(join(dir, "models", "ACTIVE"), "utf8")) as ActiveModelPointer;
      assert.equal(pointer.revision, 2);
    }));

  test("watch reports the current pointer at once and each later activation in order", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      const a = tinyModel(["forest"]);
      const b = tinyModel(["water"], { ids: [2] });
      await registry.put(a);
      await registry.put(b);
      await registry.activate(a.version);
      const seen: string[] = [];
      const watch = await registry.watch((p) => p && seen.push(`${p.revision}:${p.version}`), 20);
      try {
        const writer = await FileModelRegistry.open(dir);
        await writer.activate(b.version);
        const deadline = Date.now() + 5000;
        while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(seen, [`1:${a.version}`, `2:${b.version}`]);
      } finally {
        watch.stop();
      }
    }));

  test("the class catalogue grows with each stored model, and a model whose ids disagree with it is refused before it is stored", () =>
    withDataDir(async (dir) => {
      const registry = await FileModelRegistry.open(dir);
      await registry.put(tinyModel(["forest", "water"]));
      await registry.put(tinyModel(["forest", "water", "wetland"]));
      assert.deepEqual(
        (await registry.classes()).classes.map((c) => `${c.id} ${c.name}`),
        ["1 forest", "2 water", "3 wetland"],
      );
      // "Sorted names from 1" would make cloud 1 and forest 2: the catalogue refuses it.
      const renumbered = tinyModel(["cloud", "forest", "water"]);
      await assert.rejects(
        registry.put(renumbered),
        (err: unknown) => (err as { code?: string }).code === "MODEL",
      );
      assert.equal(await registry.get(renumbered.version), undefined);
      assert.equal((await registry.list()).length, 2);
    }));

  test("migration registers the newest artifact first and skips an older one whose sorted-name ids disagree", () =>
    withDataDir(async (dir) => {
      const models = join(dir, "models");
      await mkdir(models, { recursive: true });
      const older = tinyModel(["forest", "water"]);
      const newer = tinyModel(["cloud", "forest", "water"]);
      await writeFile(join(models, `${older.version}.json`), serializeModel(older));
      await writeFile(join(models, `${newer.version}.json`), serializeModel(newer));
      await utimes(join(models, `${older.version}.json`), new Date(1e12), new Date(1e12));
      await utimes(join(models, `${newer.version}.json`), new Date(2e12), new Date(2e12));
      const registry = await FileModelRegistry.open(dir);
      assert.deepEqual(registry.migration.registered, [newer.version]);
      assert.deepEqual(
        registry.migration.skipped.map((s) => s.version),
        [older.version],
      );
      assert.equal(registry.migration.activated, newer.version);
    }));

  test("a directory from before the registry is migrated: artifacts registered, the newest by mtime activated once", () =>
    withDataDir(async (dir) => {
      const models = join(dir, "models");
      await mkdir(models, { recursive: true });
      const older = tinyModel(["forest"]);
      const newer = tinyModel(["forest", "water"]);
      await writeFile(join(models, `${older.version}.json`), serializeModel(older));
      await writeFile(join(models, "renamed-by-hand.json"), serializeModel(newer));
      await writeFile(join(models, "notes.json"), "{}");
      await utimes(join(models, `${older.version}.json`), new Date(1e12), new Date(1e12));
      await utimes(join(models, "renamed-by-hand.json"), new Date(2e12), new Date(2e12));
      const registry = await FileModelRegistry.open(dir);
      assert.deepEqual([...registry.migration.registered].sort(), [older.version, newer.version].sort());
      assert.equal(registry.migration.activated, newer.version);
      assert.equal((await registry.active())?.revision, 1);
      // Once migrated, mtimes no longer decide: touching the older artifact changes nothing.
      await utimes(join(models, `${older.version}.json`), new Date(3e12), new Date(3e12));
      const reopened = await FileModelRegistry.open(dir);
      assert.deepEqual(reopened.migration, { registered: [], skipped: [], activated: null });
      assert.equal((await reopened.active())?.version, newer.version);
    }));
});
