/**
 * Object store reads that need no consumer: listing a bucket and reading an object with the
 * stream's own API (STREAM.INFO with a subjects filter, STREAM.MSG.GET by last subject or by
 * `{ seq, next_by_subj }`), which the stream's leader answers. Every object read of lanemap goes
 * through {@link readObjectBytes} (or {@link boundedObjects}, the same as a TileObjects), or
 * {@link readObjectToFile} for one written to a file as it comes.
 *
 * Why: nats.js lists an object store (`ObjectStore.list`) and reads an object (`get`, `getBlob`)
 * through an ephemeral R1 consumer, and nats-server before 2.12 (Debian ships 2.9) may place that
 * consumer on an offline peer (nats-server PR #7165). With one node of the cluster down, about a
 * third of those listings then time out, and with the adapters' retries `lanemap ops status` took
 * 32–41 s and `/v1/views` 10–30 s; object reads stalled until given up, and `lanemap worker` failed
 * its start reading the active model's artifact (issue 14). The stream API has no such placement:
 * it answers in milliseconds whenever the stream has a leader.
 *
 * The layout read here is the object store's (ADR-20 of nats-architecture-and-design): the
 * object's info is the last message on `$O.<bucket>.M.<name as base64url>`, its bytes are the
 * messages on `$O.<bucket>.C.<nuid>`, and the info's `digest` is `SHA-256=<base64url>` (padded by
 * nats.js, unpadded by some other clients: compared without the padding).
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { jetstream, jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { headers, nuid, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { LanemapError } from "../../errors.js";
import { isStreamNotFound } from "./jetstream-errors.js";
import { serverMaxPayload } from "./connection.js";
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
  /** The stream sequence of the info's message (the object's revision). */
  readonly revision?: number;
  /** The object is a link to another (nats.js `link`); lanemap writes none. */
  readonly link?: true;
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
      const info = m ? infoOf(m.json(), m.seq) : null;
      if (info) out.push(info);
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
 * Every value of KV bucket `bucket` (delete and purge markers and empty values left out), in
 * batches of `inFlight`, read without a consumer: the keys by {@link listKvKeys}, each key's value
 * the last message on its subject (STREAM.MSG.GET `last_by_subj`), `inFlight` requests at a time.
 * Each step (the key listing, each batch) has its own `timeoutMs` and is retried through `guarded`
 * (READ_RETRIES, said to `logger`). Only the keys are held, never more than one batch of values.
 * Shared by the catalogue listing (nats-archive.ts) and the live view's (live-view.ts).
 * @throws LanemapError STORAGE (`what`) when a step still fails after the retries.
 */
export async function* kvValues(
  nc: NatsConnection,
  bucket: string,
  options: { what: string; timeoutMs: number; inFlight: number; logger?: Logger },
): AsyncGenerator<StoredMsg> {
  const { what, timeoutMs, inFlight, logger } = options;
  const stream = kvStreamName(bucket);
  const jsm = () => jetstreamManager(nc, { checkAPI: false, timeout: timeoutMs });
  const keys = await guarded(what, async () => listKvKeys(await jsm(), bucket), READ_RETRIES, logger);
  for (let i = 0; i < keys.length; i += inFlight) {
    const batch = await guarded(
      what,
      async () => {
        const m = await jsm();
        return Promise.all(
          keys
            .slice(i, i + inFlight)
            .map((k) => m.streams.getMessage(stream, { last_by_subj: `$KV.${bucket}.${k}` })),
        );
      },
      READ_RETRIES,
      logger,
    );
    for (const m of batch) {
      const op = m?.header?.get("KV-Operation");
      if (m && op !== "DEL" && op !== "PURGE" && m.data.length > 0) yield m;
    }
  }
}

/** How long one request of an object read may wait for its answer (ms); see {@link readObjectBytes}. */
export const OBJECT_READ_IDLE_MS = 10_000;

/**
 * STREAM.MSG.GET requests of one object read in flight at once. One request per chunk (128 KiB)
 * would wait a round trip each; a few in flight overlap them without flooding a leader. Measured on
 * one server (2 cores, load 9-10; median of 7): 30 MB in 1.77 s against 2.67 s for nats.js's
 * getBlob, 4 MB in 0.22 s against 0.32 s; 2 or 16 in flight did no better there.
 */
const CHUNKS_IN_FLIGHT = 8;

/** Times an object that was replaced while it was being read is read again (its new info). */
const REPLACED_RETRIES = 3;

/**
 * An object whose stored chunks do not add up to its info (a chunk missing, a size or a SHA-256
 * digest that does not match) while the info is still the same: reading it again would find the
 * same chunks, so it is not retried (isTransientBrokerError is false for it). STORAGE.
 */
