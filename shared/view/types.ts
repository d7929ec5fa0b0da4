/**
 * The view contract shared by the batch lane, the speed lane and serving.
 *
 * - Master archive: immutable raw tiles under the data directory plus a catalogue entry per tile,
 *   carrying its ingest sequence (the JetStream stream sequence of its ingest message; 0 for bulk loads).
 * - Batch view version V: results for every tile of the archive up to watermark W (the highest ingest
 *   sequence the run read), frozen and published atomically.
 * - Live view: the speed lane's results, each with its ingest sequence and acquisition time.
 * - Merge per cell: candidates are the batch result and the live results with ingest sequence > W;
 *   the newest acquisition wins, ties to the higher ingest sequence (see merge.ts).
 */
import { z } from "zod";
import { pamSchema } from "../geotiff/pam.js";

const bounds = z.object({ minX: z.number(), minY: z.number(), maxX: z.number(), maxY: z.number() });
const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO 8601 time");

/** Tile ids are safe as file names, NATS header values and URL segments. */
export const TILE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export const catalogueEntrySchema = z.object({
  tileId: z.string().regex(TILE_ID_PATTERN),
  cell: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  acquired: isoTime,
  /** JetStream stream sequence of the ingest message; 0 for tiles loaded in bulk. */
  ingestSeq: z.number().int().min(0),
  /** sha256 of the raw GeoTIFF bytes (hex); names the archive object. */
  contentHash: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().min(0),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  bandCount: z.number().int().positive(),
  dtype: z.string(),
  epsg: z.number().int().nullable(),
  proj4: z.string().nullable(),
  geoTransform: z.array(z.number()).length(6),
  bounds: bounds,
  boundsWgs84: bounds.nullable(),
  /** Hilbert index (order 16) of the tile centroid in WGS84, for ordering work. */
  hilbert: z.number().int().min(0).nullable(),
  /** How the acquisition time was found: "header" (ingest message), "sidecar", "tiff", "filename". */
  acquiredFrom: z.enum(["header", "sidecar", "tiff", "filename"]),
  source: z.enum(["bulk", "stream"]),
  registeredAt: isoTime,
  /**
   * The tile file's GDAL PAM sidecar (`<file>.aux.xml`) band values, when it had one: the archive
   * object is the TIFF alone, so every lane applies these after decoding (shared/geotiff/pam.ts).
   */
  pam: pamSchema.optional(),
});
/** One tile of the master archive. */
export type CatalogueEntry = z.infer<typeof catalogueEntrySchema>;

export const badTileSchema = z.object({
  /** Tile id if one was known, else the file name. */
  key: z.string(),
  source: z.string(),
  code: z.string(),
  reason: z.string(),
  at: isoTime,
  /**
   * The sha256 of the tile's bytes when they were registered before the tile failed (a dead letter
   * of the speed lane): the batch lane quarantines the catalogue entry with this content.
   */
  contentHash: z.string().optional(),
});
/** A tile that could not be registered or processed, with the reason. */
export type BadTileRecord = z.infer<typeof badTileSchema>;

/**
 * What `lanemap archive remove` leaves behind (a tombstone): the replays of the ingest stream
 * (`batch run --from-stream`, `ops replay`) leave out every message of the tile that the stream
 * stored before the removal (shared/storage `removedBy`), so a replay never brings the tile back,
 * while a message stored after it (the tile ingested again) counts.
 */
export const removalSchema = z.object({
  tileId: z.string(),
  /** When it was removed (ISO 8601): the rule's fallback when `ingestSeq` is null. */
  removedAt: isoTime,
  /**
   * LANEMAP_TILES' last sequence when it was removed (0: no ingest stream yet): every message of the
   * tile up to it predates the removal. Null when NATS was not reachable from `archive remove`.
   */
  ingestSeq: z.number().int().min(0).nullable(),
  /** The removed entry's content hash. */
  contentHash: z.string(),
});
/** A removed tile's tombstone (see removalSchema). */
export type Removal = z.infer<typeof removalSchema>;

/** Which lane produced a result. */
export type Lane = "batch" | "live";

/**
 * The summary of one classified tile, the same shape in both lanes (the schema is the record; the
 * type is inferred from it). Per-class arrays are indexed by class id (index 0 = not classified).
 */
export const tileResultSchema = z
  .object({
    lane: z.enum(["batch", "live"]),
    tileId: z.string().regex(TILE_ID_PATTERN),
    cell: z.string(),
    acquired: isoTime,
    ingestSeq: z.number().int().min(0),
    contentHash: z.string(),
    modelVersion: z.string(),
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    geoTransform: z.array(z.number()).length(6).readonly(),
    epsg: z.number().int().nullable(),
    proj4: z.string().nullable(),
    boundsWgs84: bounds.nullable(),
    validPixels: z.number().int().min(0),
    counts: z.array(z.number().int().min(0)).readonly(),
    areasM2: z.array(z.number().min(0)).readonly(),
    dominantClass: z.number().int().min(0),
    meanConfidence: z.number().min(0).max(1),
    /** When the lane finished classifying the tile (ISO 8601). */
    processedAt: isoTime,
  })
  .readonly();
/** One classified tile's summary (see tileResultSchema). */
export type TileResult = z.infer<typeof tileResultSchema>;

/**
 * A classified tile as both lanes produce and store it (batch view rows, live view entries): its
 * summary, k (confidence = votes / k) and its class raster as encodeClassRaster deflates it.
 */
export interface ClassifiedTile {
  readonly result: TileResult;
  readonly k: number;
  readonly raster: Uint8Array;
}

