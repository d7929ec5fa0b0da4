import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { heldIn, paired, positiveInt, processCpuSeconds, sidesOf, stat } from "../bench/rounds.js";

describe("benchmark rounds", () => {
  test("the side that goes first alternates round by round", () => {
    assert.deepEqual(
      [0, 1, 2, 3].map((r) => sidesOf(r, ["peer", "lanemap"] as const)),
      [
        ["peer", "lanemap"],
        ["lanemap", "peer"],
        ["peer", "lanemap"],
        ["lanemap", "peer"],
      ],
    );
  });

  test("ratios are paired within a round, not taken between medians", () => {
    // Medians 20 / 10 = 2, but round by round the numerator is 1.5× or 3× the denominator.
    assert.deepEqual(paired([30, 20, 15], [10, 10, 10]), [3, 2, 1.5]);
    assert.deepEqual(paired([30, 20], [20, 10]), [1.5, 2]);
  });

  test("a target's verdict says in how many rounds it held", () => {
    assert.equal(heldIn([true, true, true, true, true]), "met in all 5 rounds");
    assert.equal(heldIn([true, false, true, true, false]), "met in 3 of 5 rounds");
    assert.equal(heldIn([false, false]), "missed in all 2 rounds");
  });

  test("min / median / max keep every round's figure for the JSON results", () => {
    assert.deepEqual(stat([5, 1, 3, 2]), { min: 1, median: 2.5, max: 5, runs: [5, 1, 3, 2] });
  });

  test("a process's CPU time from /proc agrees with what Node counts for it", () => {
    const before = processCpuSeconds(process.pid);
    const cpu0 = process.cpuUsage();
    // Busy until Node's own counter says 200 ms of CPU, however loaded the machine is.
    let x = 0;
    for (;;) {
      for (let i = 0; i < 1e5; i++) x += Math.sqrt(x + i);
      const used = process.cpuUsage(cpu0);
      if (used.user + used.system >= 200_000) break;
    }
    assert.ok(x > 0);
    // /proc counts in 1/100 s ticks: allow a few ticks either way.
    const delta = processCpuSeconds(process.pid) - before;
    assert.ok(delta >= 0.15 && delta <= 0.5, `/proc counted ${delta} s`);
  });

  test("a rounds option must be a positive integer", () => {
    assert.equal(positiveInt("--rounds", undefined, 5), 5);
    assert.equal(positiveInt("--rounds", "7", 5), 7);
    assert.throws(() => positiveInt("--rounds", "0", 5), /--rounds must be a positive integer, got 0/);
    assert.throws(() => positiveInt("--rounds", "2.5", 5), /positive integer/);
  });
});
