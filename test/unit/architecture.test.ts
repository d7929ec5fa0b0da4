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

  test("infra may import every lane", async () => {
    assert.deepEqual(await importErrors("infra/x.ts", 'export * from "../batch/index.js";\n'), []);
  });
});
