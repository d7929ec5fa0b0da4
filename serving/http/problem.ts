/**
 * The one error middleware: everything thrown or passed to next() ends as one
 * `application/problem+json` body (RFC 9457). Client mistakes that Express and body-parser detect
 * (bad JSON, a body over the limit, a malformed path escape) become 4xx problems naming the part
 * of the request at fault; anything unexpected is logged with its stack and answered with a 500
 * that does not leak internals.
 */
import type { ErrorRequestHandler, Request, RequestHandler, Response } from "express";
import type { Logger } from "pino";
import { ERROR_CODES, describeError, errorCode, problemSlug } from "../../shared/index.js";
import { InvalidParamsError, NotFoundError, PROBLEM_BASE, ProblemError } from "../errors.js";

/** RFC 9457 media type of every error answer. */
export const PROBLEM_MEDIA_TYPE = "application/problem+json";

/** Writes a problem (unless the response already started, e.g. an event stream). */
export function sendProblem(req: Request, res: Response, p: ProblemError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [k, v] of Object.entries(p.headers)) res.setHeader(k, v);
  res
    .status(p.status)
    .type(PROBLEM_MEDIA_TYPE)
    .send(
      JSON.stringify({
        type: PROBLEM_BASE + p.slug,
        title: p.title,
        status: p.status,
        detail: p.message,
        instance: req.originalUrl.split("?")[0],
        ...p.extensions,
      }),
    );
}

interface HttpishError {
  status?: unknown;
  statusCode?: unknown;
  type?: unknown;
  limit?: unknown;
  expose?: unknown;
}

/** Maps errors from Express, the router and body-parser to problems; null when it is not one. */
function fromFrameworkError(err: unknown): ProblemError | null {
  const e = err as HttpishError;
  const status =
    typeof e?.status === "number" ? e.status : typeof e?.statusCode === "number" ? e.statusCode : null;
  if (status === null || status < 400 || status >= 500) return null;
  switch (e.type) {
    case "entity.too.large":
      return new ProblemError(
        413,
        "body-too-large",
        "Request body too large",
        `the request body is over the ${typeof e.limit === "number" ? e.limit : "allowed"} byte limit`,
        {
          cause: err,
          extensions: {
            invalid_params: [{ name: "body", reason: "is too large" }],
            ...(typeof e.limit === "number" ? { limit: e.limit } : {}),
          },
        },
      );
    case "entity.parse.failed":
      return new InvalidParamsError([{ name: "body", reason: "is not valid JSON" }], { cause: err });
    case "encoding.unsupported":
    case "charset.unsupported":
      return new ProblemError(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        (err as Error).message,
        {
          cause: err,
          extensions: {
            invalid_params: [{ name: "Content-Type", reason: "names an unsupported charset or encoding" }],
          },
        },
      );
    case "request.aborted":
    case "request.size.invalid":
      return new InvalidParamsError([{ name: "body", reason: "was not received whole" }], { cause: err });
    default:
      if (err instanceof URIError || /decode param/i.test((err as Error).message ?? ""))
        return new InvalidParamsError([{ name: "path", reason: "contains a malformed percent-escape" }], {
          cause: err,
        });
      return new ProblemError(status, "bad-request", "Bad request", (err as Error).message ?? "bad request", {
        cause: err,
      });
  }
}

/** The catch-all for unknown routes: a 404 problem naming the path. */
export function notFound(): RequestHandler {
  return (req, _res, next) =>
    next(new NotFoundError(`no route ${req.method} ${req.path}`, "route-not-found"));
}

/**
 * Everything else answers with its code's row of the error table (shared/errors.ts): a LanemapError
 * with a 4xx code is the client's to fix and says so (`type` = the code in kebab case, `title` = its
 * meaning); a 5xx, or anything not thrown on purpose, keeps its detail in the log, not the body.
 */
function fromThrown(err: unknown): ProblemError {
  const code = errorCode(err);
  const { status, meaning } = ERROR_CODES[code];
  if (status < 500)
    return new ProblemError(status, problemSlug(code), meaning, describeError(err), { cause: err });
  return new ProblemError(
    status,
    "internal",
    "Internal error",
    "the server failed to answer; the error was logged",
    {
      cause: err,
    },
  );
}

/** The error middleware (register last). */
export function problemMiddleware(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (err instanceof ProblemError) {
      if (err.status >= 500) logger.error({ err, url: req.originalUrl }, err.message);
      sendProblem(req, res, err);
      return;
    }
    const mapped = fromFrameworkError(err);
    if (mapped) {
      sendProblem(req, res, mapped);
      return;
    }
    const problem = fromThrown(err);
    if (problem.status >= 500)
      logger.error({ err, method: req.method, url: req.originalUrl }, "request failed");
    sendProblem(req, res, problem);
  };
}
