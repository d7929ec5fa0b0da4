/**
 * A small validator for the subset of JSON Schema 2020-12 that serving's OpenAPI document uses,
 * and the lookup from (method, path, status, media type) to the documented response schema. An
 * unknown keyword fails loudly rather than passing silently, so the subset cannot drift.
 */
type Json = Record<string, unknown>;

const IGNORED = new Set([
  "description",
  "default",
  "examples",
  "example",
  "format",
  "title",
  "contentMediaType",
  "$schema",
  "$id",
  "id",
]);
const KNOWN = new Set([
  "$ref",
  "type",
  "properties",
  "required",
  "additionalProperties",
  "propertyNames",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "pattern",
  "minLength",
  "maxLength",
]);

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(want: string, v: unknown): boolean {
  const got = typeOf(v);
  return want === got || (want === "number" && got === "integer");
}

/** Validates `value` against `schema`; returns the problems found (empty when valid). */
export function validateSchema(doc: Json, schema: unknown, value: unknown, at = "$"): string[] {
  if (schema === true || schema === undefined) return [];
  if (schema === false) return [`${at}: no value is allowed here`];
  const s = schema as Json;
  const errors: string[] = [];
  for (const k of Object.keys(s))
    if (!KNOWN.has(k) && !IGNORED.has(k))
      throw new Error(`validator does not know keyword "${k}" (at ${at})`);
  if (typeof s["$ref"] === "string") {
    const ref = s["$ref"];
    const m = /^#\/components\/schemas\/(.+)$/.exec(ref);
    const target = m ? ((doc["components"] as Json)["schemas"] as Json)[m[1] as string] : undefined;
    if (!target) return [`${at}: unresolvable $ref ${ref}`];
    errors.push(...validateSchema(doc, target, value, at));
  }
  if (s["type"] !== undefined) {
    const types = Array.isArray(s["type"]) ? (s["type"] as string[]) : [s["type"] as string];
    if (!types.some((t) => typeMatches(t, value)))
      return [...errors, `${at}: expected ${types.join("|")}, got ${typeOf(value)}`];
  }
  if (s["enum"] && !(s["enum"] as unknown[]).some((e) => e === value))
    errors.push(`${at}: ${JSON.stringify(value)} not in enum`);
  if ("const" in s && s["const"] !== value)
    errors.push(`${at}: expected const ${JSON.stringify(s["const"])}`);
  if (typeof value === "number") {
    if (typeof s["minimum"] === "number" && value < s["minimum"])
      errors.push(`${at}: ${value} < minimum ${s["minimum"]}`);
    if (typeof s["maximum"] === "number" && value > s["maximum"])
      errors.push(`${at}: ${value} > maximum ${s["maximum"]}`);
    if (typeof s["exclusiveMinimum"] === "number" && value <= s["exclusiveMinimum"])
      errors.push(`${at}: ${value} <= exclusiveMinimum`);
    if (typeof s["exclusiveMaximum"] === "number" && value >= s["exclusiveMaximum"])
      errors.push(`${at}: ${value} >= exclusiveMaximum`);
  }
  if (typeof value === "string") {
    if (typeof s["pattern"] === "string" && !new RegExp(s["pattern"], "u").test(value))
      errors.push(`${at}: "${value}" does not match ${s["pattern"]}`);
    if (typeof s["minLength"] === "number" && value.length < s["minLength"])
      errors.push(`${at}: shorter than ${s["minLength"]}`);
    if (typeof s["maxLength"] === "number" && value.length > s["maxLength"])
      errors.push(`${at}: longer than ${s["maxLength"]}`);
  }
  if (Array.isArray(value)) {
    if (typeof s["minItems"] === "number" && value.length < s["minItems"])
      errors.push(`${at}: fewer than ${s["minItems"]} items`);
    if (typeof s["maxItems"] === "number" && value.length > s["maxItems"])
      errors.push(`${at}: more than ${s["maxItems"]} items`);
    const prefix = (s["prefixItems"] as unknown[] | undefined) ?? [];
    value.forEach((v, i) => {
      const sub = i < prefix.length ? prefix[i] : s["items"];
      errors.push(...validateSchema(doc, sub, v, `${at}[${i}]`));
    });
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const obj = value as Json;
    const props = (s["properties"] as Json | undefined) ?? {};
    for (const r of (s["required"] as string[] | undefined) ?? [])
      if (!(r in obj)) errors.push(`${at}: missing required "${r}"`);
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) errors.push(...validateSchema(doc, props[k], v, `${at}.${k}`));
      else if (s["additionalProperties"] !== undefined)
        errors.push(...validateSchema(doc, s["additionalProperties"], v, `${at}.${k}`));
      if (s["propertyNames"] !== undefined)
        errors.push(...validateSchema(doc, s["propertyNames"], k, `${at}{${k}}`));
    }
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const list = s[key] as unknown[] | undefined;
    if (!list) continue;
    const passing = list.filter((sub) => validateSchema(doc, sub, value, at).length === 0).length;
    if (key === "anyOf" ? passing === 0 : passing !== 1)
      errors.push(`${at}: ${passing} of the ${key} alternatives match`);
  }
  for (const sub of (s["allOf"] as unknown[] | undefined) ?? [])
    errors.push(...validateSchema(doc, sub, value, at));
  return errors;
}

/** The operation for a concrete request path (templates like /v1/tiles/{id} matched by segment). */
export function findOperation(
  doc: Json,
  method: string,
  path: string,
): { template: string; op: Json } | undefined {
  const paths = doc["paths"] as Record<string, Record<string, Json>>;
  const segs = path.split("/");
  for (const [template, ops] of Object.entries(paths)) {
    const t = template.split("/");
    if (t.length !== segs.length) continue;
    if (!t.every((p, i) => p.startsWith("{") || p === segs[i])) continue;
    const op = ops[method.toLowerCase()];
    if (op) return { template, op };
  }
  return undefined;
}

/**
 * Validates a real response against the document: the status must be documented (or `default`),
 * the media type listed for it, and a JSON body must match its schema. Returns the problems.
 */
export function validateResponse(
  doc: Json,
  req: { method: string; path: string },
  res: { status: number; contentType: string; body: unknown },
): string[] {
  const found = findOperation(doc, req.method, req.path);
  if (!found) return [`${req.method} ${req.path} is not in the document`];
  const responses = found.op["responses"] as Record<string, Json>;
  const spec = responses[String(res.status)] ?? responses["default"];
  if (!spec) return [`${req.method} ${found.template}: status ${res.status} is not documented`];
  const media = res.contentType.split(";")[0]?.trim() ?? "";
  const content = spec["content"] as Record<string, Json> | undefined;
  if (!content) return [];
  const entry =
    content[media] ?? Object.entries(content).find(([k]) => k.split(";")[0]?.trim() === media)?.[1];
  if (!entry)
    return [
      `${req.method} ${found.template} ${res.status}: media type ${media} is not documented (${Object.keys(content).join(", ")})`,
    ];
  if (!/json/.test(media)) return [];
  return validateSchema(doc, entry["schema"], res.body).map(
    (e) => `${req.method} ${found.template} ${res.status}: ${e}`,
  );
}
