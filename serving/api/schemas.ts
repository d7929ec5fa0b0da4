/**
 * The API's answers as zod schemas. They are the single source of three things: the TypeScript
 * types the use cases return (z.infer, so a use case cannot return a field the document lacks),
 * the OpenAPI document's components (z.toJSONSchema over `apiRegistry`), and the contract tests
 * (every real response is validated against /openapi.json).
 */
import { z } from "zod";
import { leaseHolderSchema } from "../../shared/adapters/nats/index.js";

/** Schemas registered here become `#/components/schemas/<id>` in the OpenAPI document. */
export const apiRegistry = z.registry<{ id: string; description?: string }>();

function component<S extends z.ZodType>(id: string, schema: S, description?: string): S {
  apiRegistry.add(schema, description === undefined ? { id } : { id, description });
  return schema;
}

const isoTime = z.string().meta({ format: "date-time" });
const count = z.number().int().min(0);
const bbox4 = z
  .array(z.number())
  .length(4)
  .meta({ description: "[west, south, east, north]; west > east across the antimeridian (RFC 7946 §5.2)" });

// Each answer schema below is registered as an OpenAPI component under its id (the first argument).

/** A problem body. */
export const Problem = component(
  "Problem",
  z
    .object({
      type: z.string(),
      title: z.string(),
      status: z.number().int().min(400).max(599),
      detail: z.string(),
      instance: z.string().optional(),
      invalid_params: z.array(z.object({ name: z.string(), reason: z.string() })).optional(),
      limit: z.number().optional(),
      estimated_pixels: z.number().optional(),
      active_run_id: z.string().optional(),
      holder: leaseHolderSchema.optional().meta({
        description:
          "batch-run-active: the batch coordinator holding the lease on another machine (or process), as `lanemap ops status` names it",
      }),
    })
    .loose(),
  "RFC 9457 problem details (application/problem+json)",
);

export const SnapshotInfo = component(
  "SnapshotInfo",
  z.object({
    id: z.string(),
    takenAt: isoTime,
    batch: z
      .object({
        version: count,
        name: z.string(),
        watermark: count,
        modelVersion: z.string(),
        finishedAt: isoTime,
        ageS: z.number(),
      })
      .nullable(),
    live: z.object({ position: count, size: count }).nullable(),
    legend: z.array(z.object({ id: count, name: z.string(), colour: z.string() })).meta({
      description:
        "every class id of this answer by name and colour: the data directory's class catalogue (ids are stable per name across models) plus the batch view's model's classes",
    }),
  }),
  "The one view snapshot an answer was read from: batch version + watermark, live position, the class legend",
);

export const Provenance = component(
  "Provenance",
  z.object({
    lane: z.enum(["batch", "live"]),
    batchVersion: count.nullable(),
    watermark: z.number().int().nullable(),
    livePosition: count.nullable(),
    modelVersion: z.string(),
    ingestSeq: count,
    acquired: isoTime,
    processedAt: isoTime,
    staleness: z.object({
      sinceAcquiredS: z.number(),
      viewAgeS: z.number().nullable().meta({ description: "batch lane: age of the batch view; live: null" }),
    }),
  }),
  "Where one result came from and how old it is",
);

export const TileSummary = component(
  "TileSummary",
  z.object({
    cell: z.string(),
    tileId: z.string(),
    lane: z.enum(["batch", "live"]),
    acquired: isoTime,
    ingestSeq: count,
    processedAt: isoTime,
    modelVersion: z.string(),
    contentHash: z.string(),
    width: count,
    height: count,
    epsg: z.number().int().nullable(),
    bbox: bbox4.nullable(),
    validPixels: count,
    counts: z.array(count),
    areasM2: z.array(z.number()),
    dominantClass: count,
    dominantClassName: z.string(),
    meanConfidence: z.number(),
    provenance: Provenance,
  }),
  "One classified tile, the same shape for both lanes",
);

