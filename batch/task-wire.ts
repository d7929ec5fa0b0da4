/**
 * The batch work queue's messages (issue 14), shared by the coordinator (stream-executor.ts) and the
 * workers (task-worker.ts): a task names the run, the tile's catalogue entry, the model version and
 * the decode budget; a result carries the tile's outcome. Both are checked when read, since a task
 * or a result may come from another lanemap version on another machine.
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

/** One tile of a run, as published on `batch.task.<runId>`. */
export interface BatchTask {
  readonly runId: string;
  readonly modelVersion: string;
  /** Pixel budget of the decode. */
  readonly maxPixels: number;
  readonly entry: CatalogueEntry;
}

const taskSchema = z.object({
  runId: z.string().min(1),
  modelVersion: z.string().min(1),
  maxPixels: z.number().int().positive(),
  entry: catalogueEntrySchema,
});

/** The JSON of a task. */
export function encodeTask(task: BatchTask): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(task));
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
  return r.data as BatchTask;
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
