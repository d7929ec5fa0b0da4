/** The optional body of POST /v1/models/{version}/activate, checked with parameter names in errors. */
import { ActivateRequestBody } from "../api/train-schemas.js";
import { InvalidParamsError } from "../errors.js";

/** The viewport of an activation, WGS 84 degrees. */
export interface Viewport {
  readonly minLon: number;
  readonly minLat: number;
  readonly maxLon: number;
  readonly maxLat: number;
}

/**
 * `{}` for no body; else the parsed `{around?, viewport?}` (`around` defaults to the viewport's centre).
 * @throws InvalidParamsError naming `body.around.lon` etc.
 */
export function parseActivateBody(body: unknown): {
  around?: { lon: number; lat: number };
  viewport?: Viewport;
} {
  if (body === undefined || body === null || (typeof body === "object" && Object.keys(body).length === 0))
    return {};
  const b = ActivateRequestBody.safeParse(body);
  if (!b.success)
    throw new InvalidParamsError(
      b.error.issues.map((i) => ({
        name:
          i.code === "unrecognized_keys"
            ? `body.${i.keys.join(",")}`
            : ["body", ...i.path.map(String)].join("."),
        reason: i.code === "unrecognized_keys" ? "is not a member of this body" : i.message,
      })),
    );
  const bbox = b.data.bbox;
  if (!bbox) return b.data.around ? { around: b.data.around } : {};
  const [minLon, minLat, maxLon, maxLat] = bbox;
  return {
    around: b.data.around ?? { lon: (minLon + maxLon) / 2, lat: (minLat + maxLat) / 2 },
    viewport: { minLon, minLat, maxLon, maxLat },
  };
}
