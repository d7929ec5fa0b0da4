/**
 * Retention is housekeeping after a publish: a store that fails to remove an old version, or to
 * list them at all, is a warning and work for the next run, never an error of the run that just
 * published (issue 14: "removing v000004 failed: timeout" made a published run exit 1).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pino } from "pino";
import { applyRetention } from "../../batch/index.js";
import {
  LanemapError,
  versionName,
  type BatchManifest,
  type PublishedVersion,
  type PublishedViews,
  type ViewPointer,
} from "../../shared/index.js";

function captureLogger() {
  const lines: { level: number; msg: string; version?: string }[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** A view store holding versions 1..n, CURRENT on n, whose broker times out on `failing`. */
function storeWith(n: number, failing: { list?: boolean; remove?: readonly string[] }) {
  const names = Array.from({ length: n }, (_, i) => versionName(i + 1));
  const timeout = (what: string) =>
    new LanemapError("STORAGE", `published views in NATS: ${what} failed: timeout`);
  const views: PublishedViews = {
    backend: "nats",
    list: async () => {
      if (failing.list) throw timeout("listing views");
      return names.map((name, i): PublishedVersion => ({
        name,
        version: i + 1,
        manifest: { name } as BatchManifest,
      }));
    },
    current: async (): Promise<ViewPointer> => ({ name: names[n - 1]!, revision: n }),
    remove: async (name) => {
      if (failing.remove?.includes(name)) throw timeout(`removing ${name}`);
      names.splice(names.indexOf(name), 1);
    },
    materialize: () => Promise.reject(new Error("not used")),
    publish: () => Promise.reject(new Error("not used")),
    setCurrent: () => Promise.reject(new Error("not used")),
    reserve: () => Promise.reject(new Error("not used")),
    release: () => Promise.reject(new Error("not used")),
    reservations: async () => [],
    watch: () => ({ stop: async () => undefined }),
  };
  return { views, names };
}

describe("batch view retention after a publish", () => {
  test("a version the store fails to remove is warned about and deferred, and the others are still removed", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "lanemap-retention-"));
    try {
      const { logger, lines } = captureLogger();
      const { views, names } = storeWith(4, { remove: ["v000001"] });
      const report = await applyRetention(dataDir, 1, { logger, views });
      assert.deepEqual(report.deletedVersions, ["v000002", "v000003"]);
      assert.deepEqual(report.deferredVersions, ["v000001"]);
      assert.deepEqual(names, ["v000001", "v000004"], "the failed one stays for the next run");
      const warning = lines.find((l) => l.level === 40 && l.version === "v000001");
      assert.match(warning?.msg ?? "", /cannot remove an old version; the next run tries again/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test("a store that cannot list its versions leaves retention to the next run with a warning", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "lanemap-retention-"));
    try {
      const { logger, lines } = captureLogger();
      const { views, names } = storeWith(3, { list: true });
      const report = await applyRetention(dataDir, 1, { logger, views });
      assert.deepEqual(report.deletedVersions, []);
      assert.equal(names.length, 3);
      assert.ok(lines.some((l) => l.level === 40 && /cannot list the published versions/.test(l.msg)));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
