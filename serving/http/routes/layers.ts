/**
 * Map layers of a tile beside its classes: the archived source scene as a true- or false-colour PNG
 * (render parameters in titiler's vocabulary: `bidx`, `rescale`; see usecases/source-image.ts) and
 * the per-pixel kNN vote share as a confidence PNG (render/confidence.ts). Both take a cell key (the
 * cell's merged answer, what the map shows) or a tile id, as classes.png does. By cell key a
 * per-pixel composite draws each pixel from the acquisition its class came from, so imagery, classes
 * and confidence agree pixel for pixel; a tile id draws that very tile.
 */
import type { Request, Response } from "express";
import { z } from "zod";
import { laneParam, parsePathParam, parseQuery, tileIdSegment } from "../../api/params.js";
import { ok, problem, type RouteSpec } from "../../api/route-spec.js";
import { InvalidParamsError } from "../../errors.js";
import { confidencePng } from "../../render/confidence.js";
import { DEFAULT_PERCENTILES } from "../../render/stretch.js";
import type { ServingContext } from "../../usecases/context.js";
import { ModelBands } from "../../usecases/model-bands.js";
import { SOURCE_PRESETS, type SourceRenderRequest } from "../../usecases/source-image.js";
import { drawnTarget } from "../../usecases/tiles.js";
import { pixelSources } from "../../view/pixel-composite.js";
import type { ServedResult } from "../../view/served-result.js";
import { hold, sendBytes } from "../respond.js";
import { badRequest, laneOnly, setAnswerHeaders } from "./common.js";

/** A query value Express may give as a string or, for a repeated key, an array of strings. */
const repeatable = z.union([z.string(), z.array(z.string())]);

/** Every value of a repeatable parameter, comma lists split (`bidx=4,3,2` = `bidx=4&bidx=3&bidx=2`). */
const listOf = (v: string | string[]): string[] => (Array.isArray(v) ? v : [v]);

const bidxParam = repeatable
  .transform((v, ctx): number[] => {
    const parts = listOf(v).flatMap((s) => s.split(","));
    const nums = parts.map((p) => (/^\s*\d+\s*$/.test(p) ? Number(p) : NaN));
    if (!nums.every((n) => Number.isInteger(n) && n >= 1)) {
      ctx.addIssue({ code: "custom", message: "must be 1-based band indexes (integers from 1)" });
      return z.NEVER;
    }
    if (nums.length !== 1 && nums.length !== 3) {
      ctx.addIssue({
        code: "custom",
        message: `must name 1 band (grey) or 3 (red, green, blue), got ${nums.length}`,
      });
      return z.NEVER;
    }
    return nums;
  })
  .meta({
    description:
      "1-based band indexes drawn as red, green, blue (or one band as grey), repeated or comma-separated (titiler's `bidx`)",
    example: "4,3,2",
  });

/** "a,b" with a < b, two finite numbers. */
function pair(s: string): [number, number] | null {
  const parts = s.split(",");
  if (parts.length !== 2) return null;
  const [a, b] = parts.map((p) => (p.trim() === "" ? NaN : Number(p))) as [number, number];
  return Number.isFinite(a) && Number.isFinite(b) && a < b ? [a, b] : null;
}

const rescaleParam = repeatable
  .transform((v, ctx) => {
    const ranges = listOf(v).map(pair);
    if (!ranges.every((r) => r !== null)) {
      ctx.addIssue({
        code: "custom",
        message: 'must be "min,max" with min < max (stored values), repeated per band',
      });
      return z.NEVER;
    }
    return ranges.map(([min, max]) => ({ min, max }));
  })
  .meta({
    description:
      "Stretch limits \"min,max\" in the bands' stored values: once for every band, or once per band (titiler's `rescale`); default: the `percentiles` cut",
    example: "0,3000",
  });

const percentilesParam = z
  .string()
  .transform((s, ctx): [number, number] => {
    const p = pair(s);
    if (!p || p[0] < 0 || p[1] > 100) {
      ctx.addIssue({ code: "custom", message: 'must be "low,high" percents with 0 <= low < high <= 100' });
      return z.NEVER;
    }
    return p;
  })
  .meta({
    description:
      "Each band's low and high percentiles of its valid pixels stretched to 0 and 255 when no `rescale` is given (QGIS's cumulative count cut; default 2,98)",
    example: "2,98",
  });

const sourceQuery = z.strictObject({
  preset: z.enum(SOURCE_PRESETS).optional().meta({
    description:
      "true-colour (red, green, blue) or false-colour (near infrared, red, green), from the model's feature spec when it names red and NIR, else Landsat TM/ETM+ order (3,2,1 and 4,3,2); default true-colour",
  }),
  bidx: bidxParam.optional(),
  rescale: rescaleParam.optional(),
  percentiles: percentilesParam.optional(),
  lane: laneParam.optional(),
});

/** What `Lanemap-Sources` means, in both layers' OpenAPI descriptions. */
const SOURCES_HEADER =
  "Lanemap-Sources lists the tile ids of the acquisitions drawn, newest first: by cell key with a per-pixel composite, " +
  "each source that gives at least one pixel (as /v1/tiles/{id} counts them); otherwise the one tile drawn";

/**
 * Sets `Lanemap-Sources` on a layer of `drawn` (SOURCES_HEADER), so that every layer of a cell
 * names its acquisitions the same way and a client need not ask /v1/tiles/{id} which they were.
 * A composite's sources are composed once and memoised, so a layer that drew it pays nothing more.
 */
