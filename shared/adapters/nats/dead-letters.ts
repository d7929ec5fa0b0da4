/**
 * Dead letters: ingest messages the speed lane cannot classify, kept in their own stream
 * (LANEMAP_DLQ on `tiles.dlq.<cell>.<key>`) with why. A dead letter carries the original message whole
 * (payload, or the object store reference of a large tile, and every original header) plus the
 * reason, error code, original stream sequence and subject and the number of deliveries, so an
 * operator can read it, fix what was wrong (a new model, a new tile id) and send it back through
 * the ingest stream (`retry`), where it gets a new sequence like any fresh tile.
 *
 * Dead-lettering is idempotent: one letter per bad input, the same tile (id) with the same bytes
 * (or the same object) failing with the same code, however often it fails. Each input has a subject
 * of its own, `tiles.dlq.<cell>.<key>` ({@link letterKey}); a letter is written only when that
 * subject holds none, and the write expects the subject empty (Nats-Expected-Last-Subject-Sequence
 * 0), so two workers failing copies of one tile at once leave one letter. Why: the original
 * sequence alone (the letter's Nats-Msg-Id `dlq-<original sequence>`, still set) is new for every
 * copy `lanemap ops replay` publishes, and an operator who replayed a range twice over 6 bad tiles
 * found 22 letters; a crash before the ack redelivered after the duplicate window made two as well.
 * Nothing is deleted or purged to keep it so: a repeat writes nothing.
 */
