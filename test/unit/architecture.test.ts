import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ESLint } from "eslint";
import { projectRoot } from "../helpers/env.js";

/** Lints `code` as if it were the file at `path` (relative to the project root). */
async function importErrors(path: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: projectRoot });
  const [result] = await eslint.lintText(code, { filePath: join(projectRoot, path) });
  return (result?.messages ?? []).filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("the one-way architecture", () => {
  test("a lane importing another lane fails the lint", async () => {
    const errors = await importErrors("batch/x.ts", 'export { publishTile } from "../speed/index.js";\n');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /batch\/ may not import speed\//);
    assert.equal((await importErrors("serving/x.ts", 'export * from "../batch/index.js";\n')).length, 1);
    assert.equal((await importErrors("speed/x.ts", 'export * from "../serving/index.js";\n')).length, 1);
  });

  test("shared imports no lane and no infra", async () => {
    assert.equal(
      (await importErrors("shared/x.ts", 'export * from "../infra/nats/launcher.js";\n')).length,
      1,
    );
    assert.equal(
      (await importErrors("shared/view/x.ts", 'export * from "../../batch/index.js";\n')).length,
      1,
    );
  });

  test("lanes reach shared only through its public entries", async () => {
    assert.equal((await importErrors("serving/x.ts", 'export * from "../shared/grid.js";\n')).length, 1);
    assert.deepEqual(await importErrors("serving/x.ts", 'export * from "../shared/index.js";\n'), []);
    assert.deepEqual(
      await importErrors("speed/x.ts", 'export * from "../shared/adapters/nats/index.js";\n'),
      [],
    );
  });

  test("lanes never reach shared/'s internals", async () => {
    for (const lane of ["batch", "speed", "serving"])
      assert.equal(
        (await importErrors(`${lane}/x.ts`, 'export { KdTree } from "../shared/internal.js";\n')).length,
        1,
        lane,
      );
  });

  test("the sample generator is for infra and tests: no lane and not shared imports it", async () => {
    for (const lane of ["batch", "speed", "serving"]) {
      const errors = await importErrors(
        `${lane}/x.ts`,
        'export { generateTile } from "../sample/index.js";\n',
      );
      assert.equal(errors.length, 1, lane);
      assert.match(errors[0]!, /may not import sample\//);
    }
    assert.equal(
      (await importErrors("shared/view/x.ts", 'export * from "../../sample/index.js";\n')).length,
      1,
    );
    assert.deepEqual(await importErrors("infra/x.ts", 'export * from "../sample/index.js";\n'), []);
    assert.deepEqual(await importErrors("test/x.ts", 'export * from "../sample/index.js";\n'), []);
  });

  test("the sample generator builds on shared's faces only", async () => {
    assert.deepEqual(
      await importErrors("sample/x.ts", 'export { createRandom } from "../shared/internal.js";\n'),
      [],
    );
    assert.deepEqual(await importErrors("sample/x.ts", 'export * from "../shared/index.js";\n'), []);
    assert.equal(
      (await importErrors("sample/x.ts", 'export * from "../shared/util/random.js";\n')).length,
      1,
    );
    assert.equal((await importErrors("sample/x.ts", 'export * from "../batch/index.js";\n')).length, 1);
  });

  test("shared/index.ts is the domain face: internals and the sample generator are not on it", async () => {
    const face = await import("../../shared/index.js");
    const internal = await import("../../shared/internal.js");
    for (const name of [
      "KdTree",
      "referenceKernel",
      "mortonOrder",
      "fillPolygon",
      "createRandom",
      "hilbertIndex",
    ]) {
      assert.equal(name in face, false, name);
      assert.equal(name in internal, true, name);
    }
    for (const name of ["generateTile", "generateArchive", "SAMPLE_SPECTRA"])
      assert.equal(name in internal, false, name);
    for (const name of Object.keys(face)) assert.ok(name in internal, `internal.ts re-exports ${name}`);
  });

  test("DuckDB's values stay behind its adapter: no lane imports @duckdb/node-api", async () => {
    for (const lane of ["batch", "speed", "serving"])
      assert.equal(
        (await importErrors(`${lane}/x.ts`, 'export { listValue } from "@duckdb/node-api";\n')).length,
        1,
        lane,
      );
    assert.deepEqual(
      await importErrors(
        "batch/x.ts",
        'export { DuckDbDatabase } from "../shared/adapters/duckdb/index.js";\n',
      ),
      [],
    );
  });

  test("infra may import every lane", async () => {
    assert.deepEqual(await importErrors("infra/x.ts", 'export * from "../batch/index.js";\n'), []);
  });
});
