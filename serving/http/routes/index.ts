/**
 * The route table: every endpoint once, registered by one `register...Routes()` per tag (as titiler's
 * route factories are), each module holding the thin handlers that validate, call one use case and
 * render. The app registers exactly these routes and /openapi.json is generated from exactly this
 * table (shape: api/route-spec.ts), so the document cannot list an endpoint that does not exist or
 * miss one that does. The order here is the order of the document's paths.
 */
import type { RouteSpec } from "../../api/route-spec.js";
import type { ServingContext } from "../../usecases/context.js";
import { registerBatchRunRoutes } from "./batch-runs.js";
import type { RouteDeps } from "./common.js";
import { registerEventRoutes } from "./events.js";
import { registerLayerRoutes } from "./layers.js";
import { registerLabelRoutes } from "./labels.js";
import { registerTrainJobRoutes } from "./train-jobs.js";
import { registerMetaRoutes } from "./meta.js";
import { registerModelRoutes } from "./models.js";
import { registerPointRoutes } from "./point.js";
import { registerStacRoutes } from "./stac.js";
import { registerStatsRoutes } from "./stats.js";
import { registerTileRoutes } from "./tiles.js";
import { registerViewRoutes } from "./views.js";

export type { RouteDeps } from "./common.js";

/** Builds the route table over a serving context. */
export function buildRoutes(ctx: ServingContext, deps: RouteDeps): RouteSpec[] {
  return [
    ...registerMetaRoutes(ctx, deps),
    ...registerTileRoutes(ctx, deps),
    ...registerLayerRoutes(ctx),
    ...registerPointRoutes(ctx),
    ...registerStatsRoutes(ctx),
    ...registerViewRoutes(ctx),
    ...registerBatchRunRoutes(ctx, deps),
    ...registerModelRoutes(ctx, deps),
    ...registerEventRoutes(deps),
    ...registerStacRoutes(ctx, deps),
    ...registerLabelRoutes(ctx, deps),
    ...registerTrainJobRoutes(ctx, deps),
  ];
}
