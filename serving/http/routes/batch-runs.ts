/**
 * Batch-run routes: start a rebuild (operator bearer token) and read a run's status.
 */
import { z } from "zod";
import { parseOptionalBody, parsePathParam, parseQuery, runIdSegment } from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import * as S from "../../api/schemas.js";
import { authorizeOperator, runStatus, triggerRun } from "../../usecases/batch-runs.js";
import type { ServingContext } from "../../usecases/context.js";
import { sendJson } from "../respond.js";
import { badRequest, noQuery, requestBase, type RouteDeps } from "./common.js";

const runsPostQuery = z.strictObject({
  full: z
    .enum(["true", "false"], { message: "must be true or false" })
    .optional()
    .meta({ description: "rebuild every tile rather than reuse unchanged results" }),
});
const runsPostBody = z.strictObject({
  full: z.boolean({ message: "must be a boolean" }).optional(),
  around: z
    .strictObject({
      lon: z.number().min(-180).max(180),
      lat: z.number().min(-90).max(90),
    })
    .optional()
    .meta({
      description:
        "a point of interest (WGS 84), e.g. the centre of the analyst's viewport: the run processes the tiles nearest it first (hilbert-around)",
    }),
});

/** POST /v1/batch/runs and GET /v1/batch/runs/{id}. */
export function registerBatchRunRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
  const base = requestBase(deps);
  return [
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
        description: 'optional {"full": true, "around": {"lon": -93.3, "lat": 15.7}}',
        required: false,
        content: { "application/json": runsPostBody },
      },
      responses: {
        "202": ok("Run started; Location names its status", { "application/json": S.RunAccepted }),
        "400": badRequest,
        "401": problem("No bearer token"),
        "403": problem("Wrong bearer token"),
        "409": problem(
          "A run is active: this server's (`active_run_id`), or another coordinator's holding the batch lease (`holder`)",
        ),
        "503": problem("No operator token configured, or no batch runner wired"),
      },
      handle: async (req, res) => {
        const q = parseQuery(runsPostQuery, req.query);
        const b = parseOptionalBody(runsPostBody, req.body);
        const full = b?.full ?? q.full === "true";
        const around = b?.around;
        const accepted = await triggerRun(ctx, full, base(req), around);
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
  ];
}
