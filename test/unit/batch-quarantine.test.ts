/**
 * Which bad-tile records keep a catalogue entry out of batch runs (batch/catalogue.ts `quarantines`):
 * only the speed lane's dead letter of this very content with a permanent code of the error table.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { quarantines } from "../../batch/index.js";
import type { BadTileRecord, CatalogueEntry } from "../../shared/index.js";

const HASH = "a".repeat(64);
const entry = { tileId: "c0001r0001-20240801T100000Z", contentHash: HASH } as CatalogueEntry;
const deadLetter: BadTileRecord = {
  key: entry.tileId,
  source: "stream",
  code: "TILE_DECODE",
  reason: "strip 1: decompression failed",
  at: "2024-08-01T10:00:05Z",
  contentHash: HASH,
};

describe("quarantined catalogue entries", () => {
  test("a speed-lane dead letter of the same content with a permanent code quarantines the entry", () => {
    for (const code of ["TILE_DECODE", "TILE_INVALID", "PIXEL_BUDGET", "MODEL"])
      assert.equal(quarantines({ ...deadLetter, code }, entry), true, code);
  });

  test("a tile that ran out of deliveries or over the speed lane's deadline is left to the batch run to try", () => {
    assert.equal(quarantines({ ...deadLetter, code: "MAX_DELIVER" }, entry), false);
    assert.equal(quarantines({ ...deadLetter, code: "DEADLINE" }, entry), false);
  });

  test("a transient or unknown code does not quarantine", () => {
    assert.equal(quarantines({ ...deadLetter, code: "STORAGE" }, entry), false);
    // An object storage lost sight of is not a bad tile (issue 14).
    assert.equal(quarantines({ ...deadLetter, code: "OBJECT_MISSING" }, entry), false);
    assert.equal(quarantines({ ...deadLetter, code: "NO_SUCH_CODE" }, entry), false);
  });

  test("a record of other content, of another tile, without a hash, or of a bulk load does not quarantine", () => {
    assert.equal(quarantines({ ...deadLetter, contentHash: "b".repeat(64) }, entry), false);
    assert.equal(quarantines({ ...deadLetter, key: "another-tile" }, entry), false);
    const { contentHash: _hash, ...noHash } = deadLetter;
    assert.equal(quarantines(noHash, entry), false);
    assert.equal(quarantines({ ...deadLetter, source: "/srv/tiles/scene.tif" }, entry), false);
  });
});
