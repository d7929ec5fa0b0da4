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

/**
 * Dead-letter stream: tiles that cannot be classified, with the reason; subjects
 * `tiles.dlq.<cell>.<key>`, one subject per bad input (dead-letters.ts `letterKey`: the tile id, its
 * bytes or object and the code), so the stream holds one letter per input however often it fails.
 * Letters written before the key (`tiles.dlq.<cell>`) are still listed, retried and removed.
 */
export const DLQ_STREAM = "LANEMAP_DLQ";
export const DLQ_SUBJECT_PREFIX = "tiles.dlq";
export const dlqSubject = (cell: string, key: string): string => `${DLQ_SUBJECT_PREFIX}.${cell}.${key}`;

/** Core-NATS event per classified tile (summary only), for subscribers such as the web page. */
export const CLASSIFIED_SUBJECT_PREFIX = "tiles.classified";
export const classifiedSubject = (cell: string): string => `${CLASSIFIED_SUBJECT_PREFIX}.${cell}`;

/**
 * KV bucket of the model registry: the `current` pointer (which version workers classify with) and
 * one small record per uploaded version under `versions.<version>`. The artifacts themselves live
 * in the object store bucket MODEL_OBJECT_BUCKET: a KV value must fit one message (max_payload,
 * 1 MiB by default) and a model with 20k training samples is larger than that.
 */
export const MODEL_BUCKET = "lanemap-models";
export const CURRENT_MODEL_KEY = "current";
/** KV key of the class catalogue in MODEL_BUCKET (name -> stable id and colour). */
export const CLASS_CATALOGUE_KEY = "classes";
/** KV key prefix of the per-version records in MODEL_BUCKET. */
export const MODEL_VERSION_KEY_PREFIX = "versions";
/** Object store bucket of model artifacts (the model JSON), one object per version. */
export const MODEL_OBJECT_BUCKET = "lanemap-model-artifacts";

/** KV bucket of the live view: one entry per classified tile. */
export const LIVE_BUCKET = "lanemap-live";

/**
 * Live class rasters too large for a KV value (live-view.ts), one object per content, in an
 * object store per period: {@link liveRasterBucket} (`lanemap-live-rasters-202611`, the UTC month
 * the raster was written in, stream `OBJ_lanemap-live-rasters-202611`). `lanemap ops expire` drops
 * a past period's bucket whole once no live entry names it. LIVE_RASTER_BUCKET is the legacy
 * bucket (before periods): read for entries that name no period, never written, dropped the same way.
 */
export const LIVE_RASTER_BUCKET = "lanemap-live-rasters";
export const LIVE_RASTER_BUCKET_PREFIX = "lanemap-live-rasters-";
/** The period (`yyyymm`, UTC) a live raster written at `at` belongs to: 2026-11-30T23:59Z -> `202611`. */
export const liveRasterPeriod = (at: Date): string =>
  `${String(at.getUTCFullYear()).padStart(4, "0")}${String(at.getUTCMonth() + 1).padStart(2, "0")}`;
/** The raster bucket of `period` (`202611` -> `lanemap-live-rasters-202611`; null: the legacy LIVE_RASTER_BUCKET). */
export const liveRasterBucket = (period: string | null): string =>
  period === null ? LIVE_RASTER_BUCKET : `${LIVE_RASTER_BUCKET_PREFIX}${period}`;
/** The period a live raster bucket's name carries (null for the legacy one), or undefined when it is not one. */
export function parseLiveRasterBucket(bucket: string): string | null | undefined {
  if (bucket === LIVE_RASTER_BUCKET) return null;
  const m = /^lanemap-live-rasters-(\d{6})$/.exec(bucket);
  return m ? m[1] : undefined;
}

/**
 * The master archive on JetStream (config LANEMAP_STORAGE=nats): tile objects by sha256 (hex) in
 * object stores, one catalogue entry per tile id and one bad-tile record per key in KV buckets.
 *
 * Tile objects live in generations (nats-archive.ts says why): object stores
 * {@link archiveGenerationBucket} (`lanemap-archive-g000001`, stream `OBJ_lanemap-archive-g000001`);
 * new objects go to the generation the KV key ARCHIVE_POINTER_KEY of ARCHIVE_POINTER_BUCKET names
 * (value `{"generation":1}`), moved by compare-and-set; `lanemap archive compact` copies what the
 * catalogue names into a new generation and deletes the old ones' streams whole.
 * ARCHIVE_OBJECT_BUCKET is the legacy generation (number 0, before generations): read, never
 * written, deleted whole by the first compaction.
 */
