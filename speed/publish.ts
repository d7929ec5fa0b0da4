/**
 * The producer side of the ingest contract, for lanemap's own tools (`lanemap ingest`, the feed of
 * `lanemap start`, tests and benchmarks). Producers in other languages follow the same contract,
 * described in speed/README.md: GeoTIFF bytes on `tiles.in.<cell>` with the Lanemap-* headers and a
 * Nats-Msg-Id, or an empty payload with Lanemap-Object when the tile is over max_payload.
 */
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  HEADERS,
  INGEST_STREAM,
  TILE_OBJECT_BUCKET,
  ingestSubject,
  isStorageFull,
  isTransientBrokerError,
  putObjectOnce,
  serverMaxPayload,
} from "../shared/adapters/nats/index.js";
import {
  LanemapError,
  TILE_ID_PATTERN,
  TileInvalidError,
  describeError,
  isValidCellKey,
  type Pam,
} from "../shared/index.js";

/** What a producer states about a tile (the ingest message headers). */
export interface PublishTileMeta {
  /** Unique per acquisition; see TILE_ID_PATTERN. */
  readonly tileId: string;
  /** Map cell; also the subject's last token. */
  readonly cell: string;
  /** Acquisition time, ISO 8601. */
  readonly acquired: string;
  /**
   * JetStream de-duplication id. Default `<tileId>-<first 16 hex of sha256(bytes)>`: a producer's
   * retry of the same tile within the duplicate window is dropped by the server.
   */
  readonly msgId?: string;
  /** The file's .aux.xml band values (sent as the Lanemap-Pam header), when it has a sidecar. */
  readonly pam?: Pam | undefined;
}

/** The Lanemap-Pam header's parser lives with the rest of the message derivation (shared/pipeline). */
export { pamFromHeader } from "../shared/index.js";

/** Options of `publishTile`. */
export interface PublishTileOptions {
  /**
   * Largest payload to send inline; default the connected server's max_payload. Above it the bytes
   * go to the object store bucket and the message only references them.
   */
  readonly maxPayload?: number;
  /** JetStream publish timeout in milliseconds (default the client's, 5 s). */
  readonly timeoutMs?: number;
  /**
   * How long to go on retrying a publish the stream could not take for the moment (no leader during
   * an election: 503 "jetstream is not enabled" / no responders, or a timeout), in milliseconds
   * (default {@link PUBLISH_RETRY_MS}; 0 = one attempt).
   */
  readonly retryForMs?: number;
}

/**
 * Default bound of publish retries: a JetStream leader election takes a few seconds (the Raft
 * election timeout is 4-9 s in nats-server 2.10), so 30 s rides out one with room to spare.
 */
export const PUBLISH_RETRY_MS = 30_000;

/** First and longest pause between publish attempts (doubling between them), in milliseconds. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 2_000;

/** Where a tile went. */
export interface PublishedTile {
  /** Stream sequence of the ingest message: the tile's ingest sequence. */
  readonly seq: number;
  /** True when the server dropped it as a duplicate of an earlier message with the same id. */
  readonly duplicate: boolean;
  readonly subject: string;
  readonly msgId: string;
  /** Object name when the bytes went to the object store, else null. */
  readonly object: string | null;
}

/** Headers and a little protocol overhead, kept free below max_payload. */
const HEADER_ROOM = 4 * 1024;

function connectionOf(js: JetStreamClient): NatsConnection | undefined {
  // The client implementation keeps its connection; the public type does not show it.
  const impl = js as Partial<{ getConnection(): NatsConnection }>;
  return typeof impl.getConnection === "function" ? impl.getConnection() : undefined;
}

/** Checks the headers a worker will rely on; throws TileInvalidError naming the bad one. */
export function checkTileMeta(meta: PublishTileMeta): void {
  if (!TILE_ID_PATTERN.test(meta.tileId))
    throw new TileInvalidError(`tile id "${meta.tileId}" must match ${TILE_ID_PATTERN.source}`);
  if (!isValidCellKey(meta.cell))
    throw new TileInvalidError(`cell "${meta.cell}" must match [A-Za-z0-9_-]{1,64}`);
  if (Number.isNaN(Date.parse(meta.acquired)))
    throw new TileInvalidError(`acquisition time "${meta.acquired}" is not an ISO 8601 time`);
  if (meta.msgId !== undefined && !/^[\x21-\x7e]{1,256}$/.test(meta.msgId))
    throw new TileInvalidError(
      `message id "${meta.msgId}" must be 1-256 printable characters without spaces`,
    );
}

