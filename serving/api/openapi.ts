/**
 * The OpenAPI 3.1 document, generated from the route table and the zod schemas: components from
 * the schema registry (z.toJSONSchema, JSON Schema 2020-12 as OpenAPI 3.1 uses), parameters from
 * each route's strict query schema in its input form, responses from each route's spec.
 */
import { z } from "zod";
import type { Media, RouteSpec } from "./route-spec.js";
import { apiRegistry } from "./schemas.js";

type Json = Record<string, unknown>;

const REF = (id: string) => `#/components/schemas/${id}`;

function strip(schema: Json): Json {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

/** Points `#/$defs/X` references at the document's components (which hold every registered X). */
function toComponentRefs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toComponentRefs);
  if (v === null || typeof v !== "object") return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === "$defs") continue;
    out[k] =
      k === "$ref" && typeof x === "string"
        ? x.replace(/^#\/\$defs\//, "#/components/schemas/")
        : toComponentRefs(x);
  }
  return out;
}

/** JSON Schema for one zod schema: a $ref when registered, else inline (refs into components). */
function schemaOf(s: z.ZodType, io: "input" | "output"): Json {
  const id = apiRegistry.get(s)?.id;
  if (id) return { $ref: REF(id) };
  return strip(
    toComponentRefs(z.toJSONSchema(s, { io, unrepresentable: "any", metadata: apiRegistry })) as Json,
  );
}

function mediaSchema(m: Media, media: string): Json {
  if (m === "binary") return { type: "string", contentMediaType: media };
  if (m === "text") return { type: "string" };
  return schemaOf(m, "output");
}

/** Builds the document for a route table. */
export function buildOpenApi(routes: readonly RouteSpec[], info: { version: string }): Json {
  const all = z.toJSONSchema(apiRegistry, { uri: REF, io: "output", unrepresentable: "any" }) as {
    schemas: Record<string, Json>;
  };
  const schemas = Object.fromEntries(Object.entries(all.schemas).map(([k, v]) => [k, strip(v)]));
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of routes) {
    const parameters: Json[] = [];
    for (const [name, s] of Object.entries(r.pathParams ?? {}))
      parameters.push({ name, in: "path", required: true, schema: schemaOf(s, "input") });
    if (r.query)
      for (const [name, s] of Object.entries(r.query.shape as Record<string, z.ZodType>)) {
        // Parameters reference no component; the global registry holds their .meta() descriptions.
        const js = strip(z.toJSONSchema(s, { io: "input", unrepresentable: "any" }) as Json);
        const { description, example, ...schema } = js as { description?: string; example?: unknown } & Json;
        parameters.push({
          name,
          in: "query",
          required: !s.safeParse(undefined).success,
          ...(description ? { description } : {}),
          ...(example === undefined ? {} : { example }),
          schema,
        });
      }
    const responses: Json = {};
    for (const [status, spec] of Object.entries(r.responses)) {
      responses[status] = {
        description: spec.description,
        ...(spec.content
          ? {
              content: Object.fromEntries(
                Object.entries(spec.content).map(([media, m]) => [media, { schema: mediaSchema(m, media) }]),
              ),
            }
          : {}),
      };
    }
    responses["default"] = {
      description: "Any other problem (application/problem+json)",
      content: { "application/problem+json": { schema: { $ref: REF("Problem") } } },
    };
    const op: Json = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [...r.tags],
      ...(parameters.length ? { parameters } : {}),
      ...(r.body
        ? {
            requestBody: {
              description: r.body.description,
              required: r.body.required,
              content: Object.fromEntries(
                Object.entries(r.body.content).map(([media, s]) => [media, { schema: schemaOf(s, "input") }]),
              ),
            },
          }
        : {}),
      ...(r.operator ? { security: [{ operatorToken: [] }] } : {}),
      responses,
    };
    (paths[r.path] ??= {})[r.method] = op;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "lanemap serving API",
      version: info.version,
      description:
        "Thematic class maps from satellite tiles: the batch and speed lanes merged per map cell at query time. Every answer names the view snapshot it was read from.",
    },
    servers: [{ url: "/" }],
    tags: [
      { name: "tiles", description: "Per-cell results and their rasters" },
      { name: "queries", description: "Point and area queries over the merged view" },
      { name: "stac", description: "STAC catalogue of the merged view" },
      { name: "operations", description: "Health, readiness, metrics, views, batch runs, events" },
      { name: "labels", description: "The versioned label set the analyst trains models from" },
      {
        name: "models",
        description:
          "The model registry: versions, legends, accuracy, activation; training from the label set as a job",
      },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        operatorToken: { type: "http", scheme: "bearer", description: "LANEMAP_OPERATOR_TOKEN" },
      },
    },
  };
}