export const ARCHIVE_OBJECT_BUCKET = "lanemap-archive";
export const ARCHIVE_GENERATION_BUCKET_PREFIX = "lanemap-archive-g";
/** The object store of archive generation `g` (1 -> `lanemap-archive-g000001`; 0 is the legacy ARCHIVE_OBJECT_BUCKET). */
export const archiveGenerationBucket = (g: number): string =>
  g === 0 ? ARCHIVE_OBJECT_BUCKET : `${ARCHIVE_GENERATION_BUCKET_PREFIX}${String(g).padStart(6, "0")}`;
/** The generation number an archive object store's name carries, or null when it is not one. */
export function parseArchiveGeneration(bucket: string): number | null {
  if (bucket === ARCHIVE_OBJECT_BUCKET) return 0;
  const m = /^lanemap-archive-g(\d{6,})$/.exec(bucket);
  return m ? Number(m[1]) : null;
}
export const ARCHIVE_POINTER_BUCKET = "lanemap-archive-pointer";
export const ARCHIVE_POINTER_KEY = "current";
export const CATALOGUE_BUCKET = "lanemap-catalogue";
export const BAD_TILE_BUCKET = "lanemap-bad";
/** KV bucket of removed tiles' tombstones (`archive remove`), one per tile id: what the replays leave out. */
export const REMOVAL_BUCKET = "lanemap-removed";

/** Object store bucket for tiles larger than the server's max_payload. */
export const TILE_OBJECT_BUCKET = "lanemap-tiles";

/** Queue group of the speed workers' subscription to max-deliveries advisories (one handles each). */
export const SPEED_ADVISORY_QUEUE = "lanemap-speed-advisories";
/** The server's advisory when a message of `stream` reached the consumer's max_deliver unacked. */
export const maxDeliveriesAdvisory = (stream: string, consumer: string): string =>
  `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`;

/** Ingest message headers. */
export const HEADERS = {
  /** Producer-chosen tile id (unique per acquisition), see TILE_ID_PATTERN. */
  tileId: "Lanemap-Tile-Id",
  /** Map cell the tile covers. */
  cell: "Lanemap-Cell",
  /** Acquisition time, ISO 8601. */
  acquired: "Lanemap-Acquired",
  /**
   * The tile file's GDAL PAM sidecar band values (`<file>.aux.xml`: per-band nodata, scale, offset) as
   * JSON (shared/geotiff `pamSchema`); the sidecar does not travel with the bytes, its effect does.
   */
  pam: "Lanemap-Pam",
  /** Set when the GeoTIFF bytes live in the object store: the object's name. */
  object: "Lanemap-Object",
  /** JetStream de-duplication id (a producer's retry within the duplicate window is dropped). */
  msgId: "Nats-Msg-Id",
  /** Dead letters: why the tile was refused, its code, and the original stream sequence. */
  reason: "Lanemap-Reason",
  code: "Lanemap-Error-Code",
  originalSeq: "Lanemap-Original-Seq",
  /** Dead letters: the subject the tile was published on and how often it was delivered. */
  originalSubject: "Lanemap-Original-Subject",
  deliveries: "Lanemap-Deliveries",
  /** Dead letters: the producer's Nats-Msg-Id (the dead letter's own id de-duplicates dead-lettering). */
  originalMsgId: "Lanemap-Original-Msg-Id",
  /** Dead letters: when the tile was dead-lettered (ISO 8601). */
  deadAt: "Lanemap-Dead-At",
  /** An `ops replay` copy: the stream sequence of the message it copies (its original ingest sequence). */
  replayOf: "Lanemap-Replay-Of",
  /**
   * An ingest message `lanemap dlq retry` sent back: the sequence of the dead letter it came from,
   * which that retry removes (a new failure of it is a new letter, not the one being removed).
   */
  retryOf: "Lanemap-Retry-Of",
} as const;

/**
 * The batch lane's work queue (issue 14): one task per tile of a run on `batch.task.<runId>`
 * (work-queue retention: a task is gone once a worker acknowledges it), pulled by every
 * `lanemap worker` through one durable consumer.
 */
