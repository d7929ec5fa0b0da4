/**
 * Bad input: every broken sample, and truncated or mutated real TIFFs, must end in a TileDecodeError (or
 * a PixelBudgetError, or a CrsError when PROJ cannot place what decoded) — never another exception, a
 * crash or a hang — in process and through the
 * worker pool, whose deadline stops a decode that takes too long.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import {
  DeadlineError,
  DecoderPool,
  PixelBudgetError,
  TileDecodeError,
  decodeGeoTiff,
  decodeGeoTiffIsolated,
} from "../../shared/internal.js";
import { CrsError } from "../../shared/crs/index.js";
import { missing, sharedData } from "../helpers/env.js";
import { buildTiff, deflateBlock, lzwBlock } from "../helpers/tiff-bytes.js";

const brokenDir = sharedData("broken");
const brokenFiles = brokenDir ? readdirSync(brokenDir).filter((f) => f.endsWith(".tif")) : [];
const skipShared = missing({ shared: true });

/**
 * Asserts a decode failure is one of lanemap's named refusals of a tile, with a reason in its
 * message: TileDecodeError, PixelBudgetError, or CrsError when the bytes decode but PROJ cannot
 * place them (a flipped bit in a geotransform put a corner at x = -3.4e213, seen in a full run).
 */
