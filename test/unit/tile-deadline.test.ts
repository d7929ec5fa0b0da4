/**
 * A tile's deadline grows with the work its header announces (issue 14, N2): a big valid tile gets
 * time in proportion to its samples, a tile of unknown size the base, and the reason a DEADLINE
 * failure carries says which deadline applied and how it was derived.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { describeTileDeadline, parseConfig, tileDeadline } from "../../shared/index.js";

const rule = { decodeTimeoutMs: 10_000, decodeMsPerMsample: 1_000 };

describe("a tile's deadline", () => {
  test("is the base plus the allowance per million announced samples (width × height × bands)", () => {
    const d = tileDeadline(rule, { width: 1536, height: 1536, bandCount: 6 });
    // 1536² × 6 = 14 155 776 samples = 14.155776 Msample × 1000 ms, rounded up.
    assert.deepEqual(d, { ms: 24_156, baseMs: 10_000, msamples: 14.155776, msPerMsample: 1_000 });
  });

  test("doubles its allowance when the tile has twice the bands, and not its base", () => {
    const three = tileDeadline(rule, { width: 1000, height: 1000, bandCount: 3 });
    const six = tileDeadline(rule, { width: 1000, height: 1000, bandCount: 6 });
    assert.deepEqual([three.ms, six.ms], [13_000, 16_000]);
  });

  test("is the base alone when the header could not be read, or announces no usable size", () => {
    assert.deepEqual(tileDeadline(rule, null), {
      ms: 10_000,
      baseMs: 10_000,
      msamples: null,
      msPerMsample: 1_000,
    });
    assert.equal(tileDeadline(rule, undefined).ms, 10_000);
    assert.equal(tileDeadline(rule, { width: 0, height: 512, bandCount: 6 }).msamples, null);
    assert.equal(tileDeadline(rule, { width: NaN, height: 512, bandCount: 6 }).ms, 10_000);
  });

  test("is the base for every tile when the allowance is 0 (the rule before issue 14)", () => {
    const flat = { decodeTimeoutMs: 10_000, decodeMsPerMsample: 0 };
    assert.equal(tileDeadline(flat, { width: 1536, height: 1536, bandCount: 6 }).ms, 10_000);
  });

  test("cannot be bought beyond the largest image the decoder accepts by a header announcing more", () => {
    const huge = tileDeadline(rule, { width: 1e6, height: 1e6, bandCount: 1024 });
    assert.equal(huge.msamples, 2 ** 31 / 1e6);
    assert.equal(huge.ms, 10_000 + Math.ceil(2 ** 31 / 1e3));
  });

  test("is described with the deadline and its derivation, for a DEADLINE reason", () => {
    assert.equal(
      describeTileDeadline(tileDeadline(rule, { width: 1536, height: 1536, bandCount: 6 })),
      "24156 ms (10000 ms base + 14.2 Msample × 1000 ms)",
    );
    assert.equal(
      describeTileDeadline(tileDeadline(rule, { width: 512, height: 512, bandCount: 6 })),
      "11573 ms (10000 ms base + 1.57 Msample × 1000 ms)",
    );
    assert.equal(
      describeTileDeadline(tileDeadline(rule, null)),
      "10000 ms (the base; the tile's size is unknown)",
    );
  });

  test("takes its base and allowance from LANEMAP_DECODE_TIMEOUT_MS and LANEMAP_DECODE_MS_PER_MSAMPLE", () => {
    const defaults = parseConfig({});
    assert.deepEqual([defaults.decodeTimeoutMs, defaults.decodeMsPerMsample], [10_000, 3_000]);
    assert.equal(tileDeadline(defaults, { width: 1536, height: 1536, bandCount: 6 }).ms, 52_468);
    const set = parseConfig({ LANEMAP_DECODE_TIMEOUT_MS: "500", LANEMAP_DECODE_MS_PER_MSAMPLE: "0" });
    assert.equal(tileDeadline(set, { width: 1536, height: 1536, bandCount: 6 }).ms, 500);
    assert.throws(
      () => parseConfig({ LANEMAP_DECODE_MS_PER_MSAMPLE: "-1" }),
      /LANEMAP_DECODE_MS_PER_MSAMPLE/,
    );
  });
});
