/**
 * The route table: every endpoint once, with what the OpenAPI document says about it (parameters,
 * body, responses) next to the thin handler that validates, calls one use case and renders. The
 * app registers exactly these routes and /openapi.json is generated from exactly this table, so
 * the document cannot list an endpoint that does not exist or miss one that does.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Request, Response } from "express";
import { z } from "zod";
import type { Registry } from "prom-client";
import { ARROW_STREAM_MEDIA_TYPE } from "../../shared/adapters/arrow/index.js";
import {
  bboxParam,
  classParam,
  cursorParam,
  datetimeParam,
  formatParam,
  laneParam,
  limitParam,
  numberParam,
  parsePathParam,
  parseQuery,
  runIdSegment,
  tileIdSegment,
} from "../api/params.js";
import * as S from "../api/schemas.js";
import { InvalidParamsError, NotFoundError, ProblemError } from "../errors.js";
import { bboxArea } from "../geo/area.js";
import { classesGeoTiff, classesPng } from "../render/class-images.js";
import { statsArrow, tilesArrow } from "../render/arrow-tables.js";
import { authorizeOperator, runStatus, triggerRun } from "../usecases/batch-runs.js";
import type { ServingContext } from "../usecases/context.js";
import { pointQuery } from "../usecases/point.js";
import { boundsPolygon, snapshotInfo, tileSummary } from "../usecases/present.js";
import {
  requireCollection,
  stacCollection,
  stacCollections,
  stacItem,
  stacItemCollection,
  stacLanding,
  parseStacSearchBody,
} from "../usecases/stac.js";
import { parseStatsBody, statsQuery } from "../usecases/stats.js";
import { listTiles, resolveTarget, tileDetail } from "../usecases/tiles.js";
import { readiness, viewsQuery } from "../usecases/views.js";
import type { EventHub } from "./events.js";
import { baseUrl, hold, MEDIA, negotiate, sendBytes, sendJson, withParam } from "./respond.js";

/** What a response body is: a schema (JSON), raw bytes, or text. */
export type Media = z.ZodType | "binary" | "text";

/** One documented response: what it means and its body per media type. */
export interface ResponseSpec {
  readonly description: string;
  readonly content?: Readonly<Record<string, Media>>;
}

/** One endpoint: its OpenAPI description and its handler. */
export interface RouteSpec {
  readonly method: "get" | "post";
  /** OpenAPI form, e.g. /v1/tiles/{id}. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly tags: readonly string[];
  readonly query?: z.ZodObject;
  readonly pathParams?: Readonly<Record<string, z.ZodType>>;
  readonly body?: {
    readonly description: string;
    readonly required: boolean;
    readonly content: Readonly<Record<string, z.ZodType>>;
  };
  /** Needs the operator bearer token. */
  readonly operator?: boolean;
  /** Runs before the body is read (authorisation), so a refused caller costs no body parsing. */
  readonly guard?: (req: Request) => void;
  readonly responses: Readonly<Record<string, ResponseSpec>>;
  readonly handle: (req: Request, res: Response) => Promise<void> | void;
}

/** Media types POST /v1/stats accepts. */
export const JSON_BODY_TYPES = ["application/json", "application/geo+json", "application/*+json"];

const PROBLEM = "application/problem+json";
const problem = (description: string): ResponseSpec => ({ description, content: { [PROBLEM]: S.Problem } });
const ok = (description: string, content: Record<string, Media>): ResponseSpec => ({ description, content });