export class CorruptObjectError extends LanemapError {
  constructor(bucket: string, name: string, reason: string) {
    super("STORAGE", `object ${name} of bucket ${bucket} is corrupt: ${reason}`);
  }
}

/** The subject of an object's info: nats.js encodes the name as padded base64url (of its bytes as Latin-1). */
function metaSubject(bucket: string, name: string): string {
  const b64 = Buffer.from(name, "latin1").toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
  return `$O.${bucket}.M.${b64}`;
}

/** The fields lanemap reads from an object's info message (`seq`: that message's sequence). */
function infoOf(
  v: Partial<Omit<StoredObjectInfo, "revision" | "link">> & { options?: { link?: unknown } },
  seq: number,
): StoredObjectInfo | null {
  if (typeof v.name !== "string") return null;
  return {
    name: v.name,
    size: v.size ?? 0,
    chunks: v.chunks ?? 0,
    nuid: v.nuid ?? "",
    digest: v.digest ?? "",
    deleted: v.deleted === true,
    revision: seq,
    ...(v.options?.link ? { link: true } : {}),
  };
}

/**
 * An object's info, read by its last meta message (deleted ones included, flagged); null when there
 * is none or no such bucket.
 * @throws what the JetStream API throws (a timeout while the stream has no leader).
 */
export async function readObjectInfo(
  jsm: JetStreamManager,
  bucket: string,
  name: string,
): Promise<StoredObjectInfo | null> {
  try {
    const m = await jsm.streams.getMessage(objectStoreStreamName(bucket), {
      last_by_subj: metaSubject(bucket, name),
    });
    return m ? infoOf(m.json(), m.seq) : null;
  } catch (err) {
    if (isStreamNotFound(err)) return null;
    throw err;
  }
}

/**
 * Memoised STREAM.MSG.GET `{ seq, next_by_subj: subject }` requests of `stream` (no consumer): `ask`
 * sends one per sequence at most, so requests can be sent before their answers are needed; `asked`
 * holds them (callers drop those asked too early). A request never awaited is not an unhandled
 * rejection.
 */
export function nextBySubject(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
): {
  readonly asked: Map<number, Promise<StoredMsg | null>>;
  ask(seq: number): Promise<StoredMsg | null>;
} {
  const asked = new Map<number, Promise<StoredMsg | null>>();
  const ask = (seq: number): Promise<StoredMsg | null> => {
    let p = asked.get(seq);
    if (!p) {
      // nats.js types STREAM.MSG.GET without next_by_subj, which the server takes (2.9's
      // JSApiMsgGetRequest): passed as a variable, not a literal the type would refuse.
      const request = { seq, next_by_subj: subject };
      p = jsm.streams.getMessage(stream, request);
      p.catch(() => undefined); // one asked too early is never awaited
      asked.set(seq, p);
    }
    return p;
  };
  return { asked, ask };
}

/**
 * Up to `want` chunks on `subject`, in order, from stream sequence `from` on: each the next
 * message on the subject after the previous one (STREAM.MSG.GET `{ seq, next_by_subj }`). Fewer
 * when the stream holds fewer from `from` on.
 *
 * Pipelined: an object store writes an object's chunks one after the other, so they are usually
 * consecutive messages; the requests for the next CHUNKS_IN_FLIGHT sequences are sent before their
 * answers are needed. When another object's messages sit between two chunks, the answers asked
 * for too early are dropped and the next one is asked for where the chunk really ended.
 */
async function chunksFrom(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  want: number,
  from: number,
  take: (part: Uint8Array) => Promise<void>,
): Promise<number> {
  const { asked, ask } = nextBySubject(jsm, stream, subject);
  let got = 0;
  let next = from;
  // From a guessed position the first chunks are likely next to it; from 0 nothing is known.
  const ahead = from > 0 ? CHUNKS_IN_FLIGHT : 1;
  for (let i = 0; i < Math.min(ahead, want); i++) ask(from + i);
  while (got < want) {
    const m = await ask(next);
    if (!m) break;
    next = m.seq + 1;
    for (const seq of asked.keys()) if (seq < next) asked.delete(seq);
    // The next requests go out before this chunk is taken (written to a file, say).
    for (let i = 0; i < Math.min(CHUNKS_IN_FLIGHT, want - got - 1); i++) ask(next + i);
    await take(m.data); // a getter that decodes base64 on each use: once
    got++;
  }
  return got;
}

/**
 * Where an object read puts the chunks, in order: `add` takes the next one, `reset` drops all taken
 * so far (the read starts again from the stream's first message, or under a replaced object's info).
 */
