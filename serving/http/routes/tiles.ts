/**
 * Tile routes: the per-cell listing of the merged view (or one lane) in JSON, GeoJSON or Arrow, one
 * cell with both lanes' candidates, and its class raster (PNG, GeoTIFF) and archived source.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Request, Response } from "express";
import { z } from "zod";
import { ARROW_STREAM_MEDIA_TYPE } from "../../../shared/adapters/arrow/index.js";
import { ArchiveStore } from "../../../shared/adapters/archive/index.js";
import { errorCode, pamCategoryNamesXml } from "../../../shared/index.js";
import {
  bboxParam,
  classParam,
  cursorParam,
  datetimeParam,
  formatParam,
  laneParam,
  limitParam,
  parsePathParam,
  parseQuery,
  tileIdSegment,
} from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import * as S from "../../api/schemas.js";
import { NotFoundError } from "../../errors.js";
import { tilesArrow } from "../../render/arrow-tables.js";
import { categoryNames, classesGeoTiff, classesPng } from "../../render/class-images.js";
import { confidenceSummary } from "../../render/confidence.js";
import type { ServingContext } from "../../usecases/context.js";
import { boundsPolygon, snapshotInfo, tileSummary } from "../../usecases/present.js";
import { SourceGeoref } from "../../usecases/source-georef.js";
import { agePng, tileDetailWithComposite } from "../../usecases/composite.js";
import { drawnTarget, listTiles, resolveTarget } from "../../usecases/tiles.js";
import type { ComposedCell } from "../../view/served-result.js";
import { hold, MEDIA, negotiate, sendBytes, sendJson, withParam } from "../respond.js";
import {
  badRequest,
  formatOnly,
  laneOnly,
  noQuery,
  requestBase,
  setAnswerHeaders,
  type RouteDeps,
} from "./common.js";

const tilesQuery = z.strictObject({
  bbox: bboxParam.optional(),
  datetime: datetimeParam.optional(),
  class: classParam.optional(),
  limit: limitParam(100, 10_000),
  cursor: cursorParam.optional(),
  lane: laneParam.optional(),
  f: formatParam.optional(),
});

/** GET /v1/tiles, /v1/tiles/{id} and the tile's classes.png, classes.tif and source.tif. */
export function registerTileRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
  const base = requestBase(deps);
  const georef = new SourceGeoref(ctx.archive);

  const sendTilePage = (
    req: Request,
    res: Response,
    page: ReturnType<typeof listTiles>,
    lane: S.TileListBody["lane"],
    format: string,
    composed: readonly (ComposedCell | undefined)[],
  ): void => {
    hold(res, page.lease);
    const b = base(req);
    const items = page.items.map((r, i) => tileSummary(r, page.lease, composed[i]));
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

  const target = (req: Request, res: Response, query: typeof noQuery | typeof laneOnly = noQuery) => {
    const q: { lane?: S.TileListBody["lane"] | undefined } = parseQuery(query, req.query);
    const id = parsePathParam("id", tileIdSegment, req.params["id"]);
    const lease = hold(res, ctx.snapshots.acquire());
    return { lease, drawn: drawnTarget(lease, id, q.lane) };
  };

  const idParam = { id: tileIdSegment };
  const tileNotFound = problem("No cell or tile with this id in the current snapshot");

  return [
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
      handle: async (req, res) => {
        const q = parseQuery(tilesQuery, req.query);
        const format = negotiate(req, q.f, ["json", "geojson", "arrow"]);
        const lane = q.lane ?? "merged";
        const page = listTiles(
          ctx.snapshots,
          { bbox: q.bbox, datetime: q.datetime, class: q.class, lane, limit: q.limit, cursor: q.cursor },
          "tiles",
        );
        // A live-over-batch composite knows its counts once composed (release is idempotent).
        hold(res, page.lease);
        const composed = await Promise.all(page.items.map((r) => r.composite?.compose()));
        sendTilePage(req, res, page, lane, format, composed);
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
      handle: async (req, res) => {
        const q = parseQuery(formatOnly, req.query);
        const id = parsePathParam("id", tileIdSegment, req.params["id"]);
        const format = negotiate(req, q.f, ["json", "geojson"]);
        const lease = hold(res, ctx.snapshots.acquire());
        let detail = await tileDetailWithComposite(lease, id, base(req));
        const drawn = resolveTarget(lease, id).drawn;
        if (drawn) detail = { ...detail, confidence: confidenceSummary(await drawn.raster()) };
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
      summary:
        "The class raster as a palette PNG (model colours, class 0 transparent); `lane` draws that lane's answer for the cell, on the grid its listing gives",
      tags: ["tiles"],
      query: laneOnly,
      pathParams: idParam,
      responses: { "200": ok("PNG", { "image/png": "binary" }), "400": badRequest, "404": tileNotFound },
      handle: async (req, res) => {
        const { lease, drawn } = target(req, res, laneOnly);
        const png = classesPng(await drawn.raster(), lease.snapshot.classes);
        setAnswerHeaders(res, drawn, lease.snapshot);
        sendBytes(res, png, "image/png");
      },
    },
    {
      method: "get",
      path: "/v1/tiles/{id}/age.png",
      operationId: "getTileAgePng",
      summary:
        "Days since each pixel's acquisition (the per-pixel composite's source) as a palette PNG: index 1 + days, fresh bright, 64+ days dark, no source transparent; `lane` as for classes.png",
      tags: ["tiles"],
      query: laneOnly,
      pathParams: idParam,
      responses: { "200": ok("PNG", { "image/png": "binary" }), "400": badRequest, "404": tileNotFound },
      handle: async (req, res) => {
        const { lease, drawn } = target(req, res, laneOnly);
        const png = await agePng(drawn, lease.now);
        setAnswerHeaders(res, drawn, lease.snapshot);
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
        // A composite on another grid than its newest scene's (the cell's union grid, or an older
        // covering scene's) must not borrow that scene's tags, even at the same size.
        const own = drawn.composite?.top.summary ?? drawn.summary;
        const onOwnGrid = own.geoTransform.every((v, i) => v === drawn.summary.geoTransform[i]);
        const sourceTags = onOwnGrid ? await georef.geoTags(drawn.summary) : null;
        const tif = classesGeoTiff(drawn, await drawn.raster(), lease.snapshot.classes, sourceTags);
        setAnswerHeaders(res, drawn, lease.snapshot);
        res.setHeader("Content-Disposition", `inline; filename="${drawn.tileId}.classes.tif"`);
        sendBytes(res, tif, "image/tiff; application=geotiff");
      },
    },
    {
      method: "get",
      path: "/v1/tiles/{id}/classes.tif.aux.xml",
      operationId: "getTileClassesPam",
      summary:
        "GDAL's PAM sidecar of classes.tif: the class names as band 1 category names (GDAL keeps them only there)",
      tags: ["tiles"],
      query: noQuery,
      pathParams: idParam,
      responses: {
        "200": ok("PAM XML", { "application/xml": "text" }),
        "400": badRequest,
        "404": tileNotFound,
      },
      handle: async (req, res) => {
        const { lease, drawn } = target(req, res);
        setAnswerHeaders(res, drawn, lease.snapshot);
        sendBytes(
          res,
          new TextEncoder().encode(pamCategoryNamesXml(categoryNames(lease.snapshot.classes))),
          "application/xml",
        );
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
        const notArchived = () =>
          new NotFoundError(
            `the source of tile ${drawn.tileId} is not in this archive`,
            "source-not-archived",
          );
        const headers = () => {
          res.setHeader("Content-Disposition", `inline; filename="${drawn.tileId}.tif"`);
          res.setHeader("Lanemap-Tile-Id", drawn.tileId);
        };
        if (!(ctx.archive instanceof ArchiveStore)) {
          // A shared archive (JetStream) has no file to stream: its object store hands out the bytes.
          let bytes: Uint8Array;
          try {
            bytes = await ctx.archive.readObject(hash);
          } catch (err) {
            if (errorCode(err) === "OBJECT_MISSING") throw notArchived();
            throw err;
          }
          headers();
          sendBytes(res.status(200), bytes, "image/tiff; application=geotiff");
          return;
        }
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
  ];
}
