/**
 * Server-sent events: live-view changes (`live-change`) and batch view switches (`batch-switch`),
 * for the web map to refresh what changed. A `hello` event first tells a client which versions it
 * starts from; a comment every 15 s keeps proxies from closing an idle stream.
 */
import type { Request, Response } from "express";
import { ProblemError } from "../errors.js";
import type { BatchViewSource } from "../view/batch-source.js";
import type { LiveSource } from "../view/live-source.js";

const HEARTBEAT_MS = 15_000;

/** Fans view changes out to every open event stream. */
export class EventHub {
  private readonly clients = new Set<Response>();
  private readonly unsubscribe: (() => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  private readonly maxClients: number;
  private readonly batch: BatchViewSource;
  private readonly live: LiveSource | null;

  constructor(options: { batch: BatchViewSource; live: LiveSource | null; maxClients?: number }) {
    this.batch = options.batch;
    this.live = options.live;
    this.maxClients = options.maxClients ?? 1000;
    this.unsubscribe.push(options.batch.onSwitch((s) => this.broadcast("batch-switch", s)));
    if (options.live) this.unsubscribe.push(options.live.onChange((c) => this.broadcast("live-change", c)));
    this.heartbeat = setInterval(() => {
      for (const res of this.clients) res.write(": ping\n\n");
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /**
   * Sends one event to every open stream: the hook other parts of serving (label changes, training
   * jobs) use to tell the map, besides the view changes the hub follows itself.
   */
  publish(event: string, data: unknown): void {
    this.broadcast(event, data);
  }

  private broadcast(event: string, data: unknown): void {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.clients) res.write(frame);
  }

  /** Clients connected now. */
  get size(): number {
    return this.clients.size;
  }

  /** Serves one event stream until the client goes away or the hub closes. */
  handle(req: Request, res: Response): void {
    if (this.clients.size >= this.maxClients)
      throw new ProblemError(
        503,
        "too-many-streams",
        "Too many event streams",
        `at most ${this.maxClients} event streams at once`,
        {
          headers: { "Retry-After": "30" },
        },
      );
    res.status(200);
    res.setHeader("Content-Type", "text/event-stream; charset=utf-8");
    res.setHeader("Cache-Control", "no-cache, no-transform");
    res.setHeader("Connection", "keep-alive");
    res.setHeader("X-Accel-Buffering", "no");
    res.flushHeaders();
    const v = this.batch.peek();
    const snap = this.live?.snapshot() ?? null;
    res.write("retry: 5000\n\n");
    res.write(
      `event: hello\ndata: ${JSON.stringify({
        batch: v ? { name: v.name, version: v.version, watermark: v.manifest.watermark } : null,
        live: snap ? { position: snap.position, size: snap.size } : null,
      })}\n\n`,
    );
    this.clients.add(res);
    req.once("close", () => this.clients.delete(res));
  }

  /** Ends every stream and stops listening. */
  close(): void {
    clearInterval(this.heartbeat);
    for (const u of this.unsubscribe) u();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