/**
 * Publishes one tile to the ingest stream and resolves once JetStream stored it (or recognised it
 * as a duplicate). Tiles over the server's max_payload are uploaded to the `lanemap-tiles` object
 * store first (named `<tileId>.<hash>`, so a retry re-uses the upload; written by putObjectOnce,
 * which never sends a STREAM.PURGE) and referenced by the Lanemap-Object header of an empty message;
 * that bucket must exist (ensureTileObjects).
 * A publish the stream cannot take for the moment (a leader election) is retried with the same
 * Nats-Msg-Id, pausing 250 ms doubling to 2 s, for `options.retryForMs`.
 * @throws TileInvalidError for malformed metadata; LanemapError INGEST_PUBLISH when the retries ran
 *   out, or at once when the stream is out of storage (naming LANEMAP_STREAM_MAX_BYTES); other
 *   NATS errors as the client throws them.
 */
export async function publishTile(
  js: JetStreamClient,
  bytes: Uint8Array,
  meta: PublishTileMeta,
  options: PublishTileOptions = {},
): Promise<PublishedTile> {
  checkTileMeta(meta);
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const msgId = meta.msgId ?? `${meta.tileId}-${hash}`;
  const h = natsHeaders();
  h.set(HEADERS.tileId, meta.tileId);
  h.set(HEADERS.cell, meta.cell);
  h.set(HEADERS.acquired, meta.acquired);
  if (meta.pam && meta.pam.bands.length > 0) h.set(HEADERS.pam, JSON.stringify(meta.pam));
  const nc = connectionOf(js);
  const maxPayload = options.maxPayload ?? (nc ? serverMaxPayload(nc) : 1024 * 1024);
  let payload = bytes;
  let object: string | null = null;
  if (bytes.length + HEADER_ROOM > maxPayload) {
    object = `${meta.tileId}.${hash}`;
    if (!nc)
      throw new LanemapError(
        "INGEST_PUBLISH",
        `tile ${meta.tileId} is over max_payload and the JetStream client shows no connection to upload it with`,
      );
    // Written once, never through ObjectStore.putBlob: that purges the chunks it wrote when it fails
    // half way, and a racing writer of the same name purges the other's; a filtered STREAM.PURGE
    // lost a node's copy on nats-server 2.9.10 (issue 14). Same bytes already stored: nothing sent.
    await putObjectOnce(nc, TILE_OBJECT_BUCKET, object, bytes, { description: `tile ${meta.tileId}` });
    h.set(HEADERS.object, object);
    payload = new Uint8Array(0);
  }
  const subject = ingestSubject(meta.cell);
  const retryForMs = options.retryForMs ?? PUBLISH_RETRY_MS;
  const t0 = Date.now();
  // Every attempt carries the same Nats-Msg-Id: when an attempt that "failed" was stored after
  // all (its ack lost with the old leader), the stream's de-duplication keeps the tile once.
  for (let attempt = 1; ; attempt++) {
    try {
      const ack = await js.publish(subject, payload, {
        headers: h,
        msgID: msgId,
        expect: { streamName: INGEST_STREAM },
        ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
      });
      return { seq: ack.seq, duplicate: ack.duplicate, subject, msgId, object };
    } catch (err) {
      if (isStorageFull(err))
        throw new LanemapError(
          "INGEST_PUBLISH",
          `stream ${INGEST_STREAM} cannot store tile ${meta.tileId}: ${describeError(err)}; raise LANEMAP_STREAM_MAX_BYTES or the server's JetStream storage (max_file_store)`,
          { cause: err },
        );
      if (!isTransientBrokerError(err)) throw err;
      const pause = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1));
      if (Date.now() - t0 + pause > retryForMs)
        throw new LanemapError(
          "INGEST_PUBLISH",
          `stream ${INGEST_STREAM} did not take tile ${meta.tileId} in ${attempt} attempts over ${((Date.now() - t0) / 1000).toFixed(1)} s (${describeError(err)}); is a majority of the JetStream cluster up? (nats stream info ${INGEST_STREAM})`,
          { cause: err },
        );
      await sleep(pause);
    }
  }
}