export const TileList = component(
  "TileList",
  z.object({
    lane: z.enum(["merged", "batch", "live"]),
    items: z.array(TileSummary),
    numberReturned: count,
    cursor: z.string().nullable(),
    next: z.string().nullable(),
    snapshot: SnapshotInfo,
  }),
);

// A footprint across the antimeridian is a MultiPolygon of its two halves (RFC 7946 §3.1.9).
const polygonGeometry = z.union([
  z.object({ type: z.literal("Polygon"), coordinates: z.array(z.array(z.array(z.number()))) }),
  z.object({ type: z.literal("MultiPolygon"), coordinates: z.array(z.array(z.array(z.array(z.number())))) }),
]);
const pointGeometry = z.object({ type: z.literal("Point"), coordinates: z.array(z.number()) });

export const TileFeature = component(
  "TileFeature",
  z.object({
    type: z.literal("Feature"),
    id: z.string(),
    geometry: polygonGeometry.nullable(),
    properties: TileSummary,
  }),
);

export const TileFeatureCollection = component(
  "TileFeatureCollection",
  z.object({
    type: z.literal("FeatureCollection"),
    features: z.array(TileFeature),
    numberReturned: count,
    cursor: z.string().nullable(),
    next: z.string().nullable(),
    snapshot: SnapshotInfo,
  }),
);

/** render/confidence.ts `confidenceSummary` of the drawn result's class raster. */
export const TileConfidence = component(
  "TileConfidence",
  z.object({
    classifiedPixels: count,
    mean: z.number().min(0).max(1).nullable(),
    lowShare: z.number().min(0).max(1).nullable(),
    lowThreshold: z.number().min(0).max(1),
    k: count,
  }),
  "Vote shares (votes / k) of the drawn result's classified pixels: their mean, and the share of pixels whose vote share is at most lowThreshold (no majority of the k neighbours)",
);

export const CompositeBreakdown = component(
  "CompositeBreakdown",
  z.object({
    sources: z.array(
      z.object({
        tileId: z.string(),
        lane: z.enum(["batch", "live"]),
        acquired: isoTime,
        modelVersion: z.string(),
        pixels: count,
      }),
    ),
    noSourcePixels: count,
    grid: z.object({
      width: count,
      height: count,
      geoTransform: z.array(z.number()).length(6),
      epsg: z.number().int().nullable(),
      proj4: z.string().nullable(),
      bbox: z.array(z.number()).length(4).nullable(),
    }),
    gridClipped: z.enum(["too-large", "not-placeable"]).nullable(),
    validPixels: count,
    counts: z.array(count),
    areasM2: z.array(z.number()),
  }),
  "Per-pixel composite of a cell: its sources newest first and the pixels each gives (the newest valid pixel wins), " +
    "and the composite's own tally: validPixels, and per class id `counts` (pixels) and `areasM2` (m²). These are the " +
    "figures /v1/stats, /v1/tiles?bbox= and classes.tif use for the cell; `winner.counts` is the newest tile's own tally. " +
    "The composite is on the union of its sources' footprints, on the lattice of the one covering the most ground; " +
    "`grid` is the composite's pixel grid (width, height, GDAL geotransform, CRS as EPSG code and/or proj4, WGS84 bbox), the one " +
    "the listing, Arrow and classes.tif give the cell; the newest tile's own when it alone answers. " +
    "`gridClipped` says why it is that source's own grid instead although a candidate of the cell reaches beyond it: `too-large` " +
    "(the union would exceed 4 times its pixels) or `not-placeable` (no CRS or invertible geotransform), also when the newest " +
    "scene alone is shown (as the batch run logs it); null otherwise.",
);

export const TileDetail = component(
  "TileDetail",
  z.object({
    cell: z.string(),
    requestedTileId: z.string().nullable(),
    watermark: z.number().int(),
    winner: TileSummary.nullable(),
    batch: TileSummary.nullable(),
    candidates: z.array(TileSummary),
    absorbed: z.array(TileSummary),
    links: z
      .object({
        classesPng: z.string(),
        classesTif: z.string(),
        sourceTif: z.string(),
        sourcePng: z.string(),
        confidencePng: z.string(),
      })
      .nullable(),
    /** Of the drawn result (the named tile, else the winner); null when nothing is drawn. */
    confidence: TileConfidence.nullable(),
    composite: CompositeBreakdown.nullable().optional(),
    snapshot: SnapshotInfo,
  }),
  "One cell: both lanes' candidates newest first, which won, and the live results the batch absorbed",
);

