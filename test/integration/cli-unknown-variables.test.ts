/**
 * The CLI warns about a misspelt LANEMAP_* variable before a command runs, once per name, naming
 * the closest known variable; the command itself goes on with the defaults.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runLanemap, tempDir } from "./speed-fixtures.js";

describe("unknown LANEMAP_* variables", () => {
  test("`lanemap config` with LANEMAP_BATCH_WORKER set warns once, suggesting LANEMAP_BATCH_WORKERS, and exits 0", async () => {
    await using dir = await tempDir("lanemap-unknown-var-");
    const r = await runLanemap(["config"], {
      LANEMAP_DATA_DIR: dir.path,
      LANEMAP_BATCH_WORKER: "3",
      LANEMAP_TEST_ANYTHING: "1",
    });
    assert.equal(r.code, 0, r.stderr);
    const warnings = r.stderr.split("\n").filter((l) => l.startsWith("lanemap: warning:"));
    assert.deepEqual(warnings, [
      "lanemap: warning: LANEMAP_BATCH_WORKER is not a lanemap variable and is ignored (did you mean LANEMAP_BATCH_WORKERS?)",
    ]);
  });
});
