/**
 * The shape of one route-table entry: what the OpenAPI document says about an endpoint (parameters,
 * body, responses) next to the handler that serves it. The app registers exactly the entries of the
 * table and /openapi.json is generated from exactly those entries, so the document cannot list an
 * endpoint that does not exist or miss one that does. The entries themselves live in http/routes/,
 * one module per tag.
 */
import type { Request, Response } from "express";
import type { z } from "zod";
import * as S from "./schemas.js";

/** What a response body is: a schema (JSON), raw bytes, or text. */
export type Media = z.ZodType | "binary" | "text";

/** One documented response: what it means and its body per media type. */
export interface ResponseSpec {
  readonly description: string;
  readonly content?: Readonly<Record<string, Media>>;
}

/** One endpoint: its OpenAPI description and its handler. */
export interface RouteSpec {
  readonly method: "get" | "post" | "delete";
  /** OpenAPI form, e.g. /v1/tiles/{id}. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly tags: readonly string[];
  readonly query?: z.ZodObject;
  readonly pathParams?: Readonly<Record<string, z.ZodType>>;
  readonly body?: {
    readonly description: string;
    readonly required: boolean;
    readonly content: Readonly<Record<string, z.ZodType>>;
  };
  /** Needs the operator bearer token. */
  readonly operator?: boolean;
  /** Runs before the body is read (authorisation), so a refused caller costs no body parsing. */
  readonly guard?: (req: Request) => void;
  readonly responses: Readonly<Record<string, ResponseSpec>>;
  readonly handle: (req: Request, res: Response) => Promise<void> | void;
}

/** Media types POST /v1/stats accepts. */
export const JSON_BODY_TYPES = ["application/json", "application/geo+json", "application/*+json"];

const PROBLEM = "application/problem+json";

/** A documented problem response (RFC 9457 body). */
export const problem = (description: string): ResponseSpec => ({
  description,
  content: { [PROBLEM]: S.Problem },
});

/** A documented success response with its body per media type. */
export const ok = (description: string, content: Record<string, Media>): ResponseSpec => ({
  description,
  content,
});
