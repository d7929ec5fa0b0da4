import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { refreshReadme } from "../bench/readme.js";

const results = {
  name: "core-knn",
  at: "2026-11-30T12:40:00.000Z",
  machine: {
    nproc: 2,
    cpu: "Example CPU @ 2.0GHz",
    node: "v20.20.2",
    loadAtStart: [3.5, 2.25, 1],
    startedAt: "2026-11-30T12:00:00.000Z",
  },
  tables: [{ title: "k-NN", columns: ["N", "rate"], rows: [[1000, 123456.7]], notes: ["a note"] }],
  data: [],
};

describe("README benchmark tables", () => {
  test("replaces a marked block with the results file's tables, machine and load, and nothing else", () => {
    const dir = mkdtempSync(join(tmpdir(), "lanemap-readme-"));
    try {
      writeFileSync(join(dir, "core-knn.json"), JSON.stringify(results));
      const before =
        "# Title\n\nintro\n\n<!-- bench:core-knn -->\nold figures\n<!-- /bench:core-knn -->\n\noutro\n";
      const { text, refreshed, stale } = refreshReadme(before, dir);
      assert.deepEqual([refreshed, stale], [["core-knn"], []]);
      assert.ok(text.startsWith("# Title\n\nintro\n\n<!-- bench:core-knn -->\n"));
      assert.ok(text.endsWith("\n<!-- /bench:core-knn -->\n\noutro\n"));
      assert.ok(!text.includes("old figures"));
      assert.match(text, /Measured 2026-11-30 12:00 UTC by `core-knn` on 2 × Example CPU @ 2\.0GHz/);
      assert.match(text, /load average at the start \(1 \/ 5 \/ 15 min\): 3\.50 \/ 2\.25 \/ 1\.00/);
      assert.match(text, /\| 1,000 \| 123,457 \|/);
      assert.match(text, /\na note\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("names the two commits a comparison was measured on, their subjects cut to a readable length", () => {
    const dir = mkdtempSync(join(tmpdir(), "lanemap-readme-"));
    try {
      const compare = {
        ...results,
        name: "compare-serve",
        data: {
          before: { commit: "50280d2", subject: "Merge branch 'h-registry' into int" },
          after: { commit: "120bcd0", subject: "shared/storage: " + "a very long subject ".repeat(10) },
        },
      };
      writeFileSync(join(dir, "compare-serve.json"), JSON.stringify(compare));
      const { text } = refreshReadme(
        "<!-- bench:compare-serve -->\nold\n<!-- /bench:compare-serve -->\n",
        dir,
      );
      assert.match(
        text,
        /_Compared: before = `50280d2` \(“Merge branch 'h-registry' into int”\), after = `120bcd0` \(“shared\/storage: a very long subject [^”]{0,44}…”\)\._/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("leaves a block whose results file is missing as it was and reports it as stale", () => {
    const dir = mkdtempSync(join(tmpdir(), "lanemap-readme-"));
    try {
      const before = "<!-- bench:batch -->\nfigures of 2026-01-01\n<!-- /bench:batch -->\n";
      const { text, refreshed, stale } = refreshReadme(before, dir);
      assert.equal(text, before);
      assert.deepEqual([refreshed, stale], [[], ["batch"]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
