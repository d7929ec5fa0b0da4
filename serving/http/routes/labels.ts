/**
 * Label routes (labels as data): add labels (operator token), read the label set, remove a label
 * (operator token). Every change is a new label-set version and a `labels-change` event on
 * /v1/events, so every open map hears it.
 */
import { z } from "zod";
import { parsePathParam, parseQuery } from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import * as L from "../../api/label-schemas.js";
import { authorizeOperator } from "../../usecases/batch-runs.js";
import type { ServingContext } from "../../usecases/context.js";
import { addLabels, listLabels, removeLabel } from "../../usecases/labels.js";
import { MEDIA, sendJson } from "../respond.js";
import { badRequest, noQuery, requireJsonBody, type RouteDeps } from "./common.js";

const labelsGetQuery = z.strictObject({
  version: z
    .string()
    .regex(/^\d{1,9}$/, "must be a label-set version (a whole number)")
    .optional()
    .meta({ description: "an earlier label-set version (default: the newest)" }),
});
const labelId = z
  .string()
  .regex(/^lbl-[0-9a-f]{12}$/, "is not a label id (lbl- and 12 hex digits)")
  .meta({ description: "label id returned by POST /v1/labels" });

/** Who made a change: the operator (the token names no person); a label's own `author` wins. */
const OPERATOR_AUTHOR = "operator";

/** POST /v1/labels, GET /v1/labels, DELETE /v1/labels/{id}. */
export function registerLabelRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
  const guard = (req: { headers: { authorization?: string | undefined } }) =>
    authorizeOperator(ctx, req.headers.authorization);
  return [
    {
      method: "post",
      path: "/v1/labels",
      operationId: "addLabels",
      summary: "Add labels: a GeoJSON Feature or FeatureCollection (operator token)",
      tags: ["labels"],
      operator: true,
      guard,
      query: noQuery,
      body: {
        description: "the labels; at most 5,000 features and 200,000 positions",
        required: true,
        content: { "application/json": L.LabelsRequestBody, "application/geo+json": L.LabelsRequestBody },
      },
      responses: {
        "201": ok("Stored as one new label-set version", { "application/json": L.LabelsAdded }),
        "400": badRequest,
        "401": problem("No bearer token"),
        "403": problem("Wrong bearer token"),
        "413": problem("The body is over the size limit"),
        "415": problem("The body is not JSON (Content-Type application/json or application/geo+json)"),
        "422": problem("A label is invalid; `invalid_params` names the field"),
        "503": problem("No operator token configured"),
      },
      handle: async (req, res) => {
        parseQuery(noQuery, req.query);
        requireJsonBody(req, "the labels");
        const added = await addLabels(ctx, req.body, OPERATOR_AUTHOR);
        deps.events.publish("labels-change", { labelSetVersion: added.labelSetVersion, added: added.ids });
        res.status(201);
        sendJson(res, added);
      },
    },
    {
      method: "get",
      path: "/v1/labels",
      operationId: "listLabels",
      summary: "The label set as a GeoJSON FeatureCollection with its version",
      tags: ["labels"],
      query: labelsGetQuery,
      responses: {
        "200": ok("The label set", { "application/geo+json": L.LabelSetCollection }),
        "400": badRequest,
        "404": problem("No such label-set version"),
      },
      handle: async (req, res) => {
        const q = parseQuery(labelsGetQuery, req.query);
        const body = await listLabels(ctx, q.version === undefined ? undefined : Number(q.version));
        sendJson(res, body, MEDIA.geojson);
      },
    },
    {
      method: "delete",
      path: "/v1/labels/{id}",
      operationId: "removeLabel",
      summary: "Remove a label (operator token); a new label-set version",
      tags: ["labels"],
      operator: true,
      guard,
      query: noQuery,
      pathParams: { id: labelId },
      responses: {
        "200": ok("Removed", { "application/json": L.LabelRemoved }),
        "400": badRequest,
        "401": problem("No bearer token"),
        "403": problem("Wrong bearer token"),
        "404": problem("No such label in the current set"),
        "503": problem("No operator token configured"),
      },
      handle: async (req, res) => {
        parseQuery(noQuery, req.query);
        const id = parsePathParam("id", labelId, req.params["id"]);
        const removed = await removeLabel(ctx, id, OPERATOR_AUTHOR);
        deps.events.publish("labels-change", { labelSetVersion: removed.labelSetVersion, removed: [id] });
        sendJson(res, removed);
      },
    },
  ];
}
