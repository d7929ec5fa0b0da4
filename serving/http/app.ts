/**
 * The Express app: security headers, CORS, request logging and timing, then exactly the routes of
 * the route table (each validating its input and calling one use case), a 405 for a known path
 * with another method, a 404 problem for anything else, and the one error middleware.
 */
import express, { type Express, type RequestHandler } from "express";
import helmet from "helmet";
import type { Logger } from "pino";
import { ProblemError } from "../errors.js";
import { JSON_BODY_TYPES, type RouteSpec } from "../api/route-spec.js";
import type { ServingMetrics } from "./metrics.js";
import { notFound, problemMiddleware } from "./problem.js";
import { ANSWER_HEADERS } from "./routes/common.js";
import { webAssets } from "../web/assets.js";

/** CORS per LANEMAP_CORS_ORIGINS: none (same origin only), a list, or `*`. */
export function cors(origins: readonly string[]): RequestHandler {
  if (origins.length === 0) return (_req, _res, next) => next();
  const any = origins.includes("*");
  const allowed = new Set(origins);
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (!any) res.vary("Origin");
    if (origin && (any || allowed.has(origin))) {
      res.setHeader("Access-Control-Allow-Origin", any ? "*" : origin);
      res.setHeader("Access-Control-Expose-Headers", ["Link", "Location", ...ANSWER_HEADERS].join(", "));
      if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
        res.setHeader("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        res.setHeader("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept");
        res.setHeader("Access-Control-Max-Age", "600");
        res.status(204).end();
        return;
      }
    }
    next();
  };
}

/**
 * Logs each finished request at debug (skipped cheaply when debug is off): one line per request
 * at info drowned what an operator needs to see; the request metrics count them anyway.
 */
function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    if (!logger.isLevelEnabled("debug")) return next();
    const start = performance.now();
    res.once("finish", () => {
      logger.debug(
        {
          method: req.method,
          url: req.originalUrl,
          route: res.locals["route"] ?? null,
          status: res.statusCode,
          ms: Math.round((performance.now() - start) * 100) / 100,
        },
        "request",
      );
    });
    next();
  };
}

/** `/v1/tiles/{id}` -> `/v1/tiles/:id`. */
export function expressPath(openApiPath: string): string {
  return openApiPath.replace(/\{([A-Za-z]+)\}/g, ":$1");
}

/** Builds the app over a route table. */
export function createApp(options: {
  routes: readonly RouteSpec[];
  logger: Logger;
  metrics: ServingMetrics;
  corsOrigins: readonly string[];
  bodyLimit: string | number;
}): Express {
  const app = express();
  app.disable("x-powered-by");
  // Answers change with every snapshot; hashing large bodies for ETags would only cost CPU.
  app.set("etag", false);
  app.use(options.metrics.middleware());
  app.use(requestLog(options.logger));
  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: true,
        directives: {
          // The web page will be served from here: its own scripts and styles, map images, SSE.
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", "data:", "blob:"],
          connectSrc: ["'self'"],
          workerSrc: ["'self'", "blob:"],
          objectSrc: ["'none'"],
          frameAncestors: ["'self'"],
          // Served over plain HTTP on a LAN too: upgrading would make the browser fetch https:// and fail.
          upgradeInsecureRequests: null,
        },
      },
      crossOriginResourcePolicy: { policy: options.corsOrigins.length ? "cross-origin" : "same-origin" },
    }),
  );
  app.use(cors(options.corsOrigins));
  const json = express.json({ limit: options.bodyLimit, type: JSON_BODY_TYPES, strict: true });
  const methods = new Map<string, string[]>();
  for (const r of options.routes) {
    const path = expressPath(r.path);
    const label: RequestHandler = (_req, res, next) => {
      res.locals["route"] = r.path;
      next();
    };
    const handler: RequestHandler = (req, res) => r.handle(req, res);
    const guard: RequestHandler = (req, _res, next) => {
      try {
        r.guard?.(req);
        next();
      } catch (err) {
        next(err);
      }
    };
    if (r.method === "post") app.post(path, label, guard, json, handler);
    else if (r.method === "delete") app.delete(path, label, guard, handler);
    else app.get(path, label, guard, handler);
    const list = methods.get(path) ?? [];
    list.push(r.method.toUpperCase());
    if (r.method === "get") list.push("HEAD");
    methods.set(path, list);
  }
  for (const [path, list] of methods) {
    const allow = [...list, "OPTIONS"].join(", ");
    app.all(path, (req, res, next) => {
      res.locals["route"] = path;
      if (req.method === "OPTIONS") {
        res.setHeader("Allow", allow);
        res.status(204).end();
        return;
      }
      next(
        new ProblemError(
          405,
          "method-not-allowed",
          "Method not allowed",
          `${req.method} is not allowed here; use ${allow}`,
          {
            headers: { Allow: allow },
          },
        ),
      );
    });
  }
  app.use(webAssets());
  app.use(notFound());
  app.use(problemMiddleware(options.logger));
  return app;
}
