import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEADLINE_TRIES, deadlineTriedAgain } from "../../batch/deadline-retry.js";

describe("a batch tile that missed its deadline", () => {
  test("is tried once more after its first miss", () => {
    assert.equal(DEADLINE_TRIES, 2);
    assert.equal(deadlineTriedAgain("DEADLINE", 1, 5), true);
  });

  test("fails when it misses again", () => {
    assert.equal(deadlineTriedAgain("DEADLINE", 2, 5), false);
    assert.equal(deadlineTriedAgain("DEADLINE", 3, 5), false);
  });

  test("is not tried again when the work queue allows a single delivery", () => {
    assert.equal(deadlineTriedAgain("DEADLINE", 1, 1), false);
  });

  test("a tile's own failure is never tried again", () => {
    for (const code of ["TILE_DECODE", "PIXEL_BUDGET", "TILE_INVALID"] as const)
      assert.equal(deadlineTriedAgain(code, 1, 5), false, code);
  });
});
