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
} from "../api/schemas.js";
import { WHOLE_GLOBE, boxUnion, type Bounds } from "../../shared/index.js";
import { NotFoundError } from "../errors.js";
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

/** A search page as an ItemCollection; `nextHref` builds the next link from the page's token. */
export function stacItemCollection(
  page: TilePage,
  base: string,
  selfHref: string,
  nextHref: (token: string) => string,
): StacItemCollectionBody {
  const links = [
    { rel: "self", href: selfHref, type: GEOJSON },
    { rel: "root", href: `${base}/stac`, type: JSON_TYPE },
  ];
  if (page.cursor) links.push({ rel: "next", href: nextHref(page.cursor), type: GEOJSON });
  return {
    type: "FeatureCollection",
    features: page.items.map((r) => stacItem(r, page.lease, base)),
    numberReturned: page.items.length,
    links,
  };
}