function isNamedRefusal(err: unknown): true {
  assert.ok(
    err instanceof TileDecodeError || err instanceof PixelBudgetError || err instanceof CrsError,
    `expected TileDecodeError, PixelBudgetError or CrsError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
  );
  assert.ok(err.message.length > 0);
  return true;
}

/** A 5000 x 5000 (25 Mpx) deflate image of zeros: 25 MB to inflate and copy from ~25 kB of file. */
function bigZeroTiff(): Uint8Array {
  const width = 5000;
  const height = 5000;
  const rows = 500;
  const strip = deflateBlock(new Uint8Array(width * rows));
  return buildTiff({
    width,
    height,
    compression: 8,
    rowsPerStrip: rows,
    blocks: new Array<Uint8Array>(height / rows).fill(strip),
  });
}

/** A small valid file any pool can decode: 4 x 2 uint8, deflate. */
const SMALL = buildTiff({
  width: 4,
  height: 2,
  compression: 8,
  blocks: [deflateBlock(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))],
});

describe("the broken samples", { skip: skipShared }, () => {
  for (const name of brokenFiles) {
    test(`${name} ends in a TileDecodeError that says why`, async () => {
      const bytes = readFileSync(join(brokenDir as string, name));
      await assert.rejects(decodeGeoTiff(bytes), (err: unknown) => {
        assert.ok(err instanceof TileDecodeError, `got ${String(err)}`);
        assert.match(err.message, /\w+ \w+/);
        return true;
      });
    });
  }

  describe("through a DecoderPool with a 2 s deadline", () => {
    let pool: DecoderPool;
    before(() => {
      pool = new DecoderPool({ size: 2, timeoutMs: 2000 });
    });
    after(() => pool.close());

    for (const name of brokenFiles) {
      test(`${name} ends in a TileDecodeError rebuilt across the worker boundary`, async () => {
        const bytes = readFileSync(join(brokenDir as string, name));
        await assert.rejects(pool.decode(bytes), (err: unknown) => {
          assert.ok(err instanceof TileDecodeError, `got ${String(err)}`);
          assert.ok(!(err.cause instanceof DeadlineError), "a broken sample must fail, not time out");
          return true;
        });
      });
    }
  });
});

describe("the pixel budget", () => {
  // Claims 50000 x 50000 pixels; its one "strip" is 4 bytes, so any attempt to decode would fail
  // differently: a PixelBudgetError proves the refusal came first.
  const claim = buildTiff({ width: 50_000, height: 50_000, blocks: [new Uint8Array(4)] });

  test("an image over maxPixels is refused with PixelBudgetError before any pixel is decoded", async () => {
    await assert.rejects(decodeGeoTiff(claim), (err: unknown) => {
      assert.ok(err instanceof PixelBudgetError);
      assert.equal(err.pixels, 2_500_000_000);
      return true;
    });
    await assert.rejects(decodeGeoTiff(SMALL, { maxPixels: 7 }), PixelBudgetError);
    const r = await decodeGeoTiff(SMALL, { maxPixels: 8 });
    assert.deepEqual(Array.from(r.bands[0] ?? []), [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test("the pool rebuilds a PixelBudgetError with its pixel count and budget", async () => {
    const pool = new DecoderPool({ size: 1 });
    try {
      await assert.rejects(pool.decode(SMALL, { maxPixels: 5 }), (err: unknown) => {
        assert.ok(err instanceof PixelBudgetError);
        assert.equal(err.pixels, 8);
        assert.equal(err.budget, 5);
        return true;
      });
    } finally {
      await pool.close();
    }
  });
});

describe("DecoderPool deadlines", () => {
  test("a decode past its deadline rejects with a TileDecodeError caused by a DeadlineError, and the pool recovers", async () => {
    const pool = new DecoderPool({ size: 1 });
    try {
      // 25 Mpx cannot be inflated and copied within 1 ms: the deadline always wins.
      await assert.rejects(pool.decode(bigZeroTiff(), { timeoutMs: 1 }), (err: unknown) => {
        assert.ok(err instanceof TileDecodeError);
        assert.ok(err.cause instanceof DeadlineError);
        return true;
      });
      // The timed-out worker was terminated; a fresh one decodes the next tile.
      const r = await pool.decode(SMALL);
      assert.deepEqual(Array.from(r.bands[0] ?? []), [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal(pool.workerCount, 1);
    } finally {
      await pool.close();
    }
  });

  test("the caller's bytes stay usable after a pooled decode", async () => {
    const bytes = SMALL.slice();
    await decodeGeoTiffIsolated(bytes);
    assert.equal(bytes.byteLength, SMALL.byteLength);
    assert.deepEqual(bytes, SMALL);
  });

  test("a closed pool rejects pending and new decodes", async () => {
    const pool = new DecoderPool({ size: 1 });
    const pending = assert.rejects(pool.decode(bigZeroTiff()), TileDecodeError);
    await pool.close();
    await pending;
    await assert.rejects(pool.decode(SMALL), /closed/);
  });
});

/** Seeds for mutation: built deflate and LZW files, and small real ones (stripped, tiled, float, COG). */
function fuzzSeeds(): Uint8Array[] {
  const seeds = [
    SMALL,
    lzwTiff(lzwBlock(LZW_DATA)),
    buildTiff({
      width: 3,
      height: 3,
      compression: 8,
      tile: { width: 2, height: 2 },
      blocks: [0, 10, 20, 30].map((v) => deflateBlock(new Uint8Array([v, v + 1, v + 2, v + 3]))),
    }),
  ];
  for (const parts of [
    ["encodings", "float_nan.tif"],
    ["encodings", "RGBA.uint16.tif"],
    ["chiapas-l7-labels", "training_data.gtif"],
    ["encodings", "cog_scale.tif"],
  ]) {
    const p = sharedData(...parts);
    if (p) seeds.push(new Uint8Array(readFileSync(p)));
  }
  return seeds;
}

type Mutation =
  | { kind: "truncate"; at: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "flip"; at: number; bit: number };

/** Mutations aimed mostly at the first 4 kB, where headers and IFDs of the seeds live. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("set" as const), at: fc.oneof(fc.nat(4096), fc.nat()), value: fc.nat(255) }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.oneof(fc.nat(4096), fc.nat()), bit: fc.nat(7) }),
);

function mutate(seed: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = seed.slice();
  for (const m of mutations) {
    if (out.length === 0) break;
    const at = m.at % out.length;
    if (m.kind === "truncate") out = out.slice(0, at);
    else if (m.kind === "set") out[at] = m.value;
    else out[at] = (out[at] as number) ^ (1 << m.bit);
  }
  return out;
}

/** 64 x 64 x 4 uint8 samples of smooth, slightly noisy data: LZW finds long and short strings in it. */
const LZW_DATA = new Uint8Array(64 * 64 * 4).map(
  (_, i) => (Math.round(100 + 60 * Math.sin(i / 37) + 30 * Math.cos(i / 11)) + (i % 7)) & 255,
);

function lzwTiff(strip: Uint8Array): Uint8Array {
  return buildTiff({ width: 64, height: 64, samplesPerPixel: 4, compression: 5, blocks: [strip] });
}

describe("corrupt LZW", () => {
  test("an LZW strip decodes back to its samples", async () => {
    const r = await decodeGeoTiff(lzwTiff(lzwBlock(LZW_DATA)));
    r.bands.forEach((band, k) =>
      assert.deepEqual(Array.from(band), Array.from(LZW_DATA.filter((_, i) => i % 4 === k))),
    );
  });

  // One byte changed in this strip makes @developmentseed/lzw-tiff-decoder (WASM) loop forever; a
  // decoder on the main thread must end instead.
  for (const [at, value] of [
    [12209, 27],
    [12194, 245],
  ] as const) {
    test(`an LZW strip with byte ${at} set to ${value} ends in a TileDecodeError naming the bad code`, async () => {
      const strip = lzwBlock(LZW_DATA);
      strip[at] = value;
      await assert.rejects(decodeGeoTiff(lzwTiff(strip)), (err: unknown) => {
        assert.ok(err instanceof TileDecodeError);
        assert.match(err.message, /strip 0: decompression failed: code \d+ is beyond the table/);
        return true;
      });
    });
  }
});

describe("mutated and truncated TIFFs", () => {
  const seeds = fuzzSeeds();
  const input = fc.record({
    seed: fc.nat(seeds.length - 1),
    mutations: fc.array(mutation, { minLength: 1, maxLength: 6 }),
  });
  // A budget that keeps any header a mutation inflates to a few tens of MB at most.
  const maxPixels = 4_000_000;

  test("decode in process or end in TileDecodeError/PixelBudgetError/CrsError, never another exception", async () => {
    await fc.assert(
      fc.asyncProperty(input, async ({ seed, mutations }) => {
        const bytes = mutate(seeds[seed] as Uint8Array, mutations);
        try {
          const r = await decodeGeoTiff(bytes, { maxPixels });
          assert.equal(r.bands.length, r.bandCount);
          for (const b of r.bands) assert.equal(b.length, r.width * r.height);
        } catch (err) {
          isNamedRefusal(err);
        }
      }),
      { numRuns: 400 },
    );
  });

  test("decode in the pool without ever reaching the deadline or crashing a worker", async () => {
    const pool = new DecoderPool({ size: 2, timeoutMs: 5000 });
    try {
      await fc.assert(
        fc.asyncProperty(input, async ({ seed, mutations }) => {
          const bytes = mutate(seeds[seed] as Uint8Array, mutations);
          try {
            await pool.decode(bytes, { maxPixels });
          } catch (err) {
            isNamedRefusal(err);
            assert.ok(
              !((err as Error).cause instanceof DeadlineError),
              "a mutated file made the decoder hang",
            );
            assert.doesNotMatch((err as Error).message, /decoder worker failed/);
          }
        }),
        { numRuns: 150 },
      );
    } finally {
      await pool.close();
    }
  });

  test(
    "every truncation of a real file is refused or decoded, never thrown otherwise",
    { skip: skipShared },
    async () => {
      const bytes = new Uint8Array(readFileSync(sharedData("encodings", "RGBA.uint16.tif") as string));
      // Every 97th length, plus the header's edges.
      const lengths = [0, 1, 7, 8, 9, 15, 16];
      for (let n = 17; n < bytes.length; n += 97) lengths.push(n);
      for (const n of lengths) {
        await decodeGeoTiff(bytes.subarray(0, n)).then(
          () => assert.fail(`a ${n}-byte truncation decoded`),
          (err: unknown) => isNamedRefusal(err),
        );
      }
    },
  );
});
