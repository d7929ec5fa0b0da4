/**
 * The web map's files: the page at `/`, its script and stylesheet under `/web/`, and Leaflet from
 * node_modules under `/vendor/leaflet/`. Everything comes from this process, so the page works
 * offline and under the app's CSP ('self' only); there is no basemap to fetch.
 *
 * Only the files named here are served: the folder also holds this module's source, which is not
 * the page's business.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import express, { type RequestHandler, type Router } from "express";

/**
 * The page's own files, by the name they are requested as: `app.js` is the entry module and imports
 * the others (native ES modules, no bundler), so each one the page loads must be listed here.
 */
const PAGE_FILES: ReadonlySet<string> = new Set([
  "app.js",
  "constants.js",
  "dom.js",
  "format.js",
  "api.js",
  "state.js",
  "map.js",
  "images.js",
  "layers.js",
  "cells.js",
  "loading.js",
  "panel.js",
  "live.js",
  "freshness.js",
  "status.js",
  "composite.js",
  "loop.js",
  "style.css",
  "favicon.svg",
]);

/** Route labels for the request metrics: one per kind of file, never one per path. */
const ROUTE_PAGE = "/";
const ROUTE_WEB = "/web/{file}";
const ROUTE_VENDOR = "/vendor/leaflet/{file}";
const ROUTE_GEOMAN = "/vendor/geoman/{file}";

/** Where Leaflet's distribution files are, wherever npm placed the package. */
function leafletDist(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("leaflet/package.json")), "dist");
}

/** Where leaflet-geoman's distribution files are (the drawing tools of the labelling loop). */
function geomanDist(): string {
  const require = createRequire(import.meta.url);
  // The package exports its CSS but not its package.json.
  return dirname(require.resolve("@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css"));
}

function label(route: string): RequestHandler {
  return (_req, res, next) => {
    res.locals["route"] = route;
    next();
  };
}

/**
 * A router serving the web map. Mount it before the 404 handler; it passes every other request on.
 * Page files are revalidated on each load (they change with the deployment); Leaflet's files are
 * those of the installed version and may be cached for a day.
 */
export function webAssets(): Router {
  const pageDir = dirname(fileURLToPath(import.meta.url));
  const router = express.Router();

  router.get("/", label(ROUTE_PAGE), (_req, res, next) => {
    res.setHeader("Cache-Control", "no-cache");
    res.sendFile("index.html", { root: pageDir, dotfiles: "deny" }, (err) => {
      if (err) next(err);
    });
  });

  router.get("/web/:file", (req, res, next) => {
    const file = req.params["file"];
    if (file === undefined || !PAGE_FILES.has(file)) return next();
    res.locals["route"] = ROUTE_WEB;
    res.setHeader("Cache-Control", "no-cache");
    res.sendFile(file, { root: pageDir, dotfiles: "deny" }, (err) => {
      if (err) next(err);
    });
  });

  router.use(
    "/vendor/leaflet",
    label(ROUTE_VENDOR),
    express.static(leafletDist(), {
      index: false,
      dotfiles: "deny",
      fallthrough: true,
      maxAge: "1d",
    }),
  );

  router.use(
    "/vendor/geoman",
    label(ROUTE_GEOMAN),
    express.static(geomanDist(), { index: false, dotfiles: "deny", fallthrough: true, maxAge: "1d" }),
  );

  return router;
}
