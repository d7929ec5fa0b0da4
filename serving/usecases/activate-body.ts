/** The optional body of POST /v1/models/{version}/activate, checked with parameter names in errors. */
import { ActivateRequestBody } from "../api/train-schemas.js";
import { parseOptionalBody } from "../api/params.js";

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
  const b = parseOptionalBody(ActivateRequestBody, body);
  if (!b) return {};
  const bbox = b.bbox;
  if (!bbox) return b.around ? { around: b.around } : {};
  const [minLon, minLat, maxLon, maxLat] = bbox;
  return {
    around: b.around ?? { lon: (minLon + maxLon) / 2, lat: (minLat + maxLat) / 2 },
    viewport: { minLon, minLat, maxLon, maxLat },
  };
}
