/**
 * Object store reads that need no consumer: listing a bucket and reading a one-chunk object with
 * the stream's own API (STREAM.INFO with a subjects filter, STREAM.MSG.GET by last subject), which
 * the stream's leader answers.
 *
 * Why: nats.js lists an object store (`ObjectStore.list`) and reads an object (`get`) through an
 * ephemeral R1 consumer, and nats-server before 2.12 (Debian ships 2.9) may place that consumer on
 * an offline peer (nats-server PR #7165). With one node of the cluster down, about a third of
 * those listings then time out, and with the adapters' retries `lanemap ops status` took 32–41 s
 * and `/v1/views` 10–30 s (issue 14, the operator's check). The stream API has no such placement:
 * it answers in milliseconds whenever the stream has a leader.
 *
 * The layout read here is the object store's (ADR-20 of nats-architecture-and-design): the
 * object's info is the last message on `$O.<bucket>.M.<name as base64url>`, its bytes are the
 * messages on `$O.<bucket>.C.<nuid>`, and the info's `digest` is `SHA-256=<base64url>` (padded by
 * nats.js, unpadded by some other clients: compared without the padding).
 */
import { createHash } from "node:crypto";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import { READ_RETRIES, guarded } from "./guarded.js";
import { kvStreamName, objectStoreStreamName } from "./replicas.js";

/** What the object store keeps about one object (the fields lanemap reads). */
export interface StoredObjectInfo {
  readonly name: string;
  /** Bytes. */
  readonly size: number;
  readonly chunks: number;
  readonly nuid: string;
  /** `SHA-256=<base64url of the digest>`. */
  readonly digest: string;
  readonly deleted: boolean;
}

/** Concurrent STREAM.MSG.GET requests of one listing: enough to overlap round trips, not flood. */
const PARALLEL_GETS = 16;

/**
 * The info of every object of `bucket` (deleted ones included, flagged), in no particular order.
 * @throws what the JetStream API throws (a timeout while the stream has no leader; the adapters
 *   map and retry it, guarded.ts).
 */
export async function listObjectInfos(jsm: JetStreamManager, bucket: string): Promise<StoredObjectInfo[]> {
  const stream = objectStoreStreamName(bucket);
  const info = await jsm.streams.info(stream, { subjects_filter: `$O.${bucket}.M.>` });
  const subjects = Object.keys(info.state.subjects ?? {});
  const out: StoredObjectInfo[] = [];
  for (let i = 0; i < subjects.length; i += PARALLEL_GETS) {
    const batch = await Promise.all(
      subjects
        .slice(i, i + PARALLEL_GETS)
        .map((subject) => jsm.streams.getMessage(stream, { last_by_subj: subject })),
    );
    for (const m of batch) {
      if (!m) continue;
      const v = m.json<Partial<StoredObjectInfo>>();
      if (typeof v.name !== "string") continue;
      out.push({
        name: v.name,
        size: v.size ?? 0,
        chunks: v.chunks ?? 0,
        nuid: v.nuid ?? "",
        digest: v.digest ?? "",
        deleted: v.deleted === true,
      });
    }
  }
  return out;
}

/**
 * The keys of a KV bucket under `filter` (a KV key pattern, `>` for all) that have a message —
 * deleted and purged keys included (their marker is a message): read each value with `KV.get`
 * (a STREAM.MSG.GET or direct get, no consumer either) to tell them apart. In no particular order.
 *
 * Why not `KV.keys()`: it creates an ordered push consumer, which nats-server 2.9 may place on an
 * offline peer (nats-server PR #7165); with a node down, `lanemap model list` and every start-up
 * that reconciled the model registry failed at random with a bare "timeout" (issue 14, F1).
 * Stream info with a subjects filter is answered by the stream's leader (paged by nats.js).
 * @throws what the JetStream API throws (a timeout while the stream has no leader).
 */
export async function listKvKeys(jsm: JetStreamManager, bucket: string, filter = ">"): Promise<string[]> {
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(kvStreamName(bucket), { subjects_filter: `${prefix}${filter}` });
  return Object.keys(info.state.subjects ?? {})
    .filter((s) => s.startsWith(prefix))
    .map((s) => s.slice(prefix.length));
}

/**
 * The bytes of an object stored in at most one chunk (a manifest, a small JSON), checked against
 * its digest; `undefined` when it has more chunks (read it with the object store instead), `null`
 * when its chunk is gone or does not match (an object being replaced).
 * @throws what the JetStream API throws.
 */
export async function readOneChunkObject(
  jsm: JetStreamManager,
  bucket: string,
  info: StoredObjectInfo,
): Promise<Uint8Array | null | undefined> {
  if (info.deleted) return null;
  if (info.chunks > 1) return undefined;
  if (info.size === 0) return new Uint8Array(0);
  const m = await jsm.streams.getMessage(objectStoreStreamName(bucket), {
    last_by_subj: `$O.${bucket}.C.${info.nuid}`,
  });
  if (!m || m.data.length !== info.size) return null;
  const digest = `SHA-256=${createHash("sha256").update(m.data).digest("base64url")}`;
  return digest === info.digest.replace(/=+$/, "") ? m.data : null;
}

