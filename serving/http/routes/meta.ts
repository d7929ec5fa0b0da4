/**
 * Operations meta routes: liveness, readiness, Prometheus metrics and the OpenAPI document itself.
 */
import { z } from "zod";
import { ok, type RouteSpec } from "../../api/route-spec.js";
import * as S from "../../api/schemas.js";
import type { ServingContext } from "../../usecases/context.js";
import { readiness } from "../../usecases/views.js";
import { sendJson } from "../respond.js";
import type { RouteDeps } from "./common.js";

/** GET /health, /ready, /metrics and /openapi.json. */
export function registerMetaRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
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
  ];
}
