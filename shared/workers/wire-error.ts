/**
 * Errors across the worker boundary. Structured clone keeps only `message` (and, for plain Errors,
 * `name`) of an error, so a pooled worker sends a plain record and WorkerPool rebuilds the same named
 * class on its side: a caller's `instanceof TileDecodeError` works whether or not a worker decoded,
 * and every LanemapError keeps its `code` (the speed lane's retry policy reads it).
 *
 * This is the pool's local encoding until shared/errors.ts has the one wire encoding of the house
 * (encodeError/decodeError, issue 10 item 1); then these two functions become calls to those.
 */
import {
  DeadlineError,
  LanemapError,
  ModelError,
  PixelBudgetError,
  TileDecodeError,
  TileInvalidError,
} from "../errors.js";

/** An error as plain data. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly pixels?: number;
  readonly budget?: number;
  readonly stack?: string;
  readonly cause?: WireError;
}

/** Causes nested deeper than this are dropped: a cycle or a pathological chain must not hang the send. */
const MAX_CAUSE_DEPTH = 8;

/** Flattens any thrown value (and its `cause` chain) into plain data. */
export function toWireError(err: unknown, depth = 0): WireError {
  if (!(err instanceof Error)) return { name: "Error", message: String(err) };
  const base: {
    name: string;
    message: string;
    code?: string;
    pixels?: number;
    budget?: number;
    stack?: string;
    cause?: WireError;
  } = { name: err.name, message: err.message };
  if (err.stack !== undefined) base.stack = err.stack;
  if (err instanceof LanemapError) base.code = err.code;
  if (err instanceof PixelBudgetError) {
    base.pixels = err.pixels;
    base.budget = err.budget;
  }
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) base.cause = toWireError(err.cause, depth + 1);
  return base;
}

/** Rebuilds an error from plain data, as the named lanemap class it was where one applies. */
export function fromWireError(w: WireError): Error {
  const cause = w.cause !== undefined ? fromWireError(w.cause) : undefined;
  const opts = cause !== undefined ? { cause } : undefined;
  let err: Error;
  switch (w.name) {
    case "TileDecodeError":
      err = new TileDecodeError(w.message, opts);
      break;
    case "PixelBudgetError":
      err = new PixelBudgetError(w.pixels ?? NaN, w.budget ?? NaN);
      break;
    case "DeadlineError":
      err = new DeadlineError(w.message, opts);
      break;
    case "TileInvalidError":
      err = new TileInvalidError(w.message, opts);
      break;
    case "ModelError":
      err = new ModelError(w.message, opts);
      break;
    default:
      if (w.code !== undefined) {
        err = new LanemapError(w.code, w.message, opts);
        // The class is not rebuilt, its name is: logs and problem bodies still say ModelError, ...
        err.name = w.name;
      } else {
        err = new Error(w.message, opts);
        err.name = w.name;
      }
  }
  // Keep the worker's stack: it is where the error actually happened.
  if (w.stack !== undefined) err.stack = w.stack;
  return err;
}