export const TileDetailFeature = component(
  "TileDetailFeature",
  z.object({
    type: z.literal("Feature"),
    id: z.string(),
    geometry: polygonGeometry.nullable(),
    properties: TileDetail,
  }),
);

const classRef = z.object({ id: count, name: z.string() });

export const PixelSource = component(
  "PixelSource",
  z.object({
    lane: z.enum(["batch", "live"]),
    tileId: z.string(),
    acquired: isoTime,
    ingestSeq: count,
    modelVersion: z.string(),
    ageDays: z.number().meta({ description: "days from the pixel's acquisition to the request" }),
  }),
  "The acquisition one pixel's class came from (the newest in which the pixel is valid)",
);

export const PointAnswer = component(
  "PointAnswer",
  z.object({
    lon: z.number(),
    lat: z.number(),
    cell: z.string(),
    tileId: z.string(),
    class: classRef,
    confidence: z.number().min(0).max(1),
    votes: count,
    k: count,
    pixel: z.object({ col: count, row: count }),
    crs: z.object({ epsg: z.number().int().nullable(), x: z.number(), y: z.number() }),
    source: PixelSource.nullable().optional(),
    ageDays: z.number().nullable().optional(),
    provenance: Provenance,
    snapshot: SnapshotInfo,
  }),
  "The class at a point (class 0 'not classified' on nodata)",
);

export const PointFeature = component(
  "PointFeature",
  z.object({ type: z.literal("Feature"), geometry: pointGeometry, properties: PointAnswer }),
);

export const StatsClass = component(
  "StatsClass",
  z.object({ id: count, name: z.string(), colour: z.string(), pixels: count, areaM2: z.number() }),
);

export const StatsAnswer = component(
  "StatsAnswer",
  z.object({
    area: z.object({ kind: z.enum(["bbox", "polygon"]), bbox: bbox4 }),
    cells: z.object({ total: count, full: count, partial: count, batch: count, live: count }),
    pixels: count,
    classes: z.array(StatsClass),
    provenance: z.object({
      batchVersion: count.nullable(),
      watermark: z.number().int().nullable(),
      livePosition: count.nullable(),
      modelVersions: z.array(z.string()),
      acquired: z.object({ oldest: isoTime, newest: isoTime }).nullable(),
      staleness: z.object({ maxSinceAcquiredS: z.number().nullable(), viewAgeS: z.number().nullable() }),
    }),
    snapshot: SnapshotInfo,
  }),
  "Pixels and square metres per class over the merged view, each cell once (its winner)",
);

export const BatchVersionInfo = component(
  "BatchVersionInfo",
  z.object({
    name: z.string(),
    version: count,
    current: z.boolean(),
    watermark: count,
    modelVersion: z.string(),
    startedAt: isoTime,
    finishedAt: isoTime,
    ageS: z.number(),
    cells: count,
    tiles: z.object({ total: count, classified: count, reused: count, failed: count }),
  }),
);

export const ViewsAnswer = component(
  "ViewsAnswer",
  z.object({
    batch: z.object({
      state: z.enum(["open", "none-yet", "error"]),
      current: z.string().nullable(),
      error: z.string().nullable(),
      versions: z.array(BatchVersionInfo),
    }),
    live: z.object({
      configured: z.boolean(),
      state: z.string(),
      position: count.nullable(),
      size: count.nullable(),
      newestProcessedAt: isoTime.nullable(),
      sinceNewestResultS: z.number().nullable().meta({
        description:
          "time since the newest live result was processed (now - newestProcessedAt), seconds; a quiet feed grows it too",
      }),
      consumerPendingMessages: z.number().int().nullable().meta({
        description:
          "consumer lag in messages: tile events the speed consumer has not yet delivered (JetStream num_pending), if known",
      }),
    }),
    snapshot: SnapshotInfo,
  }),
);

