/**
 * The one pause both lanes' pull loops take after failed pulls (shared/util/backoff.ts).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PULL_BACKOFF_MAX_MS, pullBackoff, pullBackoffMs } from "../../shared/index.js";

describe("a pull loop's backoff", () => {
  test("pauses 200 ms after the first failure and doubles up to 5 s", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 40].map(pullBackoffMs),
      [200, 400, 800, 1600, 3200, 5000, 5000, 5000],
    );
    assert.equal(PULL_BACKOFF_MAX_MS, 5000);
  });

  test("ends its pause at once when its consumer stops", async () => {
    const stopping = new AbortController();
    const t0 = performance.now();
    const paused = pullBackoff(6, stopping.signal);
    stopping.abort();
    await paused;
    assert.ok(performance.now() - t0 < 1000, "an aborted pause does not wait its 5 s");
  });

  test("does not pause at all for a consumer already stopped", async () => {
    const t0 = performance.now();
    await pullBackoff(6, AbortSignal.abort());
    assert.ok(performance.now() - t0 < 1000);
  });
});