async function setSourcesHeader(res: Response, drawn: ServedResult): Promise<void> {
  let sources: readonly ServedResult[] = [drawn];
  if (drawn.composite) {
    const composed = await drawn.composite.compose();
    sources = composed.sources.filter((_, i) => (composed.contributions[i] ?? 0) > 0);
  }
  // Tile ids match TILE_ID_PATTERN (7-bit, no commas), so the list is a valid header value.
  res.setHeader("Lanemap-Sources", sources.map((r) => r.tileId).join(","));
}

/** GET /v1/tiles/{id}/source.png and /v1/tiles/{id}/confidence.png. */
export function registerLayerRoutes(ctx: ServingContext): RouteSpec[] {
  const idParam = { id: tileIdSegment };
  const modelBands = new ModelBands();
  const tileNotFound = problem("No cell or tile with this id in the current snapshot");

  const drawnOf = (req: Request, res: Response, lane: "merged" | "batch" | "live" | undefined) => {
    const id = parsePathParam("id", tileIdSegment, req.params["id"]);
    const lease = hold(res, ctx.snapshots.acquire());
    return { lease, drawn: drawnTarget(lease, id, lane) };
  };

  return [
    {
      method: "get",
      path: "/v1/tiles/{id}/source.png",
      operationId: "getTileSourcePng",
      summary:
        "The archived source scene as an RGBA PNG (true or false colour, per-band 2-98 % stretch by default; nodata transparent)",
      tags: ["tiles"],
      query: sourceQuery,
      pathParams: idParam,
      responses: {
        "200": ok(
          "PNG; headers Lanemap-Bands (and Lanemap-Bands-From: bidx, feature-spec or landsat-order) and Lanemap-Rescale say what was drawn. " +
            "By cell key a per-pixel composite draws each pixel from the acquisition its class came from (the stretch is over the " +
            `composite's pixels; Lanemap-Bands are the newest source's). ${SOURCES_HEADER}`,
          {
            "image/png": "binary",
          },
        ),
        "400": badRequest,
        "404": problem("No such cell or tile, or its source is not in the archive"),
        "422": problem("The archived source cannot be decoded or is over the pixel budget"),
        "503": problem(
          "Too many source tiles are being decoded (render-busy); Retry-After says when to retry",
        ),
      },
      handle: async (req, res) => {
        const q = parseQuery(sourceQuery, req.query);
        const { lease, drawn } = drawnOf(req, res, q.lane);
        const render: SourceRenderRequest = {
          bidx: q.bidx ?? null,
          preset: q.preset ?? null,
          rescale: q.rescale ?? null,
          percentiles: q.percentiles ?? DEFAULT_PERCENTILES,
        };
        if (render.bidx && render.preset)
          throw new InvalidParamsError([{ name: "preset", reason: "give either preset or bidx, not both" }]);
        if (drawn.composite) {
          const image = await ctx.sourceImages.renderComposite(await pixelSources(drawn), render, (r) =>
            modelBands.of(lease, r),
          );
          setAnswerHeaders(res, drawn, lease.snapshot);
          await setSourcesHeader(res, drawn);
          res.setHeader("Lanemap-Bands", image.bands.join(","));
          res.setHeader("Lanemap-Bands-From", image.bandsFrom);
          res.setHeader(
            "Lanemap-Rescale",
            image.ranges.map((r) => (r ? `${r.min},${r.max}` : "none")).join(";"),
          );
          return sendBytes(res, image.png, "image/png");
        }
        const spectral = render.bidx ? null : await modelBands.of(lease, drawn);
        const image = await ctx.sourceImages.render(drawn, render, spectral);
        setAnswerHeaders(res, drawn, lease.snapshot);
        await setSourcesHeader(res, drawn);
        res.setHeader("Lanemap-Bands", image.bands.join(","));
        res.setHeader("Lanemap-Bands-From", image.bandsFrom);
        res.setHeader(
          "Lanemap-Rescale",
          image.ranges.map((r) => (r ? `${r.min},${r.max}` : "none")).join(";"),
        );
        sendBytes(res, image.png, "image/png");
      },
    },
    {
      method: "get",
      path: "/v1/tiles/{id}/confidence.png",
      operationId: "getTileConfidencePng",
      summary:
        "Per-pixel kNN vote share (votes / k) as a palette PNG on ColorBrewer YlOrRd reversed: the lower the share, the deeper the red; not classified transparent",
      tags: ["tiles"],
      query: laneOnly,
      pathParams: idParam,
      responses: {
        "200": ok(
          "PNG; headers Lanemap-K and Lanemap-Model-Version. By cell key a per-pixel composite gives each pixel the vote share " +
            `of the acquisition its class came from. ${SOURCES_HEADER}`,
          { "image/png": "binary" },
        ),
        "400": badRequest,
        "404": tileNotFound,
      },
      handle: async (req, res) => {
        const q = parseQuery(laneOnly, req.query);
        const { lease, drawn } = drawnOf(req, res, q.lane);
        const raster = await drawn.raster();
        const png = confidencePng(raster);
        setAnswerHeaders(res, drawn, lease.snapshot);
        res.setHeader("Lanemap-K", String(raster.k));
        await setSourcesHeader(res, drawn);
        sendBytes(res, png, "image/png");
      },
    },
  ];
}
