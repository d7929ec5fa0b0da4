/**
 * What every route module of the table shares: the dependencies the app injects once (as titiler's
 * factories take theirs), the base URL of a request, the query schemas of endpoints that take no or
 * only a format parameter, and the problem responses many endpoints document.
 */
import type { Request, Response } from "express";
import { z } from "zod";
import type { Registry } from "prom-client";
import { formatParam, laneParam } from "../../api/params.js";
import { JSON_BODY_TYPES, problem } from "../../api/route-spec.js";
import { ProblemError } from "../../errors.js";
import type { EventHub } from "../events.js";
import type { ServedResult } from "../../view/served-result.js";
import type { Snapshot } from "../../view/snapshot.js";
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

/** Header values are 7-bit text: a model version is a hex digest, but never fail an answer on one. */
const headerText = (v: string): string => v.replace(/[^\x20-\x7e]/g, "?");

/**
 * Says who answered an image or file, which has no body field for it where a JSON answer has
 * `provenance` and `snapshot`: Lanemap-Tile-Id and Lanemap-Lane of the result drawn,
 * Lanemap-Model-Version of its model (a composite's newest source's; Lanemap-Sources, where a route
 * sets it, lists every source), Lanemap-Batch-Version of the snapshot's batch view (`v000042`, or
 * `none`) and Lanemap-Live-Position of its live view (the live KV bucket's last revision, or `none`):
 * the figures a JSON answer's `snapshot.batch.name` and `snapshot.live.position` give.
 */
export function setAnswerHeaders(res: Response, drawn: ServedResult, snapshot: Snapshot): void {
  res.setHeader("Lanemap-Tile-Id", drawn.tileId);
  res.setHeader("Lanemap-Lane", drawn.lane);
  res.setHeader("Lanemap-Model-Version", headerText(drawn.summary.modelVersion));
  res.setHeader("Lanemap-Batch-Version", snapshot.batch ? headerText(snapshot.batch.name) : "none");
  res.setHeader("Lanemap-Live-Position", snapshot.live ? String(snapshot.live.position) : "none");
}

/** The provenance headers a browser page may read across origins (CORS `Access-Control-Expose-Headers`). */
export const ANSWER_HEADERS = [
  "Lanemap-Tile-Id",
  "Lanemap-Lane",
  "Lanemap-Model-Version",
  "Lanemap-Batch-Version",
  "Lanemap-Live-Position",
] as const;
