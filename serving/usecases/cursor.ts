/**
 * Paging cursors. A cursor names the snapshot its first page was read from (id, batch version,
 * live position), the last cell returned and a digest of the query, base64url-encoded JSON. It is
 * opaque to clients but not secret: a forged one can only name a snapshot or a cell, both of which
 * are checked.
 *
 * Consistency: the next page is read from the very snapshot the first page came from — the
 * manager retains snapshots that cursors name (10 minutes after the last page by default), and the
 * latest snapshot answers for any cursor with its same versions. A cursor whose snapshot is gone
 * gets 410 Gone (`cursor-expired`): start again without a cursor. Pages never mix versions.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { CursorExpiredError, InvalidParamsError } from "../errors.js";
import type { SnapshotLease, SnapshotManager } from "../view/snapshot.js";

const payload = z.object({
  v: z.literal(1),
  s: z.string().max(64),
  b: z.number().int().min(0).nullable(),
  l: z.number().int().min(0).nullable(),
  a: z.string().max(256),
  q: z.string().max(64),
});
type CursorPayload = z.infer<typeof payload>;

/** A short digest of the query a cursor belongs to (endpoint and every filter). */
export function queryDigest(parts: Readonly<Record<string, unknown>>): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("base64url").slice(0, 16);
}

/** Encodes a cursor for the page after `afterCell`. */
export function encodeCursor(lease: SnapshotLease, afterCell: string, digest: string): string {
  const v = lease.snapshot.versions;
  const p: CursorPayload = {
    v: 1,
    s: lease.snapshot.id,
    b: v.batchVersion,
    l: v.livePosition,
    a: afterCell,
    q: digest,
  };
  return Buffer.from(JSON.stringify(p)).toString("base64url");
}

/**
 * Resolves a cursor to its snapshot and the cell to continue after, or throws: 400 when it is not
 * a cursor of this query (`name` is the parameter it came in), 410 when its snapshot expired.
 */
export function resolveCursor(
  snapshots: SnapshotManager,
  cursor: string,
  digest: string,
  name: string,
): { lease: SnapshotLease; after: string } {
  let p: CursorPayload;
  try {
    p = payload.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
  } catch (cause) {
    throw new InvalidParamsError([{ name, reason: "is not a cursor this service issued" }], { cause });
  }
  if (p.q !== digest)
    throw new InvalidParamsError([
      { name, reason: "belongs to a different query: repeat the first page's parameters with it" },
    ]);
  const lease = snapshots.find(p.s, p.b, p.l);
  if (!lease)
    throw new CursorExpiredError(
      `the snapshot this cursor pages (batch version ${p.b ?? "none"}, live position ${p.l ?? "none"}) is no longer retained; request the first page again`,
    );
  return { lease, after: p.a };
}
