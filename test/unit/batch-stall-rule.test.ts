import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { lookForStall, type StallLook } from "../../batch/stall-rule.js";

/** A look at `nowMs`, the last progress at 0, with 20 s stall and 70 s task deadlines unless told. */
const look = (o: Partial<StallLook> & { nowMs: number }): StallLook => ({
  progressMs: 0,
  signMs: 0,
  held: 0,
  heldBoundMs: 70_000,
  stallMs: 20_000,
  ...o,
});

describe("when a stream run stops waiting for its workers", () => {
  test("a run nobody works on is stalled once LANEMAP_BATCH_STALL_S passed without progress", () => {
    assert.deepEqual(lookForStall(look({ nowMs: 19_999 })), { stalled: false, signMs: 0 });
    assert.deepEqual(lookForStall(look({ nowMs: 20_000 })), { stalled: true, signMs: 0, cause: "idle" });
  });

  test("a task held by a worker keeps the run going while its deadline since the last progress runs", () => {
    const v = lookForStall(look({ nowMs: 69_000, signMs: 64_000, held: 3 }));
    assert.deepEqual(v, { stalled: false, signMs: 69_000 }, "a long tile is work, not a stall");
  });

  test("a task held past its deadline with no progress is no sign of work: the run stalls a stall bound later", () => {
    // Polls every 5 s: the last one within the 70 s bound was at 65 s.
    const past = lookForStall(look({ nowMs: 75_000, signMs: 65_000, held: 12 }));
    assert.deepEqual(past, { stalled: false, signMs: 65_000 }, "no new sign past the bound");
    const stalled = lookForStall(look({ nowMs: 85_000, signMs: past.signMs, held: 12 }));
    assert.deepEqual(stalled, { stalled: true, signMs: 65_000, cause: "held" });
  });

  test("the run fails at most the tasks' deadline plus the stall bound after its last progress, however long tasks stay held", () => {
    let signMs = 0;
    let failedAt: number | undefined;
    for (let nowMs = 0; nowMs <= 10 * 60_000 && failedAt === undefined; nowMs += 5_000) {
      const v = lookForStall(look({ nowMs, signMs, held: 12 }));
      signMs = v.signMs;
      if (v.stalled) failedAt = nowMs;
    }
    assert.ok(failedAt !== undefined && failedAt <= 70_000 + 20_000, `failed at ${failedAt} ms`);
  });

  test("progress (a result, a new task taken) restarts both clocks", () => {
    const v = lookForStall(look({ nowMs: 100_000, progressMs: 95_000, signMs: 60_000, held: 12 }));
    assert.deepEqual(v, { stalled: false, signMs: 100_000 });
  });
});
