/**
 * The NATS names lanemap uses: the ingest contract producers in any language rely on, and the
 * buckets and streams the lanes share. Changing one is a breaking change of the contract.
 */

/** JetStream stream (file storage) carrying fresh tiles; subjects `tiles.in.<cell>`. */
export const INGEST_STREAM = "LANEMAP_TILES";
export const INGEST_SUBJECT_PREFIX = "tiles.in";
/** The subject a tile of `cell` is published on. */
export const ingestSubject = (cell: string): string => `${INGEST_SUBJECT_PREFIX}.${cell}`;

/** Durable pull consumer all speed workers share. */
export const SPEED_CONSUMER = "lanemap-speed";

/** Dead-letter stream: tiles that cannot be classified, with the reason; subjects `tiles.dlq.<cell>`. */
export const DLQ_STREAM = "LANEMAP_DLQ";
export const DLQ_SUBJECT_PREFIX = "tiles.dlq";
export const dlqSubject = (cell: string): string => `${DLQ_SUBJECT_PREFIX}.${cell}`;

/** Core-NATS event per classified tile (summary only), for subscribers such as the web page. */
export const CLASSIFIED_SUBJECT_PREFIX = "tiles.classified";
export const classifiedSubject = (cell: string): string => `${CLASSIFIED_SUBJECT_PREFIX}.${cell}`;

/** KV bucket holding model artifacts by version and the `current` pointer. */
export const MODEL_BUCKET = "lanemap-models";
export const CURRENT_MODEL_KEY = "current";

/** KV bucket of the live view: one entry per classified tile. */
export const LIVE_BUCKET = "lanemap-live";

/** Object store bucket for tiles larger than the server's max_payload. */
export const TILE_OBJECT_BUCKET = "lanemap-tiles";

/** Ingest message headers. */
export const HEADERS = {
  /** Producer-chosen tile id (unique per acquisition), see TILE_ID_PATTERN. */
  tileId: "Lanemap-Tile-Id",
  /** Map cell the tile covers. */
  cell: "Lanemap-Cell",
  /** Acquisition time, ISO 8601. */
  acquired: "Lanemap-Acquired",
  /** Set when the GeoTIFF bytes live in the object store: the object's name. */
  object: "Lanemap-Object",
  /** JetStream de-duplication id (a producer's retry within the duplicate window is dropped). */
  msgId: "Nats-Msg-Id",
  /** Dead letters: why the tile was refused, its code, and the original stream sequence. */
  reason: "Lanemap-Reason",
  code: "Lanemap-Error-Code",
  originalSeq: "Lanemap-Original-Seq",
} as const;
