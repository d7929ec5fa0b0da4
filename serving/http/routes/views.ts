/**
 * The views route: batch versions (current, watermark, counts) and the live view's position and lag.
 */
import { parseQuery } from "../../api/params.js";
import { ok, type RouteSpec } from "../../api/route-spec.js";
import * as S from "../../api/schemas.js";
import type { ServingContext } from "../../usecases/context.js";
import { viewsQuery } from "../../usecases/views.js";
import { hold, sendJson } from "../respond.js";
import { badRequest, noQuery } from "./common.js";

/** GET /v1/views. */
export function registerViewRoutes(ctx: ServingContext): RouteSpec[] {
  return [
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
  ];
}
