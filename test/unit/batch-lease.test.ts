/**
 * `staleLease` (batch/publisher.ts): what a publisher checks before it writes anything, so that a
 * second coordinator stops with a message naming what happened instead of uploading into another's
 * version and failing later with a bare timeout (issue 14).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { staleLease } from "../../batch/index.js";
import { LanemapError } from "../../shared/index.js";

describe("a publisher's lease on CURRENT", () => {
  test("holds while CURRENT is at the revision the run read, or still absent when it read none", () => {
    assert.equal(staleLease({ expected: 4 }, { name: "v000004", revision: 4 }, "v000005"), null);
    assert.equal(staleLease({ expected: null }, null, "v000001"), null);
  });

  test("is stale once CURRENT moved, and the conflict names the version published meanwhile and says the checkpoint is kept", () => {
    const err = staleLease({ expected: 4 }, { name: "v000017", revision: 5 }, "v000017");
    assert.ok(err instanceof LanemapError);
    assert.equal(err.code, "VIEW_POINTER_CONFLICT");
    assert.match(err.message, /expected revision 4, found v000017 at revision 5/);
    assert.match(err.message, /another coordinator published v000017 .*nothing was uploaded/);
    assert.match(err.message, /checkpoint is kept: run again to build on v000017/);
  });

  test("is stale when a pointer appeared since the run found none, or vanished since it read one", () => {
    assert.match(
      staleLease({ expected: null }, { name: "v000001", revision: 1 }, "v000001")?.message ?? "",
      /expected revision none, found v000001 at revision 1/,
    );
    assert.match(
      staleLease({ expected: 3 }, null, "v000004")?.message ?? "",
      /found no pointer; CURRENT was removed since this run read it/,
    );
  });
});
