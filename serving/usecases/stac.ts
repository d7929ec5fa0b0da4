/**
 * A STAC (1.0.0) catalogue over the merged view: a landing page, one collection ("lanemap-tiles")
 * whose extent is computed from the snapshot, and item search. An item is the result a cell shows,
 * with the lanemap provenance as `lanemap:*` properties and three assets: the archived source tile,
 * the class raster (GeoTIFF) and its preview (PNG). Paging follows STAC's `next` link with a token
 * (the same snapshot-pinned cursor as /v1/tiles).
 */
import type {
  StacCollectionBody,
  StacCollectionsBody,
  StacItemBody,
  StacItemCollectionBody,
  StacLandingBody,
  StacLinkBody,
  StacSearchRequestBody,
} from "../api/schemas.js";
import { StacSearchRequest } from "../api/schemas.js";
import { bboxParam, datetimeParam, invalidParams, type TimeInterval } from "../api/params.js";
import type { Area } from "../geo/area.js";
import { parseStatsBody } from "./stats.js";
import { WHOLE_GLOBE, boxUnion, type Bounds } from "../../shared/index.js";
import { InvalidParamsError, NotFoundError } from "../errors.js";
import type { ServedResult } from "../view/served-result.js";
import type { SnapshotLease } from "../view/snapshot.js";
import { boundsPolygon, provenance } from "./present.js";
import type { TilePage } from "./tiles.js";

/** The STAC version the documents follow. */
export const STAC_VERSION = "1.0.0";
/** The one collection: per-cell results of the merged view. */
export const COLLECTION_ID = "lanemap-tiles";

const GEOJSON = "application/geo+json";
const JSON_TYPE = "application/json";
const GEOTIFF = "image/tiff; application=geotiff";

/** The conformance classes implemented (core, collections, item search, OGC Features core). */
export const CONFORMS_TO = [
  "https://api.stacspec.org/v1.0.0/core",
  "https://api.stacspec.org/v1.0.0/collections",
  "https://api.stacspec.org/v1.0.0/item-search",
  "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
  "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
];

/** The landing page. */
export function stacLanding(base: string): StacLandingBody {
  return {
    type: "Catalog",
    id: "lanemap",
    stac_version: STAC_VERSION,
    title: "lanemap",
    description: "Thematic class rasters of satellite tiles, batch and speed lanes merged per map cell",
    conformsTo: CONFORMS_TO,
    links: [
      { rel: "self", href: `${base}/stac`, type: JSON_TYPE },
      { rel: "root", href: `${base}/stac`, type: JSON_TYPE },
      { rel: "data", href: `${base}/stac/collections`, type: JSON_TYPE },
      { rel: "child", href: `${base}/stac/collections/${COLLECTION_ID}`, type: JSON_TYPE },
      { rel: "search", href: `${base}/stac/search`, type: GEOJSON, method: "GET" },
      { rel: "search", href: `${base}/stac/search`, type: GEOJSON, method: "POST" },
      {
        rel: "service-desc",
        href: `${base}/openapi.json`,
        type: "application/vnd.oai.openapi+json;version=3.1",
      },
    ],
  };
}

/** The collection, its extent taken from the merged view of the snapshot. */
export function stacCollection(lease: SnapshotLease, base: string): StacCollectionBody {
  let extent: Bounds | null = null;
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const r of lease.snapshot.index.picked("merged")) {
    t0 = Math.min(t0, r.acquiredMs);
    t1 = Math.max(t1, r.acquiredMs);
    const b = r.bounds;
    if (!b) continue;
    // The union the short way round: tiles either side of 180° make a west > east extent.
    extent = extent === null ? { ...b } : boxUnion(extent, b);
  }
  const e = extent ?? WHOLE_GLOBE;
  const bbox = [e.minX, e.minY, e.maxX, e.maxY];
  const interval: (string | null)[] =
    t0 <= t1 ? [new Date(t0).toISOString(), new Date(t1).toISOString()] : [null, null];
  return {
    type: "Collection",
    id: COLLECTION_ID,
    stac_version: STAC_VERSION,
    title: "lanemap tiles",
    description: "One item per map cell: the tile the merged view shows, with its class raster",
    license: "other",
    extent: { spatial: { bbox: [bbox] }, temporal: { interval: [interval] } },
    summaries: {
      "lanemap:classes": lease.snapshot.classes.map((c) => ({ id: c.id, name: c.name, colour: c.colour })),
    },
    links: [
      { rel: "self", href: `${base}/stac/collections/${COLLECTION_ID}`, type: JSON_TYPE },
      { rel: "root", href: `${base}/stac`, type: JSON_TYPE },
      { rel: "parent", href: `${base}/stac`, type: JSON_TYPE },
      { rel: "items", href: `${base}/stac/collections/${COLLECTION_ID}/items`, type: GEOJSON },
    ],
  };
}

