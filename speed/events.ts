/**
 * What a speed worker reports: a tagged union of events, as nats.js's `status()` does. Conditions
 * that are not fatal — a bad tile, a retry, a model swap, a lost connection — are events, never
 * throws; the worker keeps consuming.
 */
import type { ErrorCode } from "../shared/index.js";

/** A tile classified and written to the live view. */
export interface TileClassifiedEvent {
  readonly type: "tile-classified";
  readonly tileId: string;
  readonly cell: string;
  /** Ingest sequence recorded in the result (the catalogue's first one for a re-sent tile). */
  readonly ingestSeq: number;
  /** Stream sequence of the message that carried it. */
  readonly streamSeq: number;
  readonly modelVersion: string;
  /** Publish time -> result written, milliseconds. */
  readonly latencyMs: number;
  /** Time this worker spent on the tile, milliseconds. */
  readonly processMs: number;
  readonly liveRevision: number;
}

/** A tile already classified with the same content: acknowledged without classifying again. */
export interface TileDuplicateEvent {
  readonly type: "tile-duplicate";
  readonly tileId: string;
  readonly cell: string;
  readonly ingestSeq: number;
  readonly streamSeq: number;
}

/**
 * A message of a tile `lanemap archive remove` took out after the stream stored the message (its
 * tombstone covers it): acknowledged and left out, as the replays leave it out.
 */
export interface TileRemovedEvent {
  readonly type: "tile-removed";
  readonly tileId: string;
  readonly cell: string;
  readonly streamSeq: number;
  /** When the tile was removed (ISO 8601). */
  readonly removedAt: string;
}

/**
 * A tile that cannot be classified: dead-lettered and terminated. (When the dead letter cannot be
 * written, the tile is nak'd instead and a `tile-retry` event says so.)
 */
export interface TileFailedEvent {
  readonly type: "tile-failed";
  readonly tileId: string | null;
  readonly cell: string | null;
  readonly streamSeq: number;
  readonly code: ErrorCode;
  readonly reason: string;
  readonly deliveries: number;
  /** Sequence of the dead letter in LANEMAP_DLQ. */
  readonly deadLetterSeq: number;
}

/** A transient failure: the message was nak'd and will be redelivered after `delayMs`. */
export interface TileRetryEvent {
  readonly type: "tile-retry";
  readonly tileId: string | null;
  readonly streamSeq: number;
  readonly deliveries: number;
  readonly reason: string;
  readonly delayMs: number;
}

/** The worker switched to another model (tiles started from now on use it). */
export interface ModelActivatedEvent {
  readonly type: "model-activated";
  readonly version: string;
  readonly previous: string | null;
}

/** A newly activated model could not be loaded; the worker keeps the one it has. */
export interface ModelFailedEvent {
  readonly type: "model-failed";
  readonly version: string;
  readonly reason: string;
}

/** No model is active yet: the worker pulls nothing until one is. */
export interface WaitingForModelEvent {
  readonly type: "waiting-for-model";
}

/** Pulling from the consumer failed (server away, consumer missing); the worker retries. */
export interface ConsumerErrorEvent {
  readonly type: "consumer-error";
  readonly reason: string;
}

/**
 * The shared durable consumer had vanished (`nats consumer rm`) while its stream was intact and not
 * behind lanemap's record: this worker re-created it with the start-up's config and goes on.
 */
export interface ConsumerRecreatedEvent {
  readonly type: "consumer-recreated";
  readonly stream: string;
  readonly consumer: string;
}

/**
 * The ingest stream was deleted or recreated behind lanemap's record under the running worker: it
 * stops (in-flight tiles finish first) and `ended` gives the error (INGEST_STREAM_BEHIND, NATS_SETUP).
 */
export interface StreamLostEvent {
  readonly type: "stream-lost";
  readonly code: ErrorCode;
  readonly reason: string;
}

/** The worker stopped (after draining its in-flight tiles). */
export interface StoppedEvent {
  readonly type: "stopped";
}

/** Everything a speed worker reports. */
export type SpeedEvent =
  | TileClassifiedEvent
  | TileDuplicateEvent
  | TileRemovedEvent
  | TileFailedEvent
  | TileRetryEvent
  | ModelActivatedEvent
  | ModelFailedEvent
  | WaitingForModelEvent
  | ConsumerErrorEvent
  | ConsumerRecreatedEvent
  | StreamLostEvent
  | StoppedEvent;

/**
 * Fan-out of events to listeners and async iterators. An iterator buffers what it has not read
 * yet (bounded: past `limit` the oldest events are dropped, so a reader that stopped reading cannot
 * grow the worker's memory) and ends when the hub closes.
 */
export class EventHub<T> {
  private readonly listeners = new Set<(e: T) => void>();
  private readonly closers = new Set<() => void>();
  private closed = false;

  /** Calls `fn` for every later event; returns the function that unsubscribes. */
  on(fn: (e: T) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Delivers an event to everyone listening (a throwing listener is not allowed to stop the rest). */
  emit(e: T): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(e);
      } catch {
        // A listener's bug must not become the worker's.
      }
    }
  }

  /** An async iterator over later events; `break` (return) unsubscribes. */
  iterate(limit = 10_000): AsyncIterableIterator<T> {
    const buffer: T[] = [];
    let wake: (() => void) | null = null;
    let done = this.closed;
    const off = this.on((e) => {
      buffer.push(e);
      if (buffer.length > limit) buffer.shift();
      wake?.();
    });
    const closeFn = () => {
      done = true;
      wake?.();
    };
    this.closers.add(closeFn);
    const finish = (): IteratorReturnResult<undefined> => {
      done = true;
      off();
      this.closers.delete(closeFn);
      return { done: true, value: undefined };
    };
    const it: AsyncIterableIterator<T> = {
      next: async () => {
        for (;;) {
          const e = buffer.shift();
          if (e !== undefined) return { done: false, value: e };
          if (done) return finish();
          await new Promise<void>((r) => (wake = r));
          wake = null;
        }
      },
      return: async () => finish(),
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Ends every iterator (after it has read what is buffered) and drops the listeners. */
  close(): void {
    this.closed = true;
    for (const c of [...this.closers]) c();
    this.listeners.clear();
  }
}
