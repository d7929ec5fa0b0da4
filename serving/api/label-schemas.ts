/**
 * Schemas of the label endpoints (labels as data, issue 12 item 3), registered in the API's schema
 * registry like the others in schemas.ts; kept in a module of their own.
 */
import { z } from "zod";
import { apiRegistry } from "./schemas.js";

function component<S extends z.ZodType>(id: string, schema: S): S {
  apiRegistry.add(schema, { id });
  return schema;
}

const position = z.array(z.number()).min(2).max(3);
const geometry = z
  .object({
    type: z.enum(["Point", "Polygon", "MultiPolygon"]),
    coordinates: z.union([position, z.array(z.array(position)), z.array(z.array(z.array(position)))]),
  })
  .meta({ description: "WGS 84 lon/lat (RFC 7946)" });

export const LabelFeature = component(
  "LabelFeature",
  z.object({
    type: z.literal("Feature"),
    id: z.string(),
    geometry,
    properties: z.object({
      class: z.string(),
      note: z.string().optional(),
      author: z.string(),
      time: z.string().meta({ format: "date-time" }),
      addedIn: z.number().int().min(1).meta({ description: "label-set version that added the label" }),
      sourceCrs: z
        .string()
        .optional()
        .meta({ description: "the CRS the label was submitted in, when not WGS 84" }),
    }),
  }),
);

export const LabelSetCollection = component(
  "LabelSetCollection",
  z.object({
    type: z.literal("FeatureCollection"),
    labelSetVersion: z.number().int().min(0),
    updatedAt: z.string().nullable(),
    features: z.array(LabelFeature),
  }),
);

export const LabelsRequestBody = component(
  "LabelsRequestBody",
  z
    .object({ type: z.enum(["Feature", "FeatureCollection"]) })
    .loose()
    .meta({
      description:
        'A GeoJSON Feature or FeatureCollection; each Feature a Polygon, MultiPolygon or Point with properties {class, note?, author?, time?}; coordinates in WGS 84 unless a legacy "crs" member names an EPSG code',
    }),
);

export const LabelsAdded = component(
  "LabelsAdded",
  z.object({
    ids: z.array(z.string()),
    labelSetVersion: z.number().int().min(1),
    count: z.number().int().min(0),
    warnings: z.array(z.string()).optional().meta({
      description:
        "labels that were stored but give no sample yet: outside every archived tile's footprint (the archive can grow)",
    }),
  }),
);

export const LabelRemoved = component(
  "LabelRemoved",
  z.object({ id: z.string(), labelSetVersion: z.number().int().min(1) }),
);

export type LabelsAddedBody = z.infer<typeof LabelsAdded>;
export type LabelRemovedBody = z.infer<typeof LabelRemoved>;
