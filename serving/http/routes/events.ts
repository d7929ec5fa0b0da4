/**
 * The events route: server-sent events (hello, live-change, batch-switch) from the app's event hub.
 */
import { parseQuery } from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import { badRequest, noQuery, type RouteDeps } from "./common.js";

/** GET /v1/events. */
export function registerEventRoutes(deps: RouteDeps): RouteSpec[] {
  return [
    {
      method: "get",
      path: "/v1/events",
      operationId: "events",
      summary: "Server-sent events: live-change, batch-switch (hello first)",
      tags: ["operations"],
      query: noQuery,
      responses: {
        "200": ok("An event stream", { "text/event-stream": "text" }),
        "400": badRequest,
        "503": problem("Too many event streams"),
      },
      handle: (req, res) => {
        parseQuery(noQuery, req.query);
        deps.events.handle(req, res);
      },
    },
  ];
}