const tilesQuery = z.strictObject({
  bbox: bboxParam.optional(),
  datetime: datetimeParam.optional(),
  class: classParam.optional(),
  limit: limitParam(100, 10_000),
  cursor: cursorParam.optional(),
  lane: laneParam.optional(),
  f: formatParam.optional(),
});
const formatOnly = z.strictObject({ f: formatParam.optional() });
const noQuery = z.strictObject({});
const pointQueryParams = z.strictObject({
  lon: numberParam(-180, 180, "longitude, WGS84 degrees"),
  lat: numberParam(-90, 90, "latitude, WGS84 degrees"),
  f: formatParam.optional(),
});
const statsGetQuery = z.strictObject({ bbox: bboxParam, f: formatParam.optional() });
const runsPostQuery = z.strictObject({
  full: z
    .enum(["true", "false"], { message: "must be true or false" })
    .optional()
    .meta({ description: "rebuild every tile rather than reuse unchanged results" }),
});
const runsPostBody = z.strictObject({ full: z.boolean({ message: "must be a boolean" }).optional() });
const stacSearchQuery = z.strictObject({
  bbox: bboxParam.optional(),
  datetime: datetimeParam.optional(),
  limit: limitParam(10, 1000),
  token: cursorParam.optional(),
  collections: z
    .string()
    .regex(/^[A-Za-z0-9_,-]{1,256}$/, "must be comma-separated collection ids")
    .optional()
    .meta({ description: "comma-separated collection ids (lanemap-tiles is the only one)" }),
});
const stacItemsQuery = stacSearchQuery.omit({ collections: true });
const collectionSegment = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "is not a collection id")
  .meta({ description: "collection id" });

