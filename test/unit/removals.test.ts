/**
 * The tombstone rule (issue 14): which ingest messages of a removed tile the replays leave out, and
 * when a tombstone may be dropped.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HEADERS } from "../../shared/adapters/nats/names.js";
import { originalIngestSeq, removalDroppable, removedBy, type Removal } from "../../shared/index.js";

const removal: Removal = {
  tileId: "c0001r0000-20240110T164000Z",
  removedAt: "2026-12-01T10:00:00.000Z",
  ingestSeq: 5,
  contentHash: "a".repeat(64),
};
const at = (iso: string): Date => new Date(iso);
const headers = (h: Record<string, string>) => ({ get: (k: string) => h[k] ?? "" });

describe("a removal's tombstone", () => {
  test("covers the messages the stream stored up to its sequence, not those stored after", () => {
    const late = at("2030-01-01T00:00:00Z"); // the sequence decides, not the clock
    assert.equal(removedBy(removal, { seq: 2, storedAt: late }), true);
    assert.equal(removedBy(removal, { seq: 5, storedAt: late }), true);
    assert.equal(removedBy(removal, { seq: 6, storedAt: at("2020-01-01T00:00:00Z") }), false);
  });

  test("without a recorded sequence, compares the time the stream stored the message", () => {
    const byTime = { ...removal, ingestSeq: null };
    assert.equal(removedBy(byTime, { seq: 900, storedAt: at("2026-12-01T09:59:59Z") }), true);
    assert.equal(removedBy(byTime, { seq: 1, storedAt: at("2026-12-01T10:00:01Z") }), false);
  });

  test("recorded when the stream did not exist (sequence 0) covers no message", () => {
    assert.equal(
      removedBy({ ...removal, ingestSeq: 0 }, { seq: 1, storedAt: at("2000-01-01T00:00:00Z") }),
      false,
    );
  });

  test("an ops replay copy counts by the message it copies", () => {
    assert.equal(originalIngestSeq({ streamSeq: 9, headers: headers({ [HEADERS.replayOf]: "3" }) }), 3);
    assert.equal(originalIngestSeq({ streamSeq: 9, headers: headers({}) }), 9);
    assert.equal(originalIngestSeq({ streamSeq: 9, headers: undefined }), 9);
    // A header naming no earlier message is not believed.
    assert.equal(originalIngestSeq({ streamSeq: 9, headers: headers({ [HEADERS.replayOf]: "12" }) }), 9);
    assert.equal(originalIngestSeq({ streamSeq: 9, headers: headers({ [HEADERS.replayOf]: "x" }) }), 9);
  });

  test("can be dropped once the stream no longer holds a message it covers", () => {
    assert.equal(removalDroppable(removal, { firstSeq: 5, messages: 3 }), false);
    assert.equal(removalDroppable(removal, { firstSeq: 6, messages: 3 }), true);
    assert.equal(removalDroppable(removal, { firstSeq: 9, messages: 0 }), true, "an empty stream");
    assert.equal(removalDroppable(removal, null), true, "no stream at all");
  });

  test("without a recorded sequence, can be dropped once the first stored message is newer than the removal", () => {
    const byTime = { ...removal, ingestSeq: null };
    assert.equal(
      removalDroppable(byTime, { firstSeq: 1, messages: 2, firstStoredAt: at("2026-12-01T09:00:00Z") }),
      false,
    );
    assert.equal(
      removalDroppable(byTime, { firstSeq: 1, messages: 2, firstStoredAt: at("2026-12-01T11:00:00Z") }),
      true,
    );
    assert.equal(removalDroppable(byTime, { firstSeq: 1, messages: 2 }), false, "the time unknown");
  });
});
