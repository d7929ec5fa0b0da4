/**
 * The serving API as the page calls it: JSON answers, problems turned into errors.
 */

/** An answer that was not 2xx, with the problem's detail when the body is a problem document. */
export class ApiError extends Error {
  constructor(path, status, detail) {
    super(`${path}: ${status} ${detail}`);
    this.name = "ApiError";
    this.status = status;
  }
}

export async function api(path) {
  const res = await fetch(path, { headers: { Accept: "application/json, application/geo+json" } });
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const p = await res.json();
      detail = p.detail ?? p.title ?? detail;
    } catch {
      // Not a problem document: the status text says enough.
    }
    throw new ApiError(path, res.status, detail);
  }
  return res.json();
}

export const tilePath = (id) => `/v1/tiles/${encodeURIComponent(id)}`;

/**
 * The path of a cell's image in `lane`: the merged view's by cell key, one lane's as that lane's
 * listing (`/v1/tiles?lane=`) answers the cell (`?lane=`: its per-pixel composite on the listing's
 * grid, or its tile alone), so the image always has the listing's width and height.
 * @param {string} cell  the cell key
 * @param {string} name  the image, e.g. "classes.png" or "source.png?preset=true-colour"
 * @param {"merged" | "batch" | "live"} lane
 */
export const cellImagePath = (cell, name, lane) => {
  const path = `${tilePath(cell)}/${name}`;
  if (lane === "merged") return path;
  return `${path}${name.includes("?") ? "&" : "?"}lane=${encodeURIComponent(lane)}`;
};
