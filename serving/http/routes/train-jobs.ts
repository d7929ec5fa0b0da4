/**
 * Training-job routes: POST /v1/models starts a job that trains a model from the current label set
 * (operator token; 202 with the job id, 409 while one runs), GET /v1/jobs/{id} reports it, and every
 * step is a `train-job` event on /v1/events.
 */
import { z } from "zod";
import { parseOptionalBody, parsePathParam, parseQuery } from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import * as T from "../../api/train-schemas.js";
import { ProblemError } from "../../errors.js";
import { authorizeOperator } from "../../usecases/batch-runs.js";
import type { ServingContext } from "../../usecases/context.js";
import { sendJson } from "../respond.js";
import { badRequest, noQuery, requestBase, type RouteDeps } from "./common.js";

const jobId = z
  .string()
  .regex(/^train-[0-9A-Za-z-]{1,64}$/, "is not a training job id")
  .meta({ description: "job id returned by POST /v1/models" });

function jobs(ctx: ServingContext) {
  if (!ctx.trainJobs)
    throw new ProblemError(
      503,
      "training-unavailable",
      "Training unavailable",
      "this serving process has no model trainer wired (run `lanemap start`, or a process that has one)",
    );
  return ctx.trainJobs;
}

/** POST /v1/models and GET /v1/jobs/{id}. */
export function registerTrainJobRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
  const base = requestBase(deps);
  return [
    {
      method: "post",
      path: "/v1/models",
      operationId: "trainModel",
      summary: "Train a model from the current label set, as a job (operator token)",
      tags: ["models"],
      operator: true,
      guard: (req) => authorizeOperator(ctx, req.headers.authorization),
      query: noQuery,
      body: {
        description: 'optional {"k": 5}',
        required: false,
        content: { "application/json": T.TrainRequestBody },
      },
      responses: {
        "202": ok("Job started; Location names its status", { "application/json": T.TrainAccepted }),
        "400": badRequest,
        "401": problem("No bearer token"),
        "403": problem("Wrong bearer token"),
        "409": problem("A training job is running"),
        "503": problem("No operator token configured, or no trainer wired"),
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        const b = parseOptionalBody(T.TrainRequestBody, req.body);
        const k = b?.k;
        const maxSamplesPerFeature = b?.maxSamplesPerFeature;
        const s = jobs(ctx).start({
          ...(k === undefined ? {} : { k }),
          ...(maxSamplesPerFeature === undefined ? {} : { maxSamplesPerFeature }),
        });
        const status = `${base(req)}/v1/jobs/${encodeURIComponent(s.jobId)}`;
        res.status(202).setHeader("Location", status);
        sendJson(res, { jobId: s.jobId, status, events: `${base(req)}/v1/events` });
      },
    },
    {
      method: "get",
      path: "/v1/jobs/{id}",
      operationId: "getTrainJob",
      summary: "A training job's status; its model version once it succeeded",
      tags: ["models"],
      query: noQuery,
      pathParams: { id: jobId },
      responses: {
        "200": ok("Job status", { "application/json": T.TrainJobSchema }),
        "400": badRequest,
        "404": problem("No such job"),
        "503": problem("No trainer wired"),
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        const id = parsePathParam("id", jobId, req.params["id"]);
        sendJson(res, jobs(ctx).status(id));
      },
    },
  ];
}
