/** Small response helpers shared by the routes: formats, snapshot leases, links. */
import type { Request, Response } from "express";
import { ARROW_STREAM_MEDIA_TYPE } from "../../shared/adapters/arrow/index.js";
import { InvalidParamsError, ProblemError } from "../errors.js";
import type { SnapshotLease } from "../view/snapshot.js";

/** Response formats an endpoint may offer. */
export type Format = "json" | "geojson" | "arrow";

/** The media type of each format. */
export const MEDIA: Readonly<Record<Format, string>> = {
  json: "application/json",
  geojson: "application/geo+json",
  arrow: ARROW_STREAM_MEDIA_TYPE,
};

/**
 * The format to answer in: `f=` when given (it must be one the endpoint offers), else the best
 * match of the Accept header (the first offered when there is none or it allows anything).
 */
export function negotiate(
  req: Request,
  f: Format | undefined,
  offered: readonly [Format, ...Format[]],
): Format {
  if (f !== undefined) {
    if (!offered.includes(f))
      throw new InvalidParamsError([{ name: "f", reason: `this endpoint answers ${offered.join(" or ")}` }]);
    return f;
  }
  if (!req.headers.accept) return offered[0];
  const m = req.accepts(offered.map((o) => MEDIA[o]));
  const hit = offered.find((o) => MEDIA[o] === m);
  if (!hit)
    throw new ProblemError(
      406,
      "not-acceptable",
      "Not acceptable",
      `this endpoint answers ${offered.map((o) => MEDIA[o]).join(", ")}; the Accept header allows none of them`,
    );
  return hit;
}

/** Releases the lease when the response is done, however it ends (sent, failed or aborted). */
export function hold(res: Response, lease: SnapshotLease): SnapshotLease {
  res.once("close", () => lease.release());
  return lease;
}

const SAFE_HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * The absolute base URL for links in answers. The Host header comes from the client, so it is used
 * only when it looks like a host name; otherwise links fall back to the address serving listens on.
 */
export function baseUrl(req: Request, fallback: string): string {
  const host = req.headers.host;
  return host && SAFE_HOST.test(host) ? `${req.protocol}://${host}` : fallback;
}

/** The request's URL with `name` set to `value` (for `next` links). */
export function withParam(req: Request, base: string, name: string, value: string): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query as Record<string, unknown>))
    if (k !== name && typeof v === "string") params.set(k, v);
  params.set(name, value);
  return `${base}${req.path}?${params.toString()}`;
}

/** Sends JSON with an explicit media type (application/json, application/geo+json). */
export function sendJson(res: Response, body: unknown, media = MEDIA.json): void {
  res.type(media).send(JSON.stringify(body));
}

/** Sends bytes with a media type. */
export function sendBytes(res: Response, bytes: Uint8Array, media: string): void {
  res.type(media).send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}