/** The collections list. */
export function stacCollections(lease: SnapshotLease, base: string): StacCollectionsBody {
  return {
    collections: [stacCollection(lease, base)],
    links: [
      { rel: "self", href: `${base}/stac/collections`, type: JSON_TYPE },
      { rel: "root", href: `${base}/stac`, type: JSON_TYPE },
    ],
  };
}

/** 404 unless the id names the one collection. */
export function requireCollection(id: string): void {
  if (id !== COLLECTION_ID)
    throw new NotFoundError(
      `no collection "${id}" (the one collection is ${COLLECTION_ID})`,
      "collection-not-found",
    );
}

/** One STAC item for a result. */
export function stacItem(r: ServedResult, lease: SnapshotLease, base: string): StacItemBody {
  const p = provenance(r, lease.snapshot, lease.now);
  const b = r.bounds;
  const tile = `${base}/v1/tiles/${encodeURIComponent(r.tileId)}`;
  const t = r.summary;
  return {
    type: "Feature",
    stac_version: STAC_VERSION,
    stac_extensions: [],
    id: r.tileId,
    collection: COLLECTION_ID,
    geometry: boundsPolygon(b),
    ...(b ? { bbox: [b.minX, b.minY, b.maxX, b.maxY] } : {}),
    properties: {
      datetime: r.acquired,
      "lanemap:cell": r.cell,
      "lanemap:lane": r.lane,
      "lanemap:batch_version": p.batchVersion,
      "lanemap:watermark": p.watermark,
      "lanemap:live_position": p.livePosition,
      "lanemap:model_version": t.modelVersion,
      "lanemap:ingest_seq": r.ingestSeq,
      "lanemap:processed_at": t.processedAt,
      "lanemap:dominant_class": t.dominantClass,
      "lanemap:mean_confidence": t.meanConfidence,
      "lanemap:staleness_s": p.staleness.sinceAcquiredS,
      ...(p.staleness.viewAgeS === null ? {} : { "lanemap:view_age_s": p.staleness.viewAgeS }),
    },
    assets: {
      source: {
        href: `${tile}/source.tif`,
        type: GEOTIFF,
        title: "Source tile as archived",
        roles: ["data", "source"],
      },
      classes: {
        href: `${tile}/classes.tif`,
        type: GEOTIFF,
        title: "Class raster with colour table",
        roles: ["data"],
      },
      preview: {
        href: `${tile}/classes.png`,
        type: "image/png",
        title: "Class preview",
        roles: ["overview", "visual"],
      },
    },
    links: [
      {
        rel: "self",
        href: `${base}/stac/collections/${COLLECTION_ID}/items/${encodeURIComponent(r.tileId)}`,
        type: GEOJSON,
      },
      { rel: "collection", href: `${base}/stac/collections/${COLLECTION_ID}`, type: JSON_TYPE },
      { rel: "parent", href: `${base}/stac/collections/${COLLECTION_ID}`, type: JSON_TYPE },
      { rel: "root", href: `${base}/stac`, type: JSON_TYPE },
    ],
  };
}

/**
 * A search page as an ItemCollection; `nextHref` builds the next link from the page's token: a URL
 * (GET), or a link that POSTs `{token}` merged into the previous body (STAC API item search, POST).
 */
export function stacItemCollection(
  page: TilePage,
  base: string,
  selfHref: string,
  nextHref: (token: string) => string | Omit<StacLinkBody, "rel" | "type">,
): StacItemCollectionBody {
  const links: StacLinkBody[] = [
    { rel: "self", href: selfHref, type: GEOJSON },
    { rel: "root", href: `${base}/stac`, type: JSON_TYPE },
  ];
  if (page.cursor) {
    const next = nextHref(page.cursor);
    links.push({ rel: "next", type: GEOJSON, ...(typeof next === "string" ? { href: next } : next) });
  }
  return {
    type: "FeatureCollection",
    features: page.items.map((r) => stacItem(r, page.lease, base)),
    numberReturned: page.items.length,
    links,
  };
}