/**
 * The chunks of an object, in order, read one STREAM.MSG.GET each (`next_by_subj` on the object's
 * chunk subject from the sequence after the last one read): no consumer, so no placement on a dead
 * peer (nats-server PR #7165), and each request is bounded by `jsm`'s request timeout. The count
 * and total size are checked against `info`; the digest is left to the caller (the views check the
 * manifest's sha256 of every file, {@link readObjectDirect} the object's own).
 *
 * Why: a switch of `lanemap serve` downloads a version's view.duckdb (many chunks) and read it with
 * `ObjectStore.get`, an ordered consumer; with a node down its creation waited its 5 s timeout and
 * was retried without a word, one switch in three (issue 14, F7).
 * @throws Error (not transient) when a chunk is missing or the sizes disagree (an object being
 *   replaced); what the JetStream API throws (a timeout: transient, guarded.ts retries it).
 */
export async function* objectChunks(
  jsm: JetStreamManager,
  bucket: string,
  info: StoredObjectInfo,
): AsyncGenerator<Uint8Array> {
  const stream = objectStoreStreamName(bucket);
  const subject = `$O.${bucket}.C.${info.nuid}`;
  let seq = 0;
  let size = 0;
  for (let chunk = 0; chunk < info.chunks; chunk++) {
    // next_by_subj is part of STREAM.MSG.GET since nats-server 2.9; nats.js types it only for direct gets.
    const query = { seq: seq + 1, next_by_subj: subject } as unknown as { seq: number };
    const m = await jsm.streams.getMessage(stream, query);
    if (!m || m.subject !== subject)
      throw new Error(`object ${info.name}: chunk ${chunk + 1} of ${info.chunks} is missing`);
    seq = m.seq;
    size += m.data.length;
    yield m.data;
  }
  if (size !== info.size)
    throw new Error(`object ${info.name}: ${size} bytes read, ${info.size} expected (object replaced?)`);
}

/**
 * An object's bytes read without a consumer ({@link objectChunks}), checked against its digest;
 * null when it is deleted or does not match (an object being replaced).
 * @throws what {@link objectChunks} throws.
 */
export async function readObjectDirect(
  jsm: JetStreamManager,
  bucket: string,
  info: StoredObjectInfo,
): Promise<Uint8Array | null> {
  if (info.deleted) return null;
  const hash = createHash("sha256");
  const out = new Uint8Array(info.size);
  let at = 0;
  try {
    for await (const part of objectChunks(jsm, bucket, info)) {
      if (at + part.length > out.length) return null;
      out.set(part, at);
      at += part.length;
      hash.update(part);
    }
  } catch (err) {
    if (err instanceof Error && err.message.startsWith(`object ${info.name}: `)) return null;
    throw err;
  }
  const digest = `SHA-256=${hash.digest("base64url")}`;
  return digest === info.digest.replace(/=+$/, "") ? out : null;
}

/** How long an object read may go without a chunk before it is given up (ms); see {@link getBlobWithin}. */
export const OBJECT_READ_IDLE_MS = 10_000;

/**
 * An object's bytes as `ObjectStore.getBlob`, or null when it is absent — but given up (a rejection
 * named TimeoutError, which isTransientBrokerError and so the adapters' retries take as transient)
 * when no chunk came for `idleMs`, its ordered consumer stopped.
 *
 * Why: nats.js reads the chunks through an ordered push consumer with a 30 s idle heartbeat; placed
 * on a node that just died (nats-server PR #7165) it never delivers, and `getBlob` waited for ever —
 * a batch task worker then kept its task in progress with heartbeats and stopped taking tasks
 * (issue 14, the operator's run 3). The deadline is per chunk, not per object, so a large tile on a
 * slow link is not cut off while it still arrives.
 * @throws Error named TimeoutError after `idleMs` without progress; what `get` throws.
 */
export async function getBlobWithin(
  store: ObjectStore,
  name: string,
  idleMs = OBJECT_READ_IDLE_MS,
): Promise<Uint8Array | null> {
  let timer: NodeJS.Timeout | undefined;
  let given = false;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let fail: (err: Error) => void = () => undefined;
  const stalled = new Promise<never>((_, reject) => (fail = reject));
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      given = true;
      reader?.cancel().catch(() => undefined); // stops the ordered consumer
      const err = new Error(`reading object ${name}: no data for ${idleMs} ms`);
      err.name = "TimeoutError";
      fail(err);
    }, idleMs);
  };
  const read = async (): Promise<Uint8Array | null> => {
    const r = await store.get(name);
    if (r === null) return null;
    if (given) {
      await r.data.cancel().catch(() => undefined);
      return null;
    }
    arm();
    reader = r.data.getReader();
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value?.length) {
        parts.push(value);
        size += value.length;
        arm();
      }
    }
    const err = await r.error;
    if (err) throw err;
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  arm();
  const reading = read();
  reading.catch(() => undefined); // settled after a timeout: nobody waits for it any more
  try {
    return await Promise.race([reading, stalled]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `store` as the one `getBlob` the pipeline reads tiles with (shared/pipeline TileObjects), bounded
 * by {@link getBlobWithin} and retried a few times on a transient failure; a read that still gives
 * up is a LanemapError STORAGE (transient: the speed lane naks the tile and it is redelivered).
 */
export function boundedObjects(
  store: ObjectStore,
  what = "object",
  idleMs = OBJECT_READ_IDLE_MS,
): { getBlob(name: string): Promise<Uint8Array | null> } {
  return {
    getBlob: (name) =>
      guarded(`reading ${what} ${name}`, () => getBlobWithin(store, name, idleMs), READ_RETRIES),
  };
}
