/**
 * The point route: the class and confidence of the merged view (or one lane's) at a lon/lat.
 */
import { z } from "zod";
import { formatParam, laneParam, numberParam, parseQuery } from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import * as S from "../../api/schemas.js";
import type { ServingContext } from "../../usecases/context.js";
import { pointQuery } from "../../usecases/point.js";
import { hold, MEDIA, negotiate, sendJson } from "../respond.js";
import { badRequest } from "./common.js";

const pointQueryParams = z.strictObject({
  lon: numberParam(-180, 180, "longitude, WGS84 degrees"),
  lat: numberParam(-90, 90, "latitude, WGS84 degrees"),
  f: formatParam.optional(),
  lane: laneParam.optional(),
});

/** GET /v1/point. */
export function registerPointRoutes(ctx: ServingContext): RouteSpec[] {
  return [
    {
      method: "get",
      path: "/v1/point",
      operationId: "point",
      summary:
        "Class and confidence at a lon/lat (class 0 'not classified' on nodata); `lane` answers from that lane's result for the cell, as its listing and images give it",
      tags: ["queries"],
      query: pointQueryParams,
      responses: {
        "200": ok("The class at the point", {
          "application/json": S.PointAnswer,
          "application/geo+json": S.PointFeature,
        }),
        "400": badRequest,
        "404": problem("No tile of the merged view (or of `lane`) covers the point"),
        "406": problem("The Accept header allows none of the formats"),
      },
      handle: async (req, res) => {
        const q = parseQuery(pointQueryParams, req.query);
        const format = negotiate(req, q.f, ["json", "geojson"]);
        const lease = hold(res, ctx.snapshots.acquire());
        const body = await pointQuery(lease, q.lon, q.lat, q.lane);
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
  ];
}