/** Builds the route table over a serving context. */
export function buildRoutes(
  ctx: ServingContext,
  deps: { events: EventHub; registry: Registry; openapi: () => unknown; fallbackBase: () => string },
): RouteSpec[] {
  const base = (req: Request) => baseUrl(req, deps.fallbackBase());

  const sendTilePage = (
    req: Request,
    res: Response,
    page: ReturnType<typeof listTiles>,
    lane: S.TileListBody["lane"],
    format: string,
  ): void => {
    hold(res, page.lease);
    const b = base(req);
    const items = page.items.map((r) => tileSummary(r, page.lease));
    const next = page.cursor ? withParam(req, b, "cursor", page.cursor) : null;
    const body: S.TileListBody = {
      lane,
      items,
      numberReturned: items.length,
      cursor: page.cursor,
      next,
      snapshot: snapshotInfo(page.lease),
    };
    if (next) res.setHeader("Link", `<${next}>; rel="next"`);
    if (format === "arrow") return sendBytes(res, tilesArrow(body), ARROW_STREAM_MEDIA_TYPE);
    if (format === "geojson") {
      const fc: S.TileFeatureCollectionBody = {
        type: "FeatureCollection",
        features: page.items.map((r, i) => ({
          type: "Feature",
          id: r.cell,
          geometry: boundsPolygon(r.bounds),
          properties: items[i] as S.TileSummaryBody,
        })),
        numberReturned: items.length,
        cursor: page.cursor,
        next,
        snapshot: body.snapshot,
      };
      return sendJson(res, fc, MEDIA.geojson);
    }
    sendJson(res, body);
  };

  const stacSearch = (req: Request, res: Response, q: z.output<typeof stacItemsQuery>): void => {
    const page = listTiles(
      ctx.snapshots,
      { bbox: q.bbox, datetime: q.datetime, lane: "merged", limit: q.limit, cursor: q.token },
      "stac-search",
      "token",
    );
    hold(res, page.lease);
    const b = base(req);
    const self = `${b}${req.originalUrl}`;
    sendJson(
      res,
      stacItemCollection(page, b, self, (token) => withParam(req, b, "token", token)),
      MEDIA.geojson,
    );
  };

  const target = (req: Request, res: Response) => {
    parseQuery(noQuery, req.query);
    const id = parsePathParam("id", tileIdSegment, req.params["id"]);
    const lease = hold(res, ctx.snapshots.acquire());
    const t = resolveTarget(lease, id);
    if (!t.drawn)
      throw new NotFoundError(
        `cell ${t.merged.cell} has no result to draw (every live result was absorbed)`,
        "tile-not-found",
      );
    return { lease, drawn: t.drawn };
  };

  const idParam = { id: tileIdSegment };
  const tileNotFound = problem("No cell or tile with this id in the current snapshot");
  const badRequest = problem("A parameter is malformed; `invalid_params` names it");

  return [
    {
      method: "get",
      path: "/health",
      operationId: "health",
      summary: "Process is up",
      tags: ["operations"],
      responses: { "200": ok("Up", { "application/json": S.Health }) },
      handle: (_req, res) =>
        sendJson(res, { status: "ok", uptimeS: (Date.now() - ctx.startedAt) / 1000 } satisfies S.HealthBody),
    },
    {
      method: "get",
      path: "/ready",
      operationId: "ready",
      summary: "Batch view open (or none published yet) and the live view followed when NATS is configured",
      tags: ["operations"],
      responses: {
        "200": ok("Ready", { "application/json": S.Ready }),
        "503": ok("Not ready; the body says why", { "application/json": S.Ready }),
      },
      handle: (_req, res) => {
        const r = readiness(ctx);
        res.status(r.ready ? 200 : 503);
        sendJson(res, r);
      },
    },
    {
      method: "get",
      path: "/metrics",
      operationId: "metrics",
      summary: "Prometheus metrics",
      tags: ["operations"],
      responses: { "200": ok("Prometheus text format", { "text/plain": "text" }) },
      handle: async (_req, res) => {
        res.type(deps.registry.contentType).send(await deps.registry.metrics());
      },
    },
    {
      method: "get",
      path: "/openapi.json",
      operationId: "openapi",
      summary: "This document",
      tags: ["operations"],
      responses: {
        "200": ok("OpenAPI 3.1 document", { "application/json": z.object({ openapi: z.string() }).loose() }),
      },
      handle: (_req, res) => sendJson(res, deps.openapi()),
    },
    {
      method: "get",
      path: "/v1/tiles",
      operationId: "listTiles",
      summary: "Per-cell summaries of the merged view (or one lane), filtered, paged by cursor",
      tags: ["tiles"],
      query: tilesQuery,
      responses: {
        "200": ok("One page of per-cell summaries", {
          "application/json": S.TileList,
          "application/geo+json": S.TileFeatureCollection,
          [ARROW_STREAM_MEDIA_TYPE]: "binary",
        }),
        "400": badRequest,
        "406": problem("The Accept header allows none of the formats"),
        "410": problem("The cursor's snapshot is no longer retained: start again"),
      },
      handle: (req, res) => {
        const q = parseQuery(tilesQuery, req.query);
        const format = negotiate(req, q.f, ["json", "geojson", "arrow"]);
        const lane = q.lane ?? "merged";
        const page = listTiles(
          ctx.snapshots,
          { bbox: q.bbox, datetime: q.datetime, class: q.class, lane, limit: q.limit, cursor: q.cursor },
          "tiles",
        );
        sendTilePage(req, res, page, lane, format);
      },
    },
    {
      method: "get",
      path: "/v1/tiles/{id}",
      operationId: "getTile",
      summary: "One cell (by cell key or tile id): both lanes' candidates, the winner, the absorbed",
      tags: ["tiles"],
      query: formatOnly,
      pathParams: idParam,
      responses: {
        "200": ok("The cell", {
          "application/json": S.TileDetail,
          "application/geo+json": S.TileDetailFeature,
        }),
        "400": badRequest,
        "404": tileNotFound,
        "406": problem("The Accept header allows none of the formats"),
      },
      handle: (req, res) => {
        const q = parseQuery(formatOnly, req.query);
        const id = parsePathParam("id", tileIdSegment, req.params["id"]);
        const format = negotiate(req, q.f, ["json", "geojson"]);
        const lease = hold(res, ctx.snapshots.acquire());
        const detail = tileDetail(lease, id, base(req));
        if (format === "geojson") {
          const shown = detail.winner ?? detail.candidates[0] ?? null;
          const b = shown?.bbox ?? null;
          const feature: S.TileDetailFeatureBody = {
            type: "Feature",
            id: detail.cell,
            geometry: boundsPolygon(
              b ? { minX: b[0] ?? 0, minY: b[1] ?? 0, maxX: b[2] ?? 0, maxY: b[3] ?? 0 } : null,
            ),
            properties: detail,
          };
          return sendJson(res, feature, MEDIA.geojson);
        }
        sendJson(res, detail);
      },
    },
    {
      method: "get",
      path: "/v1/tiles/{id}/classes.png",
      operationId: "getTileClassesPng",
      summary: "The class raster as a palette PNG (model colours, class 0 transparent)",
      tags: ["tiles"],
      query: noQuery,
      pathParams: idParam,
      responses: { "200": ok("PNG", { "image/png": "binary" }), "400": badRequest, "404": tileNotFound },
      handle: async (req, res) => {
        const { lease, drawn } = target(req, res);
        const png = classesPng(await drawn.raster(), lease.snapshot.classes);
        res.setHeader("Lanemap-Tile-Id", drawn.tileId);
        res.setHeader("Lanemap-Lane", drawn.lane);
        sendBytes(res, png, "image/png");
      },
    },
    {
      method: "get",
      path: "/v1/tiles/{id}/classes.tif",
      operationId: "getTileClassesTif",
      summary: "The class raster as a uint8 GeoTIFF with colour table, on the tile's grid and CRS",
      tags: ["tiles"],
      query: noQuery,
      pathParams: idParam,
      responses: {
        "200": ok("GeoTIFF", { "image/tiff; application=geotiff": "binary" }),
        "400": badRequest,
        "404": tileNotFound,
      },
      handle: async (req, res) => {
        const { lease, drawn } = target(req, res);
        const tif = classesGeoTiff(drawn, await drawn.raster(), lease.snapshot.classes);
        res.setHeader("Lanemap-Tile-Id", drawn.tileId);
        res.setHeader("Lanemap-Lane", drawn.lane);
        res.setHeader("Content-Disposition", `inline; filename="${drawn.tileId}.classes.tif"`);
        sendBytes(res, tif, "image/tiff; application=geotiff");
      },
    },
    {
      method: "get",
      path: "/v1/tiles/{id}/source.tif",
      operationId: "getTileSource",
      summary: "The archived source tile, byte for byte",
      tags: ["tiles"],
      query: noQuery,
      pathParams: idParam,
      responses: {
        "200": ok("The source GeoTIFF", { "image/tiff; application=geotiff": "binary" }),
        "400": badRequest,
        "404": problem("No such cell or tile, or its source is not in the archive"),
      },
      handle: async (req, res) => {
        const { drawn } = target(req, res);
        const hash = drawn.summary.contentHash;
        // The path comes from the content hash the view stores, checked to be hex; never from the URL.
        if (!/^[0-9a-f]{64}$/.test(hash))
          throw new NotFoundError(`tile ${drawn.tileId} has no archive content hash`, "source-not-archived");
        const path = ctx.archive.objectPath(hash);
        let size: number;
        try {
          size = (await stat(path)).size;
        } catch {
          throw new NotFoundError(
            `the source of tile ${drawn.tileId} is not in this archive`,
            "source-not-archived",
          );
        }
        res.status(200);
        res.setHeader("Content-Type", "image/tiff; application=geotiff");
        res.setHeader("Content-Length", String(size));
        res.setHeader("Content-Disposition", `inline; filename="${drawn.tileId}.tif"`);
        res.setHeader("Lanemap-Tile-Id", drawn.tileId);
        await new Promise<void>((resolve, reject) => {
          const stream = createReadStream(path);
          stream.once("error", reject);
          res.once("close", resolve);
          stream.pipe(res);
        });
      },
    },
    {
      method: "get",
      path: "/v1/point",
      operationId: "point",
      summary: "Class and confidence at a lon/lat (class 0 'not classified' on nodata)",
      tags: ["queries"],
      query: pointQueryParams,
      responses: {
        "200": ok("The class at the point", {
          "application/json": S.PointAnswer,
          "application/geo+json": S.PointFeature,
        }),
        "400": badRequest,
        "404": problem("No tile of the merged view covers the point"),
        "406": problem("The Accept header allows none of the formats"),
      },
      handle: async (req, res) => {
        const q = parseQuery(pointQueryParams, req.query);
        const format = negotiate(req, q.f, ["json", "geojson"]);
        const lease = hold(res, ctx.snapshots.acquire());
        const body = await pointQuery(lease, q.lon, q.lat);
        if (format === "geojson")
          return sendJson(
            res,
            {
              type: "Feature",
              geometry: { type: "Point", coordinates: [q.lon, q.lat] },
              properties: body,
            } satisfies S.PointFeatureBody,
            MEDIA.geojson,
          );
        sendJson(res, body);
      },
    },
    {
      method: "get",
      path: "/v1/stats",
      operationId: "statsBbox",
      summary: "Pixels and m² per class in a lon/lat bbox, each cell once",
      tags: ["queries"],
      query: statsGetQuery,
      responses: {
        "200": ok("Per-class totals", {
          "application/json": S.StatsAnswer,
          [ARROW_STREAM_MEDIA_TYPE]: "binary",
        }),
        "400": badRequest,
        "406": problem("The Accept header allows none of the formats"),
        "422": problem("The area covers more pixels than LANEMAP_STATS_MAX_PIXELS"),
      },
      handle: async (req, res) => {
        const q = parseQuery(statsGetQuery, req.query);
        const format = negotiate(req, q.f, ["json", "arrow"]);
        const lease = hold(res, ctx.snapshots.acquire());
        const body = await statsQuery(lease, bboxArea(q.bbox), ctx.config.serving.statsMaxPixels);
        if (format === "arrow") return sendBytes(res, statsArrow(body), ARROW_STREAM_MEDIA_TYPE);
        sendJson(res, body);
      },
    },
    {
      method: "post",
      path: "/v1/stats",
      operationId: "statsPolygon",
      summary: "Pixels and m² per class in a GeoJSON (Multi)Polygon, each cell once",
      tags: ["queries"],
      query: formatOnly,
      body: {
        description: "GeoJSON Polygon, MultiPolygon or Feature (WGS84 lon/lat), at most 1 MB",
        required: true,
        content: { "application/json": S.StatsRequestBody, "application/geo+json": S.StatsRequestBody },
      },
      responses: {
        "200": ok("Per-class totals", {
          "application/json": S.StatsAnswer,
          [ARROW_STREAM_MEDIA_TYPE]: "binary",
        }),
        "400": badRequest,
        "406": problem("The Accept header allows none of the formats"),
        "413": problem("The body is over 1 MB"),
        "415": problem("The body is not JSON"),
        "422": problem(
          "The area covers more pixels than LANEMAP_STATS_MAX_PIXELS, or its outline more vertex-rows of work than MAX_STATS_VERTEX_ROWS",
        ),
      },
      handle: async (req, res) => {
        const q = parseQuery(formatOnly, req.query);
        const format = negotiate(req, q.f, ["json", "arrow"]);
        const hasBody =
          req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
        if (hasBody && !req.is(JSON_BODY_TYPES))
          throw new ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the polygon as application/json or application/geo+json",
            {
              extensions: {
                invalid_params: [
                  { name: "Content-Type", reason: "must be application/json or application/geo+json" },
                ],
              },
            },
          );
        const area = parseStatsBody(req.body);
        const lease = hold(res, ctx.snapshots.acquire());
        const body = await statsQuery(lease, area, ctx.config.serving.statsMaxPixels);
        if (format === "arrow") return sendBytes(res, statsArrow(body), ARROW_STREAM_MEDIA_TYPE);
        sendJson(res, body);
      },
    },
    {
      method: "get",
      path: "/v1/views",
      operationId: "views",
      summary: "Batch versions (current, watermark, counts) and the live view's position, size and lag",
      tags: ["operations"],
      query: noQuery,
      responses: { "200": ok("View state", { "application/json": S.ViewsAnswer }), "400": badRequest },
      handle: async (req, res) => {
        parseQuery(noQuery, req.query);
        const lease = hold(res, ctx.snapshots.acquire());
        sendJson(res, await viewsQuery(ctx, lease));
      },
    },
    {
      method: "post",
      path: "/v1/batch/runs",
      operationId: "triggerBatchRun",
      summary: "Start a batch rebuild (operator token)",
      tags: ["operations"],
      operator: true,
      guard: (req) => authorizeOperator(ctx, req.headers.authorization),
      query: runsPostQuery,
      body: {
        description: 'optional {"full": true}',
        required: false,
        content: { "application/json": runsPostBody },
      },
      responses: {
        "202": ok("Run started; Location names its status", { "application/json": S.RunAccepted }),
        "400": badRequest,
        "401": problem("No bearer token"),
        "403": problem("Wrong bearer token"),
        "409": problem("A run is active"),
        "503": problem("No operator token configured, or no batch runner wired"),
      },
      handle: async (req, res) => {
        const q = parseQuery(runsPostQuery, req.query);
        let full = q.full === "true";
        if (
          req.body !== undefined &&
          req.body !== null &&
          !(typeof req.body === "object" && Object.keys(req.body as object).length === 0)
        ) {
          const b = runsPostBody.safeParse(req.body);
          if (!b.success)
            throw new InvalidParamsError(
              b.error.issues.map((i) => ({
                name:
                  i.code === "unrecognized_keys"
                    ? `body.${i.keys.join(",")}`
                    : ["body", ...i.path.map(String)].join("."),
                reason: i.code === "unrecognized_keys" ? "is not a member of this body" : i.message,
              })),
            );
          full = b.data.full ?? full;
        }
        const accepted = await triggerRun(ctx, full, base(req));
        res.status(202).setHeader("Location", accepted.status);
        sendJson(res, accepted);
      },
    },
    {
      method: "get",
      path: "/v1/batch/runs/{id}",
      operationId: "getBatchRun",
      summary: "A batch run's status",
      tags: ["operations"],
      query: noQuery,
      pathParams: { id: runIdSegment },
      responses: {
        "200": ok("Run status", { "application/json": S.RunStatusSchema }),
        "400": badRequest,
        "404": problem("No such run"),
        "503": problem("No batch runner wired"),
      },
      handle: async (req, res) => {
        parseQuery(noQuery, req.query);
        const id = parsePathParam("id", runIdSegment, req.params["id"]);
        sendJson(res, await runStatus(ctx, id));
      },
    },
    {
      method: "get",
      path: "/v1/events",
      operationId: "events",
      summary: "Server-sent events: live-change, batch-switch (hello first)",
      tags: ["operations"],
      query: noQuery,
      responses: {
        "200": ok("An event stream", { "text/event-stream": "text" }),
        "400": badRequest,
        "503": problem("Too many event streams"),
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        deps.events.handle(req, res);
      },
    },
    {
      method: "get",
      path: "/stac",
      operationId: "stacLanding",
      summary: "STAC landing page",
      tags: ["stac"],
      query: noQuery,
      responses: { "200": ok("Catalog", { "application/json": S.StacLanding }), "400": badRequest },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        sendJson(res, stacLanding(base(req)));
      },
    },
    {
      method: "get",
      path: "/stac/conformance",
      operationId: "stacConformance",
      summary: "Conformance classes",
      tags: ["stac"],
      query: noQuery,
      responses: {
        "200": ok("Conformance", { "application/json": z.object({ conformsTo: z.array(z.string()) }) }),
        "400": badRequest,
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        sendJson(res, { conformsTo: stacLanding(base(req)).conformsTo });
      },
    },
    {
      method: "get",
      path: "/stac/collections",
      operationId: "stacCollections",
      summary: "The collections (one: lanemap-tiles)",
      tags: ["stac"],
      query: noQuery,
      responses: { "200": ok("Collections", { "application/json": S.StacCollections }), "400": badRequest },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        const lease = hold(res, ctx.snapshots.acquire());
        sendJson(res, stacCollections(lease, base(req)));
      },
    },
    {
      method: "get",
      path: "/stac/collections/{collectionId}",
      operationId: "stacCollection",
      summary: "The lanemap-tiles collection, extent from the data",
      tags: ["stac"],
      query: noQuery,
      pathParams: { collectionId: collectionSegment },
      responses: {
        "200": ok("Collection", { "application/json": S.StacCollection }),
        "400": badRequest,
        "404": problem("No such collection"),
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        requireCollection(parsePathParam("collectionId", collectionSegment, req.params["collectionId"]));
        const lease = hold(res, ctx.snapshots.acquire());
        sendJson(res, stacCollection(lease, base(req)));
      },
    },
    {
      method: "get",
      path: "/stac/collections/{collectionId}/items",
      operationId: "stacItems",
      summary: "Items of the collection (as search), paged by the next link",
      tags: ["stac"],
      query: stacItemsQuery,
      pathParams: { collectionId: collectionSegment },
      responses: {
        "200": ok("Items", { "application/geo+json": S.StacItemCollection }),
        "400": badRequest,
        "404": problem("No such collection"),
        "410": problem("The token's snapshot is no longer retained"),
      },
      handle: (req, res) => {
        const q = parseQuery(stacItemsQuery, req.query);
        requireCollection(parsePathParam("collectionId", collectionSegment, req.params["collectionId"]));
        stacSearch(req, res, q);
      },
    },
    {
      method: "get",
      path: "/stac/collections/{collectionId}/items/{itemId}",
      operationId: "stacItem",
      summary: "One item by tile id (or cell key)",
      tags: ["stac"],
      query: noQuery,
      pathParams: { collectionId: collectionSegment, itemId: tileIdSegment },
      responses: {
        "200": ok("Item", { "application/geo+json": S.StacItem }),
        "400": badRequest,
        "404": problem("No such collection or item"),
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        requireCollection(parsePathParam("collectionId", collectionSegment, req.params["collectionId"]));
        const id = parsePathParam("itemId", tileIdSegment, req.params["itemId"]);
        const lease = hold(res, ctx.snapshots.acquire());
        const t = resolveTarget(lease, id);
        if (!t.drawn) throw new NotFoundError(`cell ${t.merged.cell} has no item`, "tile-not-found");
        sendJson(res, stacItem(t.drawn, lease, base(req)), MEDIA.geojson);
      },
    },
    {
      method: "get",
      path: "/stac/search",
      operationId: "stacSearch",
      summary: "STAC item search (GET): bbox, datetime, limit, token",
      tags: ["stac"],
      query: stacSearchQuery,
      responses: {
        "200": ok("Items", { "application/geo+json": S.StacItemCollection }),
        "400": badRequest,
        "410": problem("The token's snapshot is no longer retained"),
      },
      handle: (req, res) => {
        const q = parseQuery(stacSearchQuery, req.query);
        if (q.collections !== undefined) {
          const unknown = q.collections.split(",").filter((c) => c !== "lanemap-tiles");
          if (unknown.length)
            throw new InvalidParamsError([
              { name: "collections", reason: `names unknown collections: ${unknown.join(", ")}` },
            ]);
        }
        stacSearch(req, res, q);
      },
    },
    {
      method: "post",
      path: "/stac/search",
      operationId: "stacSearchPost",
      summary: "STAC item search (POST): bbox or intersects, datetime, collections, ids, limit, token",
      tags: ["stac"],
      query: noQuery,
      body: {
        description: "STAC API item search body; the `next` link carries the token to POST back",
        required: false,
        content: { "application/json": S.StacSearchRequest },
      },
      responses: {
        "200": ok("Items", { "application/geo+json": S.StacItemCollection }),
        "400": badRequest,
        "410": problem("The token's snapshot is no longer retained"),
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        const q = parseStacSearchBody(req.body);
        const page = listTiles(
          ctx.snapshots,
          { ...q, lane: "merged", cursor: q.token },
          "stac-search-post",
          "body.token",
        );
        hold(res, page.lease);
        const b = base(req);
        const next = (token: string) => ({
          href: `${b}/stac/search`,
          method: "POST",
          body: { token },
          merge: true,
        });
        sendJson(res, stacItemCollection(page, b, `${b}/stac/search`, next), MEDIA.geojson);
      },
    },
  ];
}
