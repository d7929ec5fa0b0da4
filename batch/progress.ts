/**
 * Progress of a batch run: a bar for a person at a terminal, structured log lines for everything
 * else (systemd, CI, files), so the two never interleave on one stream.
 */
import { SingleBar } from "cli-progress";
import type { Logger } from "pino";

/** Where a run is. */
export interface RunProgress {
  readonly runId: string;
  /** Tiles this run has to classify (reused and resumed tiles are not counted). */
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  /** The tile that just finished, if any. */
  readonly tileId?: string;
}

/** Receives a run's progress. */
export interface ProgressSink {
  start(p: RunProgress): void;
  update(p: RunProgress): void;
  stop(p: RunProgress): void;
}

/** Options of {@link createProgressSink}. */
export interface ProgressSinkOptions {
  readonly logger: Logger;
  /** A terminal stream for the bar (e.g. process.stderr); without one, or if it is no TTY, logs. */
  readonly stream?: NodeJS.WriteStream;
  /** Minimum time between two progress log lines (default 2 s). */
  readonly logEveryMs?: number;
}

/** A bar on a TTY, otherwise pino lines at most every `logEveryMs` (and at start and end). */
export function createProgressSink(options: ProgressSinkOptions): ProgressSink {
  const stream = options.stream;
  if (stream?.isTTY) {
    const bar = new SingleBar({
      stream,
      format: "batch {runId} [{bar}] {value}/{total} tiles | {failed} failed | {eta_formatted} left",
      hideCursor: true,
    });
    return {
      start: (p) => bar.start(p.total, p.done, { runId: p.runId, failed: p.failed }),
      update: (p) => bar.update(p.done, { failed: p.failed }),
      stop: (p) => {
        bar.update(p.done, { failed: p.failed });
        bar.stop();
      },
    };
  }
  const every = options.logEveryMs ?? 2000;
  let last = 0;
  let t0 = 0;
  // The runner's own sink logs through its run's child logger, which binds `runId` already: pino
  // would write the key twice in one JSON line (`batch schedule`'s lines did, issue 14 F-E).
  const bound = options.logger.bindings()["runId"] !== undefined;
  const line = (p: RunProgress, msg: string) => {
    const s = (performance.now() - t0) / 1000;
    options.logger.info(
      {
        ...(bound ? {} : { runId: p.runId }),
        done: p.done,
        total: p.total,
        failed: p.failed,
        tilesPerSec: s > 0 ? Math.round((p.done / s) * 10) / 10 : 0,
      },
      msg,
    );
  };
  return {
    start: (p) => {
      t0 = last = performance.now();
      line(p, "batch progress: started");
    },
    update: (p) => {
      const now = performance.now();
      if (now - last < every) return;
      last = now;
      line(p, "batch progress");
    },
    stop: (p) => line(p, "batch progress: done"),
  };
}
