/**
 * Model registry routes: the stored versions (legends, accuracy, the active flag), one version, and
 * activation (operator bearer token; problem+json 404 for an unknown version).
 */
import { z } from "zod";
import { parsePathParam, parseQuery } from "../../api/params.js";
import * as M from "../../api/model-schemas.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import { authorizeOperator } from "../../usecases/batch-runs.js";
import type { ServingContext } from "../../usecases/context.js";
import { activateModel, getModel, listModels } from "../../usecases/models.js";
import { parseActivateBody } from "../../usecases/activate-body.js";
import { reclassifyAround } from "../../usecases/reclassify.js";
import * as T from "../../api/train-schemas.js";
import { sendJson } from "../respond.js";
import { badRequest, noQuery, requestBase, type RouteDeps } from "./common.js";

/** A model version path segment: the model's content hash. */
const versionSegment = z
  .string()
  .regex(/^[0-9a-f]{16}$/, "is not a model version (16 lowercase hex digits)")
  .meta({ description: "model version from GET /v1/models" });

/** GET /v1/models, GET /v1/models/{version}, POST /v1/models/{version}/activate. */
export function registerModelRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
  const base = requestBase(deps);
  return [
    {
      method: "get",
      path: "/v1/models",
      operationId: "listModels",
      summary: "Stored model versions with their classes, accuracy and the active flag",
      tags: ["models"],
      query: noQuery,
      responses: {
        "200": ok("The model registry", { "application/json": M.ModelList }),
        "400": badRequest,
      },
      handle: async (req, res) => {
        parseQuery(noQuery, req.query);
        sendJson(res, await listModels(ctx, base(req)));
      },
    },
    {
      method: "get",
      path: "/v1/models/{version}",
      operationId: "getModel",
      summary: "One model version: legend, features, k, who/when, accuracy",
      tags: ["models"],
      query: noQuery,
      pathParams: { version: versionSegment },
      responses: {
        "200": ok("The model version", { "application/json": M.ModelDetail }),
        "400": badRequest,
        "404": problem("No such model version"),
      },
      handle: async (req, res) => {
        parseQuery(noQuery, req.query);
        const version = parsePathParam("version", versionSegment, req.params["version"]);
        sendJson(res, await getModel(ctx, version, base(req)));
      },
    },
    {
      method: "post",
      path: "/v1/models/{version}/activate",
      operationId: "activateModel",
      summary: "Make a version the active model of both lanes (operator token)",
      tags: ["models"],
      operator: true,
      guard: (req) => authorizeOperator(ctx, req.headers.authorization),
      query: noQuery,
      pathParams: { version: versionSegment },
      body: {
        description:
          'optional {"around": {"lon": -93.3, "lat": 15.7}}: also start a batch run around that point',
        required: false,
        content: { "application/json": T.ActivateRequestBody },
      },
      responses: {
        "200": ok("The new active pointer; speed workers switch for their next tile, batch on its next run", {
          "application/json": M.ActiveModelPointer.extend({ batchRun: T.BatchRunAfterActivation.optional() }),
        }),
        "400": badRequest,
        "401": problem("No bearer token"),
        "403": problem("Wrong bearer token"),
        "404": problem("No such model version"),
        "503": problem("No operator token configured"),
      },
      handle: async (req, res) => {
        parseQuery(noQuery, req.query);
        const version = parsePathParam("version", versionSegment, req.params["version"]);
        const body = parseActivateBody(req.body);
        const pointer = await activateModel(ctx, version);
        sendJson(
          res,
          body.around
            ? { ...pointer, batchRun: await reclassifyAround(ctx, body.around, base(req), body.viewport) }
            : pointer,
        );
      },
    },
  ];
}
