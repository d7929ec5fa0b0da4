/**
 * From an ingest message (`tiles.in.<cell>` on LANEMAP_TILES, speed/README.md) to what registering
 * its tile needs: the tile metadata its headers state, and its bytes (inline, or the object the
 * Lanemap-Object header names). The speed lane applies it to every delivery and the batch lane's
 * stream replay (`lanemap batch run --from-stream`) to every stored message, so a replayed tile gets
 * exactly the catalogue entry the speed lane registered for it. Pure but for the object read; no
 * NATS client types: a header reader and a blob getter are enough.
 */
import { LanemapError, TileInvalidError } from "../errors.js";
import { pamSchema, type Pam } from "../geotiff/index.js";
import { HEADERS, INGEST_SUBJECT_PREFIX } from "../adapters/nats/names.js";
import type { DescribeOptions, TileMeta } from "./describe.js";

/** Read access to message headers (nats.js `MsgHdrs.get`: "" when the header is absent). */
export interface IngestHeaders {
  get(key: string): string;
}

/** An ingest message as the derivation needs it (a live delivery or the stream's stored copy). */
export interface IngestMessage {
  readonly subject: string;
  readonly headers: IngestHeaders | undefined;
  /** The payload: the GeoTIFF, or empty when Lanemap-Object names the bytes. */
  readonly data: Uint8Array;
  /** Its sequence in the ingest stream: the tile's ingest sequence. */
  readonly streamSeq: number;
}

/** Where the bytes of a Lanemap-Object message are (the `lanemap-tiles` object store). */
export interface TileObjects {
  getBlob(name: string): Promise<Uint8Array | null>;
}

/** The map cell of an ingest subject (`tiles.in.<cell>`), or null. */
export function cellOfSubject(subject: string): string | null {
  const prefix = `${INGEST_SUBJECT_PREFIX}.`;
  return subject.startsWith(prefix) ? subject.slice(prefix.length) : null;
}

/**
 * The Lanemap-Pam header's band values, or undefined without the header.
 * @throws TileInvalidError when the header is not pamSchema JSON (a permanent fault of the message).
 */
export function pamFromHeader(value: string | undefined): Pam | undefined {
  if (value === undefined || value === "") return undefined;
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (cause) {
    throw new TileInvalidError(`header ${HEADERS.pam} is not JSON`, { cause });
  }
  const r = pamSchema.safeParse(json);
  if (!r.success)
    throw new TileInvalidError(
      `header ${HEADERS.pam} is not a PAM band record: ${r.error.issues[0]?.message ?? ""}`,
    );
  return r.data;
}

/**
 * The ingest sequence a message stands for: its own, or, for a copy `lanemap ops replay`
 * republished (header Lanemap-Replay-Of), the sequence of the message it copies — what a
 * removal's tombstone is compared with (shared/storage `removedBy`).
 */
export function originalIngestSeq(m: Pick<IngestMessage, "headers" | "streamSeq">): number {
  const of = Number(m.headers?.get(HEADERS.replayOf) || Number.NaN);
  return Number.isInteger(of) && of >= 1 && of < m.streamSeq ? of : m.streamSeq;
}

/**
 * The tile metadata an ingest message states: tile id, cell (header, else the subject's last
 * token), acquisition time and PAM band values from the headers, the stream sequence as ingest
 * sequence, source "stream".
 * @throws TileInvalidError when the Lanemap-Cell header contradicts the subject, or the PAM header
 *   is malformed.
 */
export function ingestTileMeta(m: Omit<IngestMessage, "data">): TileMeta {
  const h = m.headers;
  const subjectCell = cellOfSubject(m.subject);
  const headerCell = h?.get(HEADERS.cell) || undefined;
  if (headerCell && subjectCell && headerCell !== subjectCell)
    throw new TileInvalidError(
      `header ${HEADERS.cell}=${headerCell} contradicts the subject's cell ${subjectCell}`,
    );
  return {
    tileId: h?.get(HEADERS.tileId) || undefined,
    cell: headerCell ?? subjectCell ?? undefined,
    acquired: h?.get(HEADERS.acquired) || undefined,
    ingestSeq: m.streamSeq,
    source: "stream",
    pam: pamFromHeader(h?.get(HEADERS.pam) || undefined),
  };
}

/**
 * The describe options of a streamed tile: the pixel budget, and the refusal of acquisition times
 * in the future (a live tile from the future would beat every real newer scene of its cell).
 * `now` is the moment the decision is about: the speed lane's clock, or, for a replay, the time
 * the stream stored the message, so a replay refuses exactly what the speed lane refused then.
 */
export function ingestDescribeOptions(maxPixels: number, now?: Date): DescribeOptions {
  return { maxPixels, refuseFutureAcquisition: true, ...(now ? { now } : {}) };
}

/**
 * The GeoTIFF bytes of an ingest message: its payload, or the object Lanemap-Object names.
 * @throws LanemapError OBJECT_MISSING when the named object is not stored (it expires with the
 *   stream's age limit); TileInvalidError for a message with neither payload nor object.
 */
export async function ingestTileBytes(
  m: Pick<IngestMessage, "headers" | "data">,
  objects: TileObjects,
): Promise<Uint8Array> {
  const object = m.headers?.get(HEADERS.object);
  if (object) {
    const bytes = await objects.getBlob(object);
    if (!bytes)
      throw new LanemapError("OBJECT_MISSING", `the tile's object ${object} is not in the tile object store`);
    return bytes;
  }
  if (m.data.length === 0)
    throw new TileInvalidError(`the message has no payload and no ${HEADERS.object} header`);
  return m.data;
}