import { createHash } from "node:crypto";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import { headers as natsHeaders, nuid, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { LanemapError, isErrorCode, type ErrorCode } from "../../errors.js";
import type { Logger } from "pino";
import { isStreamNotFound } from "./jetstream-errors.js";
import { serverMaxPayload } from "./connection.js";
import { putObjectOnce } from "./object-reads.js";
import { retryTransient } from "./transient.js";
import { DLQ_STREAM, DLQ_SUBJECT_PREFIX, HEADERS, INGEST_SUBJECT_PREFIX, dlqSubject } from "./names.js";

/** What to dead-letter: the original message and why. */
export interface DeadLetterInput {
  /** Stream sequence of the ingest message. */
  readonly originalSeq: number;
  /** Subject it was published on (`tiles.in.<cell>`). */
  readonly subject: string;
  readonly headers: MsgHdrs | undefined;
  /** The payload as received (empty for an object store reference). */
  readonly data: Uint8Array;
  /** Error code (TILE_DECODE, TILE_INVALID, TILE_CONFLICT, MAX_DELIVER, ...). */
  readonly code: ErrorCode;
  readonly reason: string;
  /** Deliveries so far. */
  readonly deliveries: number;
}

/** One dead letter as listed. */
export interface DeadLetter {
  /** Sequence in the dead-letter stream: what `retry` and `remove` take. */
  readonly seq: number;
  readonly originalSeq: number;
  readonly originalSubject: string;
  readonly cell: string;
  readonly tileId: string | null;
  readonly acquired: string | null;
  /** Error code; INTERNAL when the header is missing or names a code this version lacks. */
  readonly code: ErrorCode;
  readonly reason: string;
  readonly deliveries: number;
  /** When it was dead-lettered (ISO 8601). */
  readonly at: string;
  /** Object store name when the tile bytes are in the tile bucket, else null. */
  readonly object: string | null;
  /** Payload bytes of the dead letter (0 for an object reference). */
  readonly bytes: number;
}

/** The dead letter does not exist (already retried or removed). */
export class DeadLetterNotFoundError extends LanemapError {
  constructor(seq: number, options?: { cause?: unknown }) {
    super(
      "DLQ_NOT_FOUND",
      `dead letter ${seq} is not in ${DLQ_STREAM} (already retried or removed?)`,
      options,
    );
  }
}

/** A dead letter's code header as a code of the table (the pair code + reason is encodeError's). */
function codeHeader(value: string | null): ErrorCode {
  return isErrorCode(value) ? value : "INTERNAL";
}

/** How long one request of `list()` waits for its answer before the listing is retried (ms). */
const LIST_REQUEST_TIMEOUT_MS = 2_000;

/** STREAM.MSG.GET requests of one `list()` in flight at once: enough to overlap round trips, not flood a leader. */
const LIST_GETS_IN_FLIGHT = 16;

/** Room left for headers and protocol overhead below max_payload. */
const HEADER_ROOM = 8 * 1024;

/** Header values are one line of printable text, bounded. */
function headerValue(s: string, max = 1024): string {
  const flat = s.replace(/[\r\n\t]+/g, " ").replace(/[^\x20-\x7e]/g, "?");
  return flat.length > max ? `${flat.slice(0, max - 1)}…`.replace(/[^\x20-\x7e]/g, ".") : flat;
}

function cellOf(subject: string): string {
  const prefix = `${INGEST_SUBJECT_PREFIX}.`;
  return subject.startsWith(prefix) ? subject.slice(prefix.length) : subject.replace(/^.*\./, "");
}

function lastHeader(h: MsgHdrs | undefined, key: string): string | null {
  const v = h?.last(key);
  return v ? v : null;
}

/** Our headers on a dead letter; never copied back onto a retried ingest message. */
const DLQ_ONLY = new Set<string>([
  HEADERS.reason,
  HEADERS.code,
  HEADERS.originalSeq,
  HEADERS.originalSubject,
  HEADERS.originalMsgId,
  HEADERS.deliveries,
  HEADERS.deadAt,
]);

/**
 * The headers worth carrying between the streams: the producer's own, never JetStream's (`Nats-*`:
 * message id, expectations, sizes), which would mean something else on the other stream.
 */
function copyHeaders(from: MsgHdrs | undefined, skip: ReadonlySet<string>): MsgHdrs {
  const h = natsHeaders();
  for (const [k, values] of from ?? []) {
    if (skip.has(k) || k.toLowerCase().startsWith("nats-")) continue;
    for (const v of values) h.append(k, v);
  }
  return h;
}

/**
 * What makes two failures one letter: the tile id, the bytes (an object reference's name, which
 * `publishTile` derives from the bytes) and the code; 32 hex of their SHA-256, a subject token.
 * Not the reason's text (it names delivery counts and times) nor the sequence (new for a replay).
 */
export function letterKey(input: Pick<DeadLetterInput, "headers" | "data" | "code">): string {
  const hash = createHash("sha256");
  const object = lastHeader(input.headers, HEADERS.object);
  hash.update(`${lastHeader(input.headers, HEADERS.tileId) ?? ""}\0${input.code}\0`);
  if (object) hash.update(`object\0${object}`);
  else hash.update(input.data);
  return hash.digest("hex").slice(0, 32);
}

/** How often `add` looks again when another worker wrote the input's letter between its check and its write. */
const ADD_RACES = 3;

/** Reads and writes the dead-letter stream. */
export class DeadLetterQueue {
  private readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;
  private readonly tiles: ObjectStore | undefined;

  private constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, tiles?: ObjectStore) {
    this.nc = nc;
    this.js = js;
    this.jsm = jsm;
    this.tiles = tiles;
  }

  /**
   * Opens the queue (the stream must exist: `ensureStreams`). `tiles` is the tile object bucket,
   * where a payload too large to travel with its dead-letter headers is parked.
   */
  static async open(nc: NatsConnection, tiles?: ObjectStore): Promise<DeadLetterQueue> {
    // No $JS.API.INFO check on open: right after a node is lost the meta leader is being elected,
    // and that one unretried request failed `lanemap dlq list` with a bare "timeout" 3 times in 7
    // kills (an operator's check); every request below is bounded, retried and named.
    return new DeadLetterQueue(nc, jetstream(nc), await jetstreamManager(nc, { checkAPI: false }), tiles);
  }

  /**
   * Dead-letters one message, unless its input already has a letter ({@link letterKey}); resolves
   * with the letter's sequence once it is stored, `duplicate` when the letter was there already
   * (written before by this or another worker, for this message or another copy of the tile). A
   * message `dlq retry` sent back (HEADERS.retryOf) gets a letter of its own when the one it came
   * from is still there: that retry removes it.
   * @throws what publishing and STREAM.MSG.GET throw; LanemapError DLQ for a payload too large to
   *   send inline when no tile bucket was given.
   */
  async add(input: DeadLetterInput): Promise<{ seq: number; duplicate: boolean }> {
    const subject = dlqSubject(cellOf(input.subject), letterKey(input));
    for (let race = 0; ; race++) {
      const existing = await this.jsm.streams.getMessage(DLQ_STREAM, { last_by_subj: subject });
      if (existing && lastHeader(input.headers, HEADERS.retryOf) !== String(existing.seq))
        return { seq: existing.seq, duplicate: true };
      try {
        return await this.write(input, subject, existing?.seq ?? 0);
      } catch (err) {
        // Another worker wrote this input's letter since the check: read it and say so.
        if (
          race < ADD_RACES &&
          err instanceof JetStreamApiError &&
          err.code === JetStreamApiCodes.StreamWrongLastSequence
        )
          continue;
        throw err;
      }
    }
  }

  /** Writes the letter on `subject`, expecting `lastSeq` there (0: none). */
  private async write(
    input: DeadLetterInput,
    subject: string,
    lastSeq: number,
  ): Promise<{ seq: number; duplicate: boolean }> {
    const h = copyHeaders(input.headers, DLQ_ONLY);
    const originalMsgId = lastHeader(input.headers, HEADERS.msgId);
    if (originalMsgId) h.set(HEADERS.originalMsgId, headerValue(originalMsgId));
    h.set(HEADERS.reason, headerValue(input.reason));
    h.set(HEADERS.code, headerValue(input.code, 64));
    h.set(HEADERS.originalSeq, String(input.originalSeq));
    h.set(HEADERS.originalSubject, headerValue(input.subject));
    h.set(HEADERS.deliveries, String(input.deliveries));
    h.set(HEADERS.deadAt, new Date().toISOString());
    let data = input.data;
    if (data.length > 0 && data.length + HEADER_ROOM > serverMaxPayload(this.nc)) {
      // The original fitted with its own headers; ours may not: park the bytes in the tile bucket.
      if (!this.tiles)
        throw new LanemapError(
          "DLQ",
          "dead letter is too large to send inline and no tile object bucket was given",
        );
      const name = `dlq-${input.originalSeq}`;
      // Written once: the same tile dead-lettered again (a crash before the ack) finds its bytes
      // parked, and a put over the name would purge the old chunks in place (a filtered
      // STREAM.PURGE, which lost a node's copy of a replicated stream on nats-server 2.9.10: issue 14).
      // putObjectOnce, not putBlob: nats.js purges a failed put's chunks, the same filtered purge.
      await putObjectOnce(this.nc, (await this.tiles.status()).bucket, name, data);
      h.set(HEADERS.object, name);
      data = new Uint8Array(0);
    }
    const ack = await this.js.publish(subject, data, {
      headers: h,
      msgID: `dlq-${input.originalSeq}`,
      expect: { streamName: DLQ_STREAM, lastSubjectSequence: lastSeq },
    });
    return { seq: ack.seq, duplicate: ack.duplicate };
  }

  /** Number of dead letters. */
  async count(): Promise<number> {
    return (await this.jsm.streams.info(DLQ_STREAM)).state.messages;
  }

  /**
   * Every dead letter, oldest first; none when the stream does not exist (nothing was
   * dead-lettered here yet: a read creates nothing). Read without a consumer: the stream's info
   * gives its first and last sequence, and the letters are the stream's messages between them, each
   * read with STREAM.MSG.GET `{ seq, next_by_subj }` (which skips removed ones), {@link LIST_GETS_IN_FLIGHT}
   * requests in flight, all answered by the stream's leader.
   *
   * Why not a consumer: the headers-only ordered consumer this used is placed by nats-server 2.9
   * anywhere, an offline peer included (nats-server PR #7165); with one node of three down a listing
   * then waited out its fetch and was retried, and `lanemap dlq list` took 10-30 s, at random
   * (issue 14). The cost: a get carries the payload too (an inline one is under max_payload, a
   * larger tile is parked in the tile bucket), where the consumer sent headers only.
   *
   * Each request waits at most 2 s; a listing that met a transient broker error (no leader yet,
   * a request lost with a dying node) is retried whole for up to 30 s, a warning to `logger` naming it.
   * @throws LanemapError NATS_CONNECT "listing the dead letters: <broker message>" when it still fails.
   */
  async list(options: { logger?: Logger } = {}): Promise<DeadLetter[]> {
    return retryTransient("listing the dead letters", () => this.listOnce(), options);
  }

  private async listOnce(): Promise<DeadLetter[]> {
    const jsm = await jetstreamManager(this.nc, { checkAPI: false, timeout: LIST_REQUEST_TIMEOUT_MS });
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(DLQ_STREAM);
    } catch (err) {
      if (isStreamNotFound(err)) return [];
      throw err;
    }
    if (info.state.messages === 0) return [];
    const last = info.state.last_seq;
    const subject = `${DLQ_SUBJECT_PREFIX}.>`;
    const seen = new Set<number>();
    const out: DeadLetter[] = [];
    // Each request of a window asks for the first letter at or after its sequence: together they
    // cover every letter from `next` to the highest one answered, however many were removed between.
    for (let next = info.state.first_seq; next <= last;) {
      const window = Array.from({ length: Math.min(LIST_GETS_IN_FLIGHT, last - next + 1) }, (_, i) => {
        // nats.js types STREAM.MSG.GET without next_by_subj, which nats-server 2.9 takes.
        const request = { seq: next + i, next_by_subj: subject };
        return jsm.streams.getMessage(DLQ_STREAM, request);
      });
      const answers = await Promise.all(window);
      let highest = 0;
      for (const m of answers) {
        if (!m || m.seq > last) continue; // a letter added since the listing began is the next listing's
        highest = Math.max(highest, m.seq);
        if (seen.has(m.seq)) continue;
        seen.add(m.seq);
        out.push(this.toLetter(m.seq, m.subject, m.header, m.data.length, m.time));
      }
      if (highest === 0) break; // none left at or after `next` (up to the last as of the start)
      next = highest + 1;
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  private toLetter(
    seq: number,
    subject: string,
    h: MsgHdrs | undefined,
    bytes: number,
    time: Date,
  ): DeadLetter {
    const originalSubject = lastHeader(h, HEADERS.originalSubject) ?? subject;
    return {
      seq,
      originalSeq: Number(lastHeader(h, HEADERS.originalSeq) ?? 0),
      originalSubject,
      cell: lastHeader(h, HEADERS.cell) ?? cellOf(originalSubject),
      tileId: lastHeader(h, HEADERS.tileId),
      acquired: lastHeader(h, HEADERS.acquired),
      code: codeHeader(lastHeader(h, HEADERS.code)),
      reason: lastHeader(h, HEADERS.reason) ?? "",
      deliveries: Number(lastHeader(h, HEADERS.deliveries) ?? 0),
      at: lastHeader(h, HEADERS.deadAt) ?? time.toISOString(),
      object: lastHeader(h, HEADERS.object),
      bytes,
    };
  }

  /**
   * One dead letter with its payload.
   * @throws DeadLetterNotFoundError
   */
  async get(seq: number): Promise<{ letter: DeadLetter; data: Uint8Array; headers: MsgHdrs | undefined }> {
    let m;
    try {
      m = await this.jsm.streams.getMessage(DLQ_STREAM, { seq });
    } catch (cause) {
      throw new DeadLetterNotFoundError(seq, { cause });
    }
    if (!m) throw new DeadLetterNotFoundError(seq);
    return {
      letter: this.toLetter(m.seq, m.subject, m.header, m.data.length, m.time),
      data: m.data,
      headers: m.header,
    };
  }

  /**
   * Sends a dead letter back through the ingest stream under a new Nats-Msg-Id (its original id may
   * still be in the duplicate window) and then removes it from the dead-letter stream. Resolves with
   * the new ingest sequence.
   * @throws DeadLetterNotFoundError
   */
  async retry(seq: number): Promise<{ ingestSeq: number; letter: DeadLetter }> {
    const { letter, data, headers } = await this.get(seq);
    const h = copyHeaders(headers, DLQ_ONLY);
    h.set(HEADERS.retryOf, String(seq));
    const ack = await this.js.publish(letter.originalSubject, data, {
      headers: h,
      msgID: `retry-${letter.originalSeq}-${nuid.next()}`,
    });
    await this.remove(seq);
    return { ingestSeq: ack.seq, letter };
  }

  /** Deletes a dead letter (its parked payload, if any, expires with the tile bucket's TTL). */
  async remove(seq: number): Promise<void> {
    try {
      await this.jsm.streams.deleteMessage(DLQ_STREAM, seq, false);
    } catch (cause) {
      throw new DeadLetterNotFoundError(seq, { cause });
    }
  }
}
