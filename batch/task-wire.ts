/**
 * The batch work queue's messages (issue 14), shared by the coordinator (stream-executor.ts) and the
 * workers (task-worker.ts): a task names the run, the catalogue entries of its tiles (one, or a few
 * small ones: see stream-executor.ts, "a task of several tiles"), the model version and the decode
 * budget; a result carries one tile's outcome, so a task of several tiles has one result per tile
 * and a redelivered one is as idempotent as a task of one. Both are checked when read, since a task
 * or a result may come from another lanemap version on another machine: a task of one tile is
 * written as before (`entry`), so a worker of an earlier version still reads it.
 *
 * A result is one binary frame, so the deflated class raster travels without base64:
 *   uint32 BE n | n bytes of JSON (ResultHead) | the raster bytes (when not in the object store)
 */
import { z } from "zod";
import {
  LanemapError,
  catalogueEntrySchema,
  isErrorCode,
  tileResultSchema,
  type CatalogueEntry,
  type ErrorCode,
  type TileResult,
} from "../shared/index.js";

/** One task of a run, as published on `batch.task.<runId>`: one tile, or a few small ones. */
export interface BatchTask {
  readonly runId: string;
  readonly modelVersion: string;
  /** Pixel budget of the decode (of each tile). */
  readonly maxPixels: number;
  /** The task's tiles, at least one, each classified and reported on its own. */
  readonly entries: readonly CatalogueEntry[];
}

const taskSchema = z
  .object({
    runId: z.string().min(1),
    modelVersion: z.string().min(1),
    maxPixels: z.number().int().positive(),
    /** A task of one tile (every task of a worker before multi-tile tasks). */
    entry: catalogueEntrySchema.optional(),
    entries: z.array(catalogueEntrySchema).min(2).optional(),
  })
  .refine((t) => (t.entry === undefined) !== (t.entries === undefined), {
    message: "a task names either one entry or several entries",
  });

/**
 * The JSON of a task: `entry` for a task of one tile (what workers of every version read),
 * `entries` for several.
 * @throws LanemapError BAD_REQUEST for a task without tiles.
 */
export function encodeTask(task: BatchTask): Uint8Array {
  const { entries, ...rest } = task;
  if (entries.length === 0) throw new LanemapError("BAD_REQUEST", "a batch task names no tile");
  const wire = entries.length === 1 ? { ...rest, entry: entries[0] } : { ...rest, entries };
  return new TextEncoder().encode(JSON.stringify(wire));
}

/**
 * Reads a task.
 * @throws LanemapError BAD_REQUEST when the bytes are not a valid task.
 */
export function decodeTask(bytes: Uint8Array): BatchTask {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new LanemapError("BAD_REQUEST", `a batch task is not JSON: ${(err as Error).message}`);
  }
  const r = taskSchema.safeParse(json);
  if (!r.success)
    throw new LanemapError("BAD_REQUEST", `not a batch task: ${r.error.issues[0]?.message ?? "invalid"}`);
  const { entry, entries, ...rest } = r.data;
  return { ...rest, entries: (entries ?? [entry]) as CatalogueEntry[] };
}

/** A tile's outcome as its result message says it. */
export type ResultOutcome =
  | {
      readonly ok: true;
      readonly result: TileResult;
      readonly k: number;
      /** The raster's object in the raster bucket, when it did not fit the message. */
      readonly rasterObject?: string;
    }
  | { readonly ok: false; readonly code: ErrorCode; readonly reason: string };

/** The JSON head of a result. */
export interface ResultHead {
  readonly runId: string;
  readonly tileId: string;
  readonly modelVersion: string;
  /** Who classified it (host:pid), for logs. */
  readonly worker: string;
  /**
   * The task's delivery count when it was classified: above 1 when the task was redelivered (a
   * worker lost, or past its deadline). Absent from an older worker's results (read as 1).
   */
  readonly deliveries?: number;
  readonly outcome: ResultOutcome;
}

const headSchema = z.object({
  runId: z.string().min(1),
  tileId: z.string().min(1),
  modelVersion: z.string().min(1),
  worker: z.string(),
  deliveries: z.number().int().min(1).optional(),
  outcome: z.discriminatedUnion("ok", [
    z.object({
      ok: z.literal(true),
      result: tileResultSchema,
      k: z.number().int().min(1),
      rasterObject: z.string().optional(),
    }),
    z.object({ ok: z.literal(false), code: z.string(), reason: z.string() }),
  ]),
});

/** A result frame (see the module comment); `raster` is empty when the head names an object. */
export function encodeResult(head: ResultHead, raster: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(head));
  const out = new Uint8Array(4 + json.byteLength + raster.byteLength);
  new DataView(out.buffer).setUint32(0, json.byteLength);
  out.set(json, 4);
  out.set(raster, 4 + json.byteLength);
  return out;
}

/**
 * Reads a result frame.
 * @throws LanemapError BAD_REQUEST when the bytes are not a valid result.
 */
export function decodeResult(bytes: Uint8Array): { head: ResultHead; raster: Uint8Array } {
  const bad = (why: string) => new LanemapError("BAD_REQUEST", `not a batch result: ${why}`);
  if (bytes.byteLength < 4) throw bad("shorter than its header");
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (4 + n > bytes.byteLength) throw bad("its JSON head runs past the end");
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n)));
  } catch (err) {
    throw bad((err as Error).message);
  }
  const r = headSchema.safeParse(json);
  if (!r.success) throw bad(r.error.issues[0]?.message ?? "invalid");
  const o = r.data.outcome;
  const outcome: ResultOutcome = o.ok
    ? (o as ResultOutcome)
    : { ok: false, code: isErrorCode(o.code) ? o.code : "INTERNAL", reason: o.reason };
  return { head: { ...r.data, outcome }, raster: bytes.slice(4 + n) };
}