/**
 * Per cell of a batch view whose newest acquisition is not fully valid: the per-pixel composite of
 * the cell's acquisitions up to the watermark (shared/view/composite.ts), summarised. `sources` lists
 * the acquisitions newest first; the stored source index (uint8 per pixel) points into it. Per-class
 * arrays are indexed by class id (index 0 = pixels no acquisition has valid). The rasters themselves
 * (classes + votes as encodeClassRaster, the source index as encodeSourceIndex) are BLOBs beside it.
 */
export const cellCompositeSchema = z
  .object({
    cell: z.string(),
    k: z.number().int().min(1).max(255),
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    validPixels: z.number().int().min(0),
    counts: z.array(z.number().int().min(0)).readonly(),
    areasM2: z.array(z.number().min(0)).readonly(),
    /**
     * Mean over the composite's valid pixels of votes / k, the confidence it shows per pixel (0 when
     * none is valid); null in a view written before the column existed.
     */
    meanConfidence: z.number().min(0).max(1).nullable(),
    /**
     * The composite's pixel grid (the cell's union grid, shared/view/resample.ts `unionGrid`): GDAL
     * geotransform and the CRS as a tile stores it. geoTransform null in a view written before the
     * columns existed, whose composite lies on the grid of the tile covering the cell.
     */
    geoTransform: z.array(z.number()).length(6).readonly().nullable(),
    epsg: z.number().int().nullable(),
    proj4: z.string().nullable(),
    sources: z
      .array(
        z.object({ tileId: z.string().regex(TILE_ID_PATTERN), pixels: z.number().int().min(0) }).readonly(),
      )
      .min(1)
      .max(255)
      .readonly(),
  })
  .readonly();
/** One cell's stored composite summary (see cellCompositeSchema). */
export type CellComposite = z.infer<typeof cellCompositeSchema>;

/**
 * What a kappa-mode run (`lanemap batch run --from-stream`, batch/stream-run-set.ts) replayed: the
 * sequence range of the ingest stream it read, what the stream still held, and the messages it
 * left out with the reason (the ones the speed lane dead-lettered: not a GeoTIFF, a contradicting
 * header, a tile id archived with other content, ...).
 */
export const streamReplaySchema = z.object({
  /** The ingest stream's name (LANEMAP_TILES). */
  stream: z.string(),
  /** First sequence asked for (1 unless `--from-seq`) and the last one read: the watermark. */
  fromSeq: z.number().int().min(1),
  toSeq: z.number().int().min(0),
  /** The stream's first and last stored sequences when the replay started. */
  firstSeq: z.number().int().min(0),
  lastSeq: z.number().int().min(0),
  /** Messages read in the range (sequences removed by limits are gaps, not counted). */
  messages: z.number().int().min(0),
  /** Messages whose tile id an earlier message of the range already gave, same content (kept once). */
  duplicates: z.number().int().min(0),
  excluded: z.array(
    z.object({
      seq: z.number().int().min(1),
      tileId: z.string().nullable(),
      code: z.string(),
      reason: z.string(),
      /** The message's dead letter in LANEMAP_DLQ, when the speed lane dead-lettered it. */
      deadLetterSeq: z.number().int().min(1).nullable(),
    }),
  ),
  /**
   * Messages of tiles `lanemap archive remove` took out after the stream stored them (their
   * tombstones, removalSchema): left out, so the view has none of them, as the catalogue has none.
   * Absent in views published before tombstones.
   */
  removed: z
    .array(
      z.object({
        seq: z.number().int().min(1),
        tileId: z.string(),
        /** When the tile was removed, and the stream's last sequence then (null: not recorded). */
        removedAt: isoTime,
        removedAtSeq: z.number().int().min(0).nullable(),
      }),
    )
    .optional(),
});
/** A kappa-mode run's replay of the ingest stream (see streamReplaySchema). */
export type StreamReplay = z.infer<typeof streamReplaySchema>;

export const batchManifestSchema = z.object({
  format: z.literal("lanemap.batch-view/1"),
  version: z.number().int().positive(),
  name: z.string().regex(/^v\d{6}$/),
  watermark: z.number().int().min(0),
  modelVersion: z.string(),
  startedAt: isoTime,
  finishedAt: isoTime,
  order: z.string(),
  tiles: z.object({
    total: z.number().int().min(0),
    classified: z.number().int().min(0),
    reused: z.number().int().min(0),
    failed: z.number().int().min(0),
  }),
  cells: z.number().int().min(0),
  failures: z.array(z.object({ tileId: z.string(), code: z.string(), reason: z.string() })),
  /**
   * Present on an interim view only (a progressive publish, batch/README.md): `tiles` rows were
   * carried unchanged from view `fromVersion` (each keeps its own model version) while the run that
   * publishes the final view goes on; `modelVersions` lists every model whose rows the view holds.
   * `modelVersion` above is the run's model, which classified the rest.
   */
  carried: z
    .object({
      tiles: z.number().int().min(0),
      fromVersion: z.string().regex(/^v\d{6}$/),
      modelVersions: z.array(z.string()),
    })
    .optional(),
  /** Where the run's tiles came from; absent in views published before kappa mode (the catalogue). */
  source: z.enum(["catalogue", "stream"]).optional(),
  /** With source "stream": the ingest stream range replayed and what it left out. */
  stream: streamReplaySchema.optional(),
  files: z.record(z.string(), z.object({ bytes: z.number().int().min(0), sha256: z.string() })),
});
/** What a published batch view says about itself; written last, after every file is fsynced. */
export type BatchManifest = z.infer<typeof batchManifestSchema>;