interface ChunkSink {
  add(part: Uint8Array): Promise<void>;
  reset(): Promise<void>;
}

/** `parts` one after the other, as a plain Uint8Array of its own (not a Buffer, whose `slice` shares). */
function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Puts the object's chunks into `sink`; null when they match its info, else why not. */
async function readChunks(
  jsm: JetStreamManager,
  bucket: string,
  info: StoredObjectInfo,
  sink: ChunkSink,
): Promise<string | null> {
  const stream = objectStoreStreamName(bucket);
  const subject = `$O.${bucket}.C.${info.nuid}`;
  let hash = createHash("sha256");
  let size = 0;
  const take = async (part: Uint8Array): Promise<void> => {
    hash.update(part);
    size += part.length;
    await sink.add(part);
  };
  let count = 0;
  if (info.chunks > 0) {
    // nats.js writes the info right after the chunks: start where they would be, else from the first message.
    const guess = info.revision !== undefined ? info.revision - info.chunks : 0;
    if (guess > 0) count = await chunksFrom(jsm, stream, subject, info.chunks, guess, take);
    if (count < info.chunks) {
      if (guess > 0) {
        hash = createHash("sha256");
        size = 0;
        await sink.reset();
      }
      count = await chunksFrom(jsm, stream, subject, info.chunks, 0, take);
    }
  }
  if (count !== info.chunks) return `${count} of its ${info.chunks} chunks are stored`;
  if (size !== info.size) return `its chunks hold ${size} bytes, its info says ${info.size}`;
  const digest = `SHA-256=${hash.digest("base64url")}`;
  if (digest !== info.digest.replace(/=+$/, ""))
    return `its bytes' digest is ${digest}, its info says ${info.digest}`;
  return null;
}

/** Options of {@link readObjectBytes}. */
export interface ReadObjectOptions {
  /** The bound of each request of the read, in ms (default {@link OBJECT_READ_IDLE_MS}). */
  readonly idleMs?: number;
  /** The object's info as listed by {@link listObjectInfos}: saves a request; read again if stale. */
  readonly info?: StoredObjectInfo;
}

/**
 * The bytes of the object `name` of the object store `bucket`, or null when it is absent or
 * deleted (or there is no such bucket) — read without a consumer: its info is the last message on
 * its meta subject, its chunks the messages on `$O.<bucket>.C.<nuid>` read in order with
 * STREAM.MSG.GET `{ seq, next_by_subj }` (a few in flight), all answered by the stream's leader;
 * the chunk count, the size and the SHA-256 digest are checked. An object replaced while it was
 * read (its old chunks purged) is read again under its new info.
 *
 * Why: nats.js's `ObjectStore.get` reads the chunks through an ephemeral ordered consumer, which
 * nats-server before 2.12 may place on an offline peer (nats-server PR #7165): with one node of 3
 * down, about one read in three stalled until it was given up (`lanemap worker` failed its start
 * on "reading model <version>'s artifact: timeout", issue 14). The stream API has no placement.
 *
 * Each request waits at most `idleMs` (a lost request or a stream without a leader), so a read
 * never hangs; it then rejects with what nats.js throws (a TimeoutError, "no responders"), which
 * isTransientBrokerError takes as transient and the adapters retry.
 * @throws CorruptObjectError (STORAGE, not retried) when the chunks do not match the info, or the
 *   object is a link (lanemap never writes one); what the JetStream API throws.
 */
export async function readObjectBytes(
  nc: NatsConnection,
  bucket: string,
  name: string,
  options: ReadObjectOptions = {},
): Promise<Uint8Array | null> {
  let parts: Uint8Array[] = [];
  const found = await readObjectInto(nc, bucket, name, options, {
    add: async (part) => {
      parts.push(part);
    },
    reset: async () => {
      parts = [];
    },
  });
  if (!found) return null;
  return parts.length === 1 ? parts[0]! : concat(parts);
}

/**
 * Writes the object `name` of `bucket` to the file `path` (created or truncated) as it is read,
 * chunk by chunk — the same read and checks as {@link readObjectBytes}, in the memory of a few
 * chunks whatever the object's size (a published view's files can be hundreds of MB). False, and
 * the file left empty, when the object is absent or deleted.
 * @throws what {@link readObjectBytes} throws; what writing the file throws. On a throw the file
 *   holds a part of the object: the caller removes it or reads it again.
 */
export async function readObjectToFile(
  nc: NatsConnection,
  bucket: string,
  name: string,
  path: string,
  options: ReadObjectOptions = {},
): Promise<boolean> {
  const file = await open(path, "w");
  try {
    let position = 0;
    return await readObjectInto(nc, bucket, name, options, {
      add: async (part) => {
        await file.write(part, 0, part.length, position);
        position += part.length;
      },
      reset: async () => {
        await file.truncate(0);
        position = 0;
      },
    });
  } finally {
    await file.close();
  }
}