export const BATCH_TASK_STREAM = "LANEMAP_BATCH_TASKS";
export const BATCH_TASK_SUBJECT_PREFIX = "batch.task";
export const batchTaskSubject = (runId: string): string => `${BATCH_TASK_SUBJECT_PREFIX}.${runId}`;
/** Durable pull consumer every batch task worker shares. */
export const BATCH_TASK_CONSUMER = "lanemap-batch-tasks";
/** Results of a run's tasks on `batch.result.<runId>` (limits retention, a max age), read by its coordinator. */
export const BATCH_RESULT_STREAM = "LANEMAP_BATCH_RESULTS";
export const BATCH_RESULT_SUBJECT_PREFIX = "batch.result";
export const batchResultSubject = (runId: string): string => `${BATCH_RESULT_SUBJECT_PREFIX}.${runId}`;
/** Object store bucket of class rasters too large for one result message, named `<runId>.<tileId>.<sha256>`. */
export const BATCH_RASTER_BUCKET = "lanemap-batch-rasters";

/**
 * Records of batch runs that are over (batch-runs.ts): one key per run id, whose value names the
 * task stream's last sequence when the run ended; a task of that run stored at or below it is dead.
 */
export const BATCH_RUN_BUCKET = "lanemap-batch-runs";

/** Batch task and result headers. */
export const BATCH_HEADERS = {
  runId: "Lanemap-Run-Id",
  tileId: "Lanemap-Tile-Id",
  modelVersion: "Lanemap-Model-Version",
  /** The worker (host:pid) that produced a result. */
  worker: "Lanemap-Worker",
} as const;

/**
 * Published batch views (shared/storage `PublishedViews`, nats backend): each version in an object
 * store bucket of its own, {@link viewVersionBucket} (`lanemap-view-v000042`, stream
 * `OBJ_lanemap-view-v000042`), one object per file named `<file>` (manifest.json stored last), and
 * the CURRENT pointer as the KV key VIEW_POINTER_KEY (value `{"name":"v000042"}`), moved by
 * compare-and-set on its revision. Retention deletes a version's bucket whole (nats-views.ts says why).
 */
export const VIEW_VERSION_BUCKET_PREFIX = "lanemap-view-";
/** The object store bucket of published version `name` (`v000042` -> `lanemap-view-v000042`). */
export const viewVersionBucket = (name: string): string => `${VIEW_VERSION_BUCKET_PREFIX}${name}`;
/**
 * The legacy layout (before issue 14 F-A): every version's files in this one bucket, named
 * `<version>/<file>`. Still read and removed from, never written; it can go once no deployment
 * holds a version in it (`nats object ls lanemap-views` empty: README "Scaling out").
 */
export const VIEW_OBJECT_BUCKET = "lanemap-views";
export const VIEW_POINTER_BUCKET = "lanemap-view-pointer";
export const VIEW_POINTER_KEY = "current";
/**
 * Version numbers reserved by a publisher before it writes anything under them (nats-views.ts
 * `reserve`): one key per version (`v000042`, value `{"holder":"..."}`), created only when absent.
 * The bucket's max_age (VIEW_RESERVATION_TTL_MS) expires what a coordinator that died left.
 */
export const VIEW_RESERVATION_BUCKET = "lanemap-view-reservations";
/**
 * How long a reservation lives unless released: far longer than any upload of a version, so a live
 * publisher never loses its own; a dead one's number is free again (and its half-written bucket
 * removed by the next retention) after it.
 */
export const VIEW_RESERVATION_TTL_MS = 6 * 60 * 60 * 1000;

/**
 * The batch coordinator lease (batch-lease.ts): the one key BATCH_LEASE_KEY of this KV bucket
 * names the coordinator whose distributed run (NATS storage or the stream executor) is in progress,
 * created only when absent and refreshed by update on its revision. The bucket's max_age is the
 * lease's TTL (LANEMAP_BATCH_LEASE_S): nats-server 2.9 has no per-key TTL, so a holder that stops
 * refreshing (killed) loses its key after it.
 */
export const BATCH_LEASE_BUCKET = "lanemap-batch-lease";
export const BATCH_LEASE_KEY = "coordinator";
