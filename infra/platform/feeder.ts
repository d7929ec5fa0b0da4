/**
 * The sample feeder of `lanemap start`: a fresh generated acquisition every few seconds so the
 * speed lane has something to show. Each one is archived and classified for good, so an endless
 * feed grows the data directory without bound; the feeder stops at a cap of acquisitions counted
 * over the data directory's whole life (what earlier runs fed counts too), and says so once.
 */
import type { Logger } from "pino";

/** Tile ids the feeder gives: `<cell>-<yyyymmddThhmmssZ>` (the generated sample's cell keys). */
export const FED_TILE_ID = /^c\d{4,6}r\d{4,6}-\d{8}T\d{6}Z$/;

/** Catalogue entries the feeder wrote: came through the stream, with a feeder tile id. */
export function isFedEntry(e: { readonly source: string; readonly tileId: string }): boolean {
  return e.source === "stream" && FED_TILE_ID.test(e.tileId);
}

/** A running feeder. */
export interface Feeder {
  /** Acquisitions this feeder published. */
  fed(): number;
  /** True once the cap stopped it. */
  capped(): boolean;
  stop(): void;
}

/**
 * Calls `feedOnce` every `intervalS` seconds until `maxTiles` acquisitions exist (counting
 * `alreadyFed` from earlier runs; `maxTiles` 0 = no cap). A failed feed is logged and not counted.
 */
export function startFeeder(options: {
  readonly intervalS: number;
  readonly maxTiles: number;
  readonly alreadyFed: number;
  readonly feedOnce: () => Promise<unknown>;
  readonly logger: Logger;
}): Feeder {
  const { intervalS, maxTiles, alreadyFed, feedOnce, logger } = options;
  let fed = 0;
  let busy = false;
  let capped = false;
  const full = () => maxTiles > 0 && alreadyFed + fed >= maxTiles;
  const cap = () => {
    capped = true;
    clearInterval(timer);
    logger.info(
      { fed: alreadyFed + fed, maxTiles },
      "sample feed cap reached: no more fresh acquisitions (raise LANEMAP_FEED_MAX_TILES to feed more)",
    );
  };
  const timer = setInterval(() => {
    // One feed at a time: a slow publish must not stack feeds past the cap.
    if (busy || capped) return;
    if (full()) return cap();
    busy = true;
    feedOnce()
      .then(() => {
        fed++;
        if (full()) cap();
      })
      .catch((err: unknown) => logger.warn({ err }, "feeding a fresh acquisition failed"))
      .finally(() => {
        busy = false;
      });
  }, intervalS * 1000);
  timer.unref();
  if (full()) cap();
  return {
    fed: () => fed,
    capped: () => capped,
    stop: () => clearInterval(timer),
  };
}
