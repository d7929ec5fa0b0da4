/**
 * The ingest message derivation both the speed lane and the batch lane's stream replay apply
 * (shared/pipeline/ingest-message.ts): what a message's headers and subject say about its tile, and
 * where its bytes are.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HEADERS } from "../../shared/adapters/nats/index.js";
import {
  LanemapError,
  TileInvalidError,
  cellOfSubject,
  describeTile,
  ingestDescribeOptions,
  ingestTileBytes,
  ingestTileMeta,
} from "../../shared/index.js";
import { generateTile } from "../../sample/index.js";

const headers = (values: Record<string, string>) => ({ get: (k: string) => values[k] ?? "" });

describe("the ingest message derivation", () => {
  test("takes tile id, cell, acquisition time and PAM from the headers and the stream sequence as ingest sequence", () => {
    const pam = { bands: [{ band: 1, nodata: "0", scale: 0.5 }] };
    const meta = ingestTileMeta({
      subject: "tiles.in.c0001r0002",
      headers: headers({
        [HEADERS.tileId]: "c0001r0002-20240110T164000Z",
        [HEADERS.cell]: "c0001r0002",
        [HEADERS.acquired]: "2024-01-10T16:40:00Z",
        [HEADERS.pam]: JSON.stringify(pam),
      }),
      streamSeq: 42,
    });
    assert.deepEqual(meta, {
      tileId: "c0001r0002-20240110T164000Z",
      cell: "c0001r0002",
      acquired: "2024-01-10T16:40:00Z",
      ingestSeq: 42,
      source: "stream",
      pam: { bands: [{ band: 1, nodata: "0", scale: 0.5 }] },
    });
  });

  test("takes the cell from the subject when the header is absent, and refuses a header that contradicts it", () => {
    assert.equal(cellOfSubject("tiles.in.c0003r0004"), "c0003r0004");
    assert.equal(cellOfSubject("tiles.dlq.c0003r0004"), null);
    const meta = ingestTileMeta({ subject: "tiles.in.c0003r0004", headers: undefined, streamSeq: 1 });
    assert.equal(meta.cell, "c0003r0004");
    assert.equal(meta.tileId, undefined);
    assert.throws(
      () =>
        ingestTileMeta({
          subject: "tiles.in.c0003r0004",
          headers: headers({ [HEADERS.cell]: "c0009r0009" }),
          streamSeq: 1,
        }),
      (err: unknown) =>
        err instanceof TileInvalidError && /contradicts the subject's cell c0003r0004/.test(err.message),
    );
    assert.throws(
      () =>
        ingestTileMeta({
          subject: "tiles.in.c0003r0004",
          headers: headers({ [HEADERS.pam]: "{not json" }),
          streamSeq: 1,
        }),
      TileInvalidError,
    );
  });

  test("reads the bytes inline, or from the object the Lanemap-Object header names", async () => {
    const inline = new Uint8Array([1, 2, 3]);
    const none = { getBlob: () => Promise.resolve(null) };
    assert.equal(await ingestTileBytes({ headers: undefined, data: inline }, none), inline);
    const stored = new Uint8Array([4, 5]);
    const objects = { getBlob: (name: string) => Promise.resolve(name === "t.abc" ? stored : null) };
    const ref = { headers: headers({ [HEADERS.object]: "t.abc" }), data: new Uint8Array(0) };
    assert.equal(await ingestTileBytes(ref, objects), stored);
    await assert.rejects(
      ingestTileBytes({ headers: headers({ [HEADERS.object]: "gone" }), data: new Uint8Array(0) }, objects),
      (err: unknown) => err instanceof LanemapError && err.code === "OBJECT_MISSING",
    );
    await assert.rejects(
      ingestTileBytes({ headers: undefined, data: new Uint8Array(0) }, none),
      TileInvalidError,
    );
  });

  test("refuses an acquisition more than 5 min after the moment it is given (a replay gives the time the stream stored the message)", async () => {
    const acquired = "2024-01-10T16:40:00Z";
    const t = generateTile({ seed: 3, col: 0, row: 0, tileSize: 16, bands: 6, acquired });
    const meta = { cell: "c0000r0000", acquired, ingestSeq: 1, source: "stream" as const };
    const storedBefore = new Date(Date.parse(acquired) - 10 * 60_000);
    await assert.rejects(
      describeTile(t.bytes, meta, ingestDescribeOptions(1e6, storedBefore)),
      (err: unknown) => err instanceof TileInvalidError && /in the future/.test(err.message),
    );
    const entry = await describeTile(
      t.bytes,
      meta,
      ingestDescribeOptions(1e6, new Date(Date.parse(acquired) + 1000)),
    );
    assert.equal(entry.ingestSeq, 1);
  });
});