/** Most `ids` one search may name. */
export const MAX_SEARCH_IDS = 1000;

/** A POST /stac/search body, checked: the filters of a listing plus paging. */
export interface StacSearch {
  readonly bbox?: Bounds | undefined;
  readonly intersects?: Area | undefined;
  readonly datetime?: TimeInterval | undefined;
  readonly ids?: readonly string[] | undefined;
  readonly limit: number;
  readonly token?: string | undefined;
}

/** 400 unless every collection named is the one collection; `name` is the member it came in. */
export function requireKnownCollections(collections: readonly string[], name: string): void {
  const unknown = collections.filter((c) => c !== COLLECTION_ID);
  if (unknown.length)
    throw new InvalidParamsError([{ name, reason: `names unknown collections: ${unknown.join(", ")}` }]);
}

/**
 * Parses a POST /stac/search body (STAC API item search: bbox, intersects, datetime, collections,
 * ids, limit, token) or throws a 400 whose invalid_params name each bad member (`body.bbox`,
 * `body.intersects.coordinates.0.3`). An empty or absent body searches everything.
 * @throws InvalidParamsError on a body that is not an object, an unknown member, a bad value, or
 *   both `bbox` and `intersects` (the STAC API allows only one).
 */
export function parseStacSearchBody(value: unknown): StacSearch {
  if (value === undefined || value === null) return { limit: 10 };
  if (typeof value !== "object" || Array.isArray(value))
    throw new InvalidParamsError([{ name: "body", reason: "must be a JSON object (STAC item search)" }]);
  const r = StacSearchRequest.safeParse(value);
  if (!r.success) throw new InvalidParamsError(invalidParams(r.error, "body"));
  const b: StacSearchRequestBody = r.data;
  const issues: { name: string; reason: string }[] = [];
  let bbox: Bounds | undefined;
  if (b.bbox !== undefined) {
    // A 3D bbox (STAC allows six numbers) drops its heights: [minX, minY, minZ, maxX, maxY, maxZ].
    const flat = b.bbox.length === 6 ? [b.bbox[0], b.bbox[1], b.bbox[3], b.bbox[4]] : b.bbox;
    const p = bboxParam.safeParse(flat.join(","));
    if (p.success) bbox = p.data;
    else issues.push({ name: "body.bbox", reason: p.error.issues[0]?.message ?? "is not a bbox" });
  }
  let datetime: TimeInterval | undefined;
  if (b.datetime !== undefined) {
    const p = datetimeParam.safeParse(b.datetime);
    if (p.success) datetime = p.data;
    else issues.push({ name: "body.datetime", reason: p.error.issues[0]?.message ?? "is not a datetime" });
  }
  let intersects: Area | undefined;
  if (b.intersects !== undefined) {
    if (bbox !== undefined || b.bbox !== undefined)
      issues.push({ name: "body.intersects", reason: "give bbox or intersects, not both" });
    else
      try {
        intersects = parseStatsBody(b.intersects);
      } catch (err) {
        if (!(err instanceof InvalidParamsError)) throw err;
        issues.push(
          ...err.invalidParams.map((p) => ({ ...p, name: p.name.replace(/^body/, "body.intersects") })),
        );
      }
  }
  if (b.collections !== undefined) requireKnownCollections(b.collections, "body.collections");
  if (b.ids !== undefined && b.ids.length > MAX_SEARCH_IDS)
    issues.push({ name: "body.ids", reason: `names more than ${MAX_SEARCH_IDS} items` });
  if (b.limit !== undefined && (!Number.isInteger(b.limit) || b.limit < 1 || b.limit > 1000))
    issues.push({ name: "body.limit", reason: "must be an integer from 1 to 1000" });
  if (b.token !== undefined && !/^[A-Za-z0-9_-]{1,1024}$/.test(b.token))
    issues.push({ name: "body.token", reason: "is not a token this service issued" });
  if (issues.length) throw new InvalidParamsError(issues);
  return { bbox, intersects, datetime, ids: b.ids, limit: b.limit ?? 10, token: b.token };
}
