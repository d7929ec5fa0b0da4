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
