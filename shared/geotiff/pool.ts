/**
 * Decoding in worker threads with a deadline. A decoder that loops forever on a hostile file (the fuzz
 * case broken/fuzz_infloop_* does that to naive decoders) cannot be interrupted from inside its own
 * thread; a worker can be terminated from outside. DecoderPool is the house WorkerPool
 * (shared/workers) running `decodeGeoTiff` in pool-worker.ts, with the errors a decode caller expects.
 */
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { DeadlineError, PoolClosedError, TileDecodeError, WorkerCrashError } from "../errors.js";
import type { Raster } from "../raster/types.js";
import { WorkerPool } from "../workers/index.js";
import { DEFAULT_MAX_PIXELS } from "./decode.js";

/** Default deadline of one pooled decode: generous for a 100 Mpx LZW tile on a slow shared core. */
export const DEFAULT_DECODE_TIMEOUT_MS = 30_000;

/** Options of one pooled decode. */
export interface IsolatedDecodeOptions {
  /** Pixel budget (width * height); PixelBudgetError above it. Default DEFAULT_MAX_PIXELS. */
  readonly maxPixels?: number;
  /** Deadline of the decode once a worker has it; past it the worker is terminated. */
  readonly timeoutMs?: number;
  /** Cancels the decode (a running one's worker is terminated); rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/** Options of a DecoderPool. */
export interface DecoderPoolOptions {
  /** Number of worker threads (default: min(2, available cores)). */
  readonly size?: number;
  /** Default deadline of each decode (default DEFAULT_DECODE_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** Default pixel budget of each decode (default DEFAULT_MAX_PIXELS). */
  readonly maxPixels?: number;
}

/** One decode job (pool-worker.ts). */
export interface DecodeJob {
  readonly bytes: Uint8Array;
  readonly maxPixels: number;
}

// The worker entry sits beside this module, with this module's extension (.ts under tsx, .js if built).
const workerEntry = new URL(`./pool-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/**
 * A pool of GeoTIFF decoder workers with per-decode deadlines. Errors come back as the same named
 * classes decodeGeoTiff throws (TileDecodeError, PixelBudgetError); a decode that passes its deadline
 * rejects with a TileDecodeError whose `cause` is a DeadlineError, and its worker is replaced.
 * Workers start lazily; idle ones do not keep the process alive; `close()` ends them.
 */
export class DecoderPool {
  private readonly pool: WorkerPool<DecodeJob, Raster>;
  private readonly maxPixels: number;
  private readonly timeoutMs: number;

  /** @throws RangeError for a size, timeoutMs or maxPixels that is not positive. */
  constructor(options: DecoderPoolOptions = {}) {
    const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
    if (!(maxPixels > 0)) throw new RangeError(`maxPixels must be a positive number, got ${maxPixels}`);
    this.maxPixels = maxPixels;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_DECODE_TIMEOUT_MS;
    this.pool = new WorkerPool({
      entry: workerEntry,
      name: "decoder",
      size: Math.floor(options.size ?? Math.min(2, availableParallelism())),
      timeoutMs: this.timeoutMs,
    });
  }

  /** Number of live worker threads (started lazily, at most `size`). */
  get workerCount(): number {
    return this.pool.workerCount;
  }

  /**
   * Decodes `bytes` in a worker (the caller's bytes are copied, never detached).
   * @throws TileDecodeError (cause DeadlineError past the deadline, PoolClosedError once closed,
   *   WorkerCrashError when the worker died), PixelBudgetError, WorkerStartError, RangeError for a
   *   bad option, `signal.reason` when aborted.
   */
  async decode(bytes: Uint8Array, options: IsolatedDecodeOptions = {}): Promise<Raster> {
    const maxPixels = options.maxPixels ?? this.maxPixels;
    if (!(maxPixels > 0)) throw new RangeError(`maxPixels must be a positive number, got ${maxPixels}`);
    // Uint8Array's own slice: a Node Buffer's `slice` would share (and the transfer detach) its pool.
    const copy = Uint8Array.prototype.slice.call(bytes);
    try {
      return await this.pool.run(
        { bytes: copy, maxPixels },
        {
          transfer: [copy.buffer],
          ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        },
      );
    } catch (err) {
      if (err instanceof DeadlineError)
        throw new TileDecodeError(`decoding timed out after ${options.timeoutMs ?? this.timeoutMs} ms`, {
          cause: err,
        });
      if (err instanceof PoolClosedError)
        throw new TileDecodeError("the decoder pool was closed before the tile was decoded", { cause: err });
      if (err instanceof WorkerCrashError) throw new TileDecodeError(err.message, { cause: err });
      throw err;
    }
  }

  /** Terminates every worker; pending and running decodes reject with a TileDecodeError. */
  close(): Promise<void> {
    return this.pool.close();
  }
}

let sharedPool: DecoderPool | null = null;

/**
 * Decodes in a shared, lazily started DecoderPool (its idle workers do not keep the process alive), so a
 * hostile file can cost at most `timeoutMs` and never hang the caller.
 * @throws TileDecodeError (cause DeadlineError past the deadline), PixelBudgetError.
 */
export function decodeGeoTiffIsolated(
  bytes: Uint8Array,
  options: IsolatedDecodeOptions = {},
): Promise<Raster> {
  sharedPool ??= new DecoderPool();
  return sharedPool.decode(bytes, options);
}
