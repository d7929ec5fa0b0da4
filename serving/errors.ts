/**
 * Errors the serving layer throws on purpose. Each becomes one RFC 9457 problem body in the single
 * error middleware (serving/http/problem.ts); routes and use cases never write error responses.
 */
import type { LeaseHolder } from "../shared/adapters/nats/index.js";
import { LanemapError, codeOfSlug, type ProblemSlug } from "../shared/index.js";

/** One bad parameter of a request: its name (query key, path segment, `body` or a body path) and why. */
export interface InvalidParam {
  readonly name: string;
  readonly reason: string;
}

/** Where problem `type` URIs live; relative so they resolve against whichever host serves them. */
export const PROBLEM_BASE = "/problems/";

/**
 * An error that is an HTTP answer: status, a stable problem slug (the `type`), a short title and a
 * detail for this occurrence. `extensions` are extra members of the problem body (RFC 9457 §3.2).
 * The slug is an error code of shared/errors.ts in kebab case, and the code is that one: a problem
 * type is a word of the same closed vocabulary as every other error.
 */
export class ProblemError extends LanemapError {
  readonly status: number;
  readonly slug: ProblemSlug;
  readonly title: string;
  readonly extensions: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    status: number,
    slug: ProblemSlug,
    title: string,
    detail: string,
    options: {
      cause?: unknown;
      extensions?: Record<string, unknown>;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(codeOfSlug(slug), detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.slug = slug;
    this.title = title;
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }
}

/** 400: one or more parameters are malformed; names each of them. */
export class InvalidParamsError extends ProblemError {
  readonly invalidParams: readonly InvalidParam[];
  constructor(invalidParams: readonly InvalidParam[], options: { cause?: unknown } = {}) {
    const names = invalidParams.map((p) => p.name).join(", ");
    super(
      400,
      "invalid-parameters",
      "Invalid request parameters",
      invalidParams.length === 1
        ? `parameter "${invalidParams[0]?.name}" ${invalidParams[0]?.reason}`
        : `invalid parameters: ${names}`,
      { ...options, extensions: { invalid_params: invalidParams } },
    );
    this.invalidParams = invalidParams;
  }
}

/** 404: the id names nothing in this snapshot (or the route does not exist). */
export class NotFoundError extends ProblemError {
  constructor(detail: string, slug: ProblemSlug = "not-found") {
    super(404, slug, "Not found", detail);
  }
}

/** 410: a paging cursor refers to a snapshot that is no longer retained. */
export class CursorExpiredError extends ProblemError {
  constructor(detail: string) {
    super(410, "cursor-expired", "Cursor expired", detail);
  }
}

/**
 * The geometry would cost more scanline work than one request may take: its vertices times the
 * raster rows of the cells its edge cuts (every row of a cut cell is intersected with every edge).
 * Refused before any of it is done, so a small area with a very long outline cannot hold the event
 * loop (and every other request) for seconds.
 */
export class GeometryTooComplexError extends ProblemError {
  constructor(vertexRows: number, limit: number, vertices: number) {
    super(
      422,
      "geometry-too-complex",
      "Geometry too complex",
      `the polygon's ${vertices} vertices times the raster rows of the cells its edge cuts make ${vertexRows} vertex-rows of work, over the limit of ${limit} (MAX_STATS_VERTEX_ROWS); simplify the polygon or split it into smaller areas`,
      { extensions: { limit, estimated_vertex_rows: vertexRows, vertices } },
    );
  }
}

/** 422: a statistics area covers more class-raster pixels than the configured limit. */
export class AreaTooLargeError extends ProblemError {
  constructor(estimatedPixels: number, limit: number) {
    super(
      422,
      "area-too-large",
      "Area too large",
      `the area covers an estimated ${estimatedPixels} class-raster pixels, over the limit of ${limit} (LANEMAP_STATS_MAX_PIXELS); split it into smaller areas`,
      { extensions: { limit, estimated_pixels: estimatedPixels } },
    );
  }
}

/**
 * A batch run cannot start because one is active. A BatchTrigger adapter throws this (or any error
 * with code BATCH_RUN_ACTIVE, as the batch lane's lock does) so that POST /v1/batch/runs answers 409
 * naming the active run: this server's (`activeRunId`), or another coordinator's holding the batch
 * coordinator lease (`holder`, and `detail` its one line, as `lanemap batch run` prints it).
 */
export class BatchRunActiveError extends LanemapError {
  readonly activeRunId: string | undefined;
  readonly holder: LeaseHolder | undefined;
  constructor(
    activeRunId?: string,
    options: { cause?: unknown; holder?: LeaseHolder; detail?: string } = {},
  ) {
    super(
      "BATCH_RUN_ACTIVE",
      options.detail ?? (activeRunId ? `batch run ${activeRunId} is active` : "a batch run is active"),
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.activeRunId = activeRunId;
    this.holder = options.holder;
  }
}