/** The read of {@link readObjectBytes} into `sink`; false when the object is absent or deleted. */
async function readObjectInto(
  nc: NatsConnection,
  bucket: string,
  name: string,
  options: ReadObjectOptions,
  sink: ChunkSink,
): Promise<boolean> {
  const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: options.idleMs ?? OBJECT_READ_IDLE_MS });
  let info = options.info?.name === name ? options.info : await readObjectInfo(jsm, bucket, name);
  for (let replaced = 0; ; replaced++) {
    if (!info || info.deleted) return false;
    if (info.link)
      throw new CorruptObjectError(bucket, name, "it is a link, which lanemap neither writes nor follows");
    const problem = await readChunks(jsm, bucket, info, sink);
    if (problem === null) return true;
    // Replaced (or deleted) meanwhile: its old chunks were purged; the info says so.
    const now = await readObjectInfo(jsm, bucket, name);
    if (now?.nuid === info.nuid && !now.deleted) throw new CorruptObjectError(bucket, name, problem);
    if (replaced === REPLACED_RETRIES)
      throw new CorruptObjectError(bucket, name, `replaced ${replaced + 1} times while it was read`);
    info = now;
    await sink.reset();
  }
}

/**
 * The object store `bucket` as the one `getBlob` the pipeline reads tiles with (shared/pipeline
 * TileObjects): {@link readObjectBytes}, retried a few times on a transient failure; a read that
 * still fails is a LanemapError STORAGE (transient: the speed lane naks the tile and it is
 * redelivered).
 */
export function boundedObjects(
  nc: NatsConnection,
  bucket: string,
  what = "object",
  idleMs = OBJECT_READ_IDLE_MS,
): { getBlob(name: string): Promise<Uint8Array | null> } {
  return {
    getBlob: (name) =>
      guarded(`reading ${what} ${name}`, () => readObjectBytes(nc, bucket, name, { idleMs }), READ_RETRIES),
  };
}

/**
 * Writes `bytes` as the object `name` of the object store `bucket` (which exists), unless the
 * object holds them already (same size and SHA-256 digest); true when it wrote. The layout is the
 * one nats.js writes and reads (ADR-20): the chunks on `$O.<bucket>.C.<new nuid>`, then the info on
 * the name's meta subject with a subject rollup.
 *
 * Why not `ObjectStore.putBlob`: besides the purge of an existing object's chunks (which the check
 * above avoids), nats.js purges the chunks a put wrote when it fails half way, and a second writer
 * of the same new name that started its put after the first one's info landed purges the first
 * one's chunks: filtered STREAM.PURGEs, which lost a node's copy of a replicated stream on
 * nats-server 2.9.10 (issue 14, nats-removals-node-kill.test.ts). This sends none: a failed or
 * superseded write leaves its chunks, which no info names, to the bucket's age limit or its drop;
 * a reader (readObjectBytes) follows whichever info is last.
 * @throws what publishing throws (a timeout while the stream has no leader).
 */
export async function putObjectOnce(
  nc: NatsConnection,
  bucket: string,
  name: string,
  bytes: Uint8Array,
  options: { description?: string } = {},
): Promise<boolean> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const sha = createHash("sha256").update(bytes).digest("base64url");
  const info = await readObjectInfo(jsm, bucket, name);
  if (
    info &&
    !info.deleted &&
    info.size === bytes.length &&
    info.digest.replace(/=+$/, "") === `SHA-256=${sha}`
  )
    return false;
  const js = jetstream(nc, { checkAPI: false });
  const chunk = Math.min(128 * 1024, serverMaxPayload(nc));
  const id = nuid.next();
  let chunks = 0;
  for (let at = 0; at < bytes.length; at += chunk, chunks++)
    await js.publish(`$O.${bucket}.C.${id}`, bytes.subarray(at, at + chunk));
  const h = headers();
  h.set("Nats-Rollup", "sub");
  const meta = {
    name,
    description: options.description ?? "",
    options: { max_chunk_size: chunk },
    bucket,
    nuid: id,
    size: bytes.length,
    chunks,
    mtime: new Date().toISOString(),
    // Padded, as nats.js writes it.
    digest: `SHA-256=${sha}${"=".repeat((4 - (sha.length % 4)) % 4)}`,
    deleted: false,
  };
  await js.publish(metaSubject(bucket, name), JSON.stringify(meta), { headers: h });
  return true;
}
