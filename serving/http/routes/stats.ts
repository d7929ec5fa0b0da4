/**
 * Stats routes: pixels and m² per class in a lon/lat bbox (GET) or a GeoJSON area (POST), each cell
 * counted once (its winner).
 */
import { z } from "zod";
import { ARROW_STREAM_MEDIA_TYPE } from "../../../shared/adapters/arrow/index.js";
import { bboxParam, formatParam, parseQuery } from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import * as S from "../../api/schemas.js";
import { bboxArea } from "../../geo/area.js";
import { statsArrow } from "../../render/arrow-tables.js";
import type { ServingContext } from "../../usecases/context.js";
import { parseStatsBody, statsBodyCrs, statsQuery } from "../../usecases/stats.js";
import { hold, negotiate, sendBytes, sendJson } from "../respond.js";
import { badRequest, formatOnly, requireJsonBody } from "./common.js";

const statsGetQuery = z.strictObject({ bbox: bboxParam, f: formatParam.optional() });

/** GET and POST /v1/stats. */
export function registerStatsRoutes(ctx: ServingContext): RouteSpec[] {
  return [
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
        description:
          "GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection, at most 1 MB: WGS 84 lon/lat (RFC 7946), " +
          'or any EPSG CRS named by a legacy `crs` member ({"type": "name", "properties": {"name": "EPSG:32615"}}), reprojected',
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
        requireJsonBody(req, "the polygon");
        const area = parseStatsBody(req.body, await statsBodyCrs(req.body));
        const lease = hold(res, ctx.snapshots.acquire());
        const body = await statsQuery(lease, area, ctx.config.serving.statsMaxPixels);
        if (format === "arrow") return sendBytes(res, statsArrow(body), ARROW_STREAM_MEDIA_TYPE);
        sendJson(res, body);
      },
    },
  ];
}