export const RunAccepted = component(
  "RunAccepted",
  z.object({ runId: z.string(), status: z.string().meta({ description: "URL of the run's status" }) }),
);

export const RunStatusSchema = component(
  "RunStatus",
  z.object({
    runId: z.string(),
    state: z.enum(["queued", "running", "succeeded", "failed", "cancelled"]),
    full: z.boolean().optional(),
    startedAt: isoTime.optional(),
    finishedAt: isoTime.optional(),
    progress: z.object({ done: count, total: count }).optional(),
    failedTiles: count
      .optional()
      .meta({ description: "tiles that failed to classify (so far, while running)" }),
    publishedVersion: count.optional(),
    error: z.string().optional(),
  }),
);

export const Health = component("Health", z.object({ status: z.literal("ok"), uptimeS: z.number() }));

export const Ready = component(
  "Ready",
  z.object({
    ready: z.boolean(),
    batch: z.object({
      state: z.enum(["open", "none-yet", "error"]),
      version: z.string().nullable(),
      error: z.string().nullable(),
    }),
    live: z.object({ configured: z.boolean(), state: z.string(), error: z.string().nullable() }),
  }),
);

export const StatsRequestBody = component(
  "StatsRequestBody",
  z
    .object({
      type: z.enum(["Polygon", "MultiPolygon", "Feature", "FeatureCollection"]),
    })
    .loose()
    .meta({
      description:
        "A GeoJSON Polygon or MultiPolygon, a Feature with one as its geometry, or a FeatureCollection of such Features (their union); rings closed. " +
        'Positions are WGS 84 lon/lat (RFC 7946), or in the EPSG CRS a legacy `crs` member names ({"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32615"}}), as POST /v1/labels accepts; they are reprojected to WGS 84',
    }),
);

// STAC (1.0.0) documents, as far as lanemap fills them.
export const StacLink = component(
  "StacLink",
  z.object({
    rel: z.string(),
    href: z.string(),
    type: z.string().optional(),
    method: z.string().optional(),
    title: z.string().optional(),
    body: z.record(z.string(), z.unknown()).optional().meta({
      description: "for a POST `next` link: the body to send (STAC API item search, paging)",
    }),
    merge: z.boolean().optional().meta({ description: "merge `body` into the previous request's body" }),
  }),
);

export const StacSearchRequest = component(
  "StacSearchRequest",
  z.strictObject({
    bbox: z
      .array(z.number())
      .optional()
      .meta({ description: "[minLon, minLat, maxLon, maxLat] WGS84 degrees; minLon > maxLon crosses 180°" }),
    intersects: z
      .object({ type: z.string() })
      .loose()
      .optional()
      .meta({ description: "GeoJSON Polygon or MultiPolygon (WGS84); not together with bbox" }),
    datetime: z
      .string()
      .optional()
      .meta({ description: "RFC 3339 instant or date, or interval start/end with '..' for an open end" }),
    collections: z.array(z.string()).optional().meta({ description: "collection ids (lanemap-tiles)" }),
    ids: z.array(z.string()).optional().meta({ description: "item ids (tile ids) to return, at most 1000" }),
    limit: z.number().optional().meta({ description: "page size, 1..1000 (default 10)" }),
    token: z
      .string()
      .optional()
      .meta({ description: "paging token from the previous page's `next` link body" }),
  }),
  "STAC API item search body (POST /stac/search)",
);

export const StacLanding = component(
  "StacLanding",
  z.object({
    type: z.literal("Catalog"),
    id: z.string(),
    stac_version: z.string(),
    title: z.string(),
    description: z.string(),
    conformsTo: z.array(z.string()),
    links: z.array(StacLink),
  }),
);

