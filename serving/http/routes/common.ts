/**
 * What every route module of the table shares: the dependencies the app injects once (as titiler's
 * factories take theirs), the base URL of a request, the query schemas of endpoints that take no or
 * only a format parameter, and the problem responses many endpoints document.
 */
import type { Request } from "express";
import { z } from "zod";
import type { Registry } from "prom-client";
import { formatParam, laneParam } from "../../api/params.js";
import { JSON_BODY_TYPES, problem } from "../../api/route-spec.js";
import { ProblemError } from "../../errors.js";
import type { EventHub } from "../events.js";
import { baseUrl } from "../respond.js";

/** The app's parts the route modules need besides the serving context. */
export interface RouteDeps {
  readonly events: EventHub;
  readonly registry: Registry;
  readonly openapi: () => unknown;
  readonly fallbackBase: () => string;
}

/** The base URL links in an answer start with: the request's, or the configured fallback. */
export const requestBase =
  (deps: RouteDeps) =>
  (req: Request): string =>
    baseUrl(req, deps.fallbackBase());

export const formatOnly = z.strictObject({ f: formatParam.optional() });
export const noQuery = z.strictObject({});
/**
 * The query of a cell's images: `lane` draws the answer that lane's listing (`/v1/tiles?lane=`)
 * gives for the cell, on its grid and bbox; without it (or `merged`) the id's own result.
 */
export const laneOnly = z.strictObject({ lane: laneParam.optional() });

export const badRequest = problem("A parameter is malformed; `invalid_params` names it");

/**
 * Refuses a body that is not JSON with 415 `unsupported-media-type` (RFC 9110 §15.5.16), before it is
 * read as anything: a text/plain GeoJSON is the client's mistake of media type, not an invalid label.
 * @throws ProblemError 415 naming the Content-Type.
 */
export function requireJsonBody(req: Request, what: string): void {
  const hasBody =
    req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
  if (hasBody && !req.is(JSON_BODY_TYPES))
    throw new ProblemError(
      415,
      "unsupported-media-type",
      "Unsupported media type",
      `send ${what} as application/json or application/geo+json`,
      {
        extensions: {
          invalid_params: [
            { name: "Content-Type", reason: "must be application/json or application/geo+json" },
          ],
        },
      },
    );
}
