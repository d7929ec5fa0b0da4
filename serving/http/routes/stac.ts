/**
 * STAC API routes: landing page, conformance, the lanemap-tiles collection, its items and item search.
 */
import type { Request, Response } from "express";
import { z } from "zod";
import {
  bboxParam,
  cursorParam,
  datetimeParam,
  limitParam,
  parsePathParam,
  parseQuery,
  tileIdSegment,
} from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import * as S from "../../api/schemas.js";
import { InvalidParamsError, NotFoundError } from "../../errors.js";
import type { ServingContext } from "../../usecases/context.js";
import {
  requireCollection,
  stacCollection,
  stacCollections,
  stacItem,
  stacItemCollection,
  stacLanding,
  parseStacSearchBody,
} from "../../usecases/stac.js";
import { listTiles, resolveTarget } from "../../usecases/tiles.js";
import { hold, MEDIA, sendJson, withParam } from "../respond.js";
import { badRequest, noQuery, requestBase, type RouteDeps } from "./common.js";

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

/** GET /stac, /stac/conformance, /stac/collections[/{collectionId}[/items[/{itemId}]]] and /stac/search. */
export function registerStacRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
  const base = requestBase(deps);

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

  return [
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