export const StacCollection = component(
  "StacCollection",
  z.object({
    type: z.literal("Collection"),
    id: z.string(),
    stac_version: z.string(),
    title: z.string(),
    description: z.string(),
    license: z.string(),
    extent: z.object({
      spatial: z.object({ bbox: z.array(bbox4) }),
      temporal: z.object({ interval: z.array(z.array(isoTime.nullable()).length(2)) }),
    }),
    summaries: z.record(z.string(), z.unknown()).optional(),
    links: z.array(StacLink),
  }),
);

export const StacCollections = component(
  "StacCollections",
  z.object({ collections: z.array(StacCollection), links: z.array(StacLink) }),
);

const stacAsset = z.object({
  href: z.string(),
  type: z.string(),
  title: z.string(),
  roles: z.array(z.string()),
});

export const StacItem = component(
  "StacItem",
  z.object({
    type: z.literal("Feature"),
    stac_version: z.string(),
    stac_extensions: z.array(z.string()),
    id: z.string(),
    collection: z.string(),
    geometry: polygonGeometry.nullable(),
    bbox: bbox4.optional(),
    properties: z
      .object({
        datetime: isoTime,
        "lanemap:cell": z.string(),
        "lanemap:lane": z.enum(["batch", "live"]),
        "lanemap:batch_version": count.nullable(),
        "lanemap:watermark": z.number().int().nullable(),
        "lanemap:live_position": count.nullable(),
        "lanemap:model_version": z.string(),
        "lanemap:ingest_seq": count,
        "lanemap:processed_at": isoTime,
        "lanemap:dominant_class": count,
        "lanemap:mean_confidence": z.number(),
        "lanemap:staleness_s": z.number(),
      })
      .loose(),
    assets: z.record(z.string(), stacAsset),
    links: z.array(StacLink),
  }),
);

export const StacItemCollection = component(
  "StacItemCollection",
  z.object({
    type: z.literal("FeatureCollection"),
    features: z.array(StacItem),
    numberReturned: count,
    links: z.array(StacLink),
  }),
);

// The TypeScript types of the answers, inferred from the schemas (use cases return these).

/** The body of a problem answer. */
export type ProblemBody = z.infer<typeof Problem>;
export type SnapshotInfoBody = z.infer<typeof SnapshotInfo>;
export type ProvenanceBody = z.infer<typeof Provenance>;
export type TileSummaryBody = z.infer<typeof TileSummary>;
export type TileListBody = z.infer<typeof TileList>;
export type TileFeatureBody = z.infer<typeof TileFeature>;
export type TileFeatureCollectionBody = z.infer<typeof TileFeatureCollection>;
export type TileDetailBody = z.infer<typeof TileDetail>;
export type TileDetailFeatureBody = z.infer<typeof TileDetailFeature>;
export type PointBody = z.infer<typeof PointAnswer>;
export type PixelSourceBody = z.infer<typeof PixelSource>;
export type CompositeBreakdownBody = z.infer<typeof CompositeBreakdown>;
export type PointFeatureBody = z.infer<typeof PointFeature>;
export type StatsBody = z.infer<typeof StatsAnswer>;
export type StatsClassBody = z.infer<typeof StatsClass>;
export type ViewsBody = z.infer<typeof ViewsAnswer>;
export type BatchVersionBody = z.infer<typeof BatchVersionInfo>;
export type RunAcceptedBody = z.infer<typeof RunAccepted>;
export type RunStatusBody = z.infer<typeof RunStatusSchema>;
export type HealthBody = z.infer<typeof Health>;
export type ReadyBody = z.infer<typeof Ready>;
export type StacLinkBody = z.infer<typeof StacLink>;
export type StacLandingBody = z.infer<typeof StacLanding>;
export type StacCollectionBody = z.infer<typeof StacCollection>;
export type StacCollectionsBody = z.infer<typeof StacCollections>;
export type StacItemBody = z.infer<typeof StacItem>;
export type StacSearchRequestBody = z.infer<typeof StacSearchRequest>;
export type StacItemCollectionBody = z.infer<typeof StacItemCollection>;
