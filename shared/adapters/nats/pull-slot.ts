/**
 * One message at a time from a durable pull consumer, on one long-lived subscription (issue 14's
 * work queue, bench:scale). nats.js's `consumer.fetch({ max_messages: 1 })` costs, per message, a
 * new inbox subscription and its unsubscribe (two more protocol writes and two interest changes
 * in nats-server), a status iterator and a close listener; `consume()` keeps one subscription but
 * asks for the next message as soon as one arrives, so a slot busy with a tile would hold a task
 * it cannot start while that task's ack wait runs. A PullSlot asks for exactly one message per
 * `next()` — a pull request (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`, batch 1, expires)
 * whose reply subject is a fresh token under the slot's one wildcard subscription — so a slot
 * still holds at most the task it works on, and only the pull request itself crosses the wire.
 *
 * Each pull has its own reply subject, so a late status of an earlier pull (its 408 after the slot
 * stopped waiting for it) is told from the current pull's and ignored. A message keeps its stream
 * subject on delivery, so it is the answer to whichever pull waits; one that comes while none
 * waits (its pull was given up, or answered twice after a reconnect) is handed back at once
 * (`-NAK`, redelivered now) instead of being held.
 *
 * The acknowledgements are nats.js's (`JsMsg`): `+ACK`, `-NAK {delay}`, `+WPI`, `+TERM reason`
 * published to the message's `$JS.ACK...` reply subject (ADR-15 of nats-io/nats-architecture-and-design);
 * the delivery info is parsed from that subject as nats.js's `parseInfo` does. A `next` may carry the
 * acknowledgement of the slot's previous message (`ack`): then the pull request is that message's
 * `+NXT {batch, expires}` on its ack subject, whose reply subject the server delivers to — one
 * message to the broker instead of an `+ACK` and a pull request (ADR-15, "AckNext"; nats-server
 * acknowledges, then serves it as a pull request of the same consumer).
 */
import {
  createInbox,
  nanos,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { StreamSetupError } from "./streams.js";

/** Delivery info of a pulled message, from its `$JS.ACK...` reply subject. */
export interface PulledInfo {
  readonly stream: string;
  readonly consumer: string;
  /** 1 on the first delivery. */
  readonly deliveryCount: number;
  readonly streamSequence: number;
  /** When the stream stored the message, ns since the epoch. */
  readonly timestampNanos: number;
  /** Messages still pending for the consumer after this one. */
  readonly pending: number;
}

/** A message a PullSlot delivered: its payload, delivery info and acknowledgements. */
export interface PulledMsg {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Its stream sequence. */
  readonly seq: number;
  readonly info: PulledInfo;
  /** Done: removed from a work-queue stream. */
  ack(): void;
  /** Not done: delivered again after `delayMs` (at once without). */
  nak(delayMs?: number): void;
  /** Still working: the ack wait starts again. */
  working(): void;
  /** Never deliver it again. */
  term(reason?: string): void;
}

const encoder = new TextEncoder();
const ACK = encoder.encode("+ACK");
const NAK = encoder.encode("-NAK");
const WPI = encoder.encode("+WPI");

/**
 * Delivery info from a JetStream ack subject, old form
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` or new form with
 * `<domain>.<account hash>` after ACK (and a random token at the end); null when it is neither.
 */
export function parseAckSubject(reply: string): PulledInfo | null {
  const t = reply.split(".");
  if (t.length === 9) t.splice(2, 0, "_", "");
  if (t.length < 11 || t[0] !== "$JS" || t[1] !== "ACK") return null;
  const n = (i: number) => Number.parseInt(t[i]!, 10);
  return {
    stream: t[4]!,
    consumer: t[5]!,
    deliveryCount: n(6),
    streamSequence: n(7),
    timestampNanos: n(9),
    pending: n(10),
  };
}

class Pulled implements PulledMsg {
  private done = false;
  constructor(
    private readonly msg: Msg,
    readonly info: PulledInfo,
  ) {}
  get subject(): string {
    return this.msg.subject;
  }
  get data(): Uint8Array {
    return this.msg.data;
  }
  get seq(): number {
    return this.info.streamSequence;
  }
  /** One final acknowledgement at most, as nats.js's JsMsg; `+WPI` any number of times before it. */
  private reply(payload: Uint8Array, final = true): void {
    if (this.done) return;
    this.done = final;
    this.msg.respond(payload);
  }
  ack(): void {
    this.reply(ACK);
  }
  /**
   * Acknowledges it with `+NXT <pull>`, its reply subject `reply`: the server then delivers the
   * consumer's next message there, as for a pull request. False (nothing sent) when it already
   * had its final acknowledgement.
   */
  ackNext(pull: string, reply: string): boolean {
    if (this.done) return false;
    this.done = true;
    this.msg.respond(encoder.encode(`+NXT ${pull}`), { reply });
    return true;
  }
  nak(delayMs?: number): void {
    this.reply(delayMs ? encoder.encode(`-NAK ${JSON.stringify({ delay: nanos(delayMs) })}`) : NAK);
  }
  working(): void {
    this.reply(WPI, false);
  }
  term(reason = ""): void {
    this.reply(encoder.encode(reason ? `+TERM ${reason}` : "+TERM"));
  }
}

/** Options of {@link PullSlot.next}. */
export interface PullOptions {
  /** How long the server keeps the pull request waiting for a message, in ms. */
  readonly expiresMs: number;
  /** Stops waiting: `next` resolves null at once. */
  readonly signal?: AbortSignal;
  /**
   * A message of this slot to acknowledge with this pull, in one `+NXT` (see the module comment);
   * acknowledged even when the pull then fails or is aborted.
   */
  readonly ack?: PulledMsg;
}

/** Beyond `expiresMs`, how long the slot waits for the server's 408 before it gives the pull up itself. */
const EXPIRY_MARGIN_MS = 2_000;

/** The pull being waited for: its reply token and how it ends. */
interface Waiting {
  readonly token: number;
  readonly settle: (m: PulledMsg | null, err?: unknown) => void;
}

/** One message at a time from a durable pull consumer (see the module comment). */
export class PullSlot {
  private readonly sub: Subscription;
  private readonly prefix = createInbox();
  private readonly nextSubject: string;
  private serial = 0;
  private waiting: Waiting | undefined;
  private silent = false;

  /**
   * A slot on durable consumer `consumer` of `stream`; one subscription until `close`.
   * `unclaimed` gets a message that arrives when no pull waits (one given up: expired or aborted
   * while the server was already delivering); it must hand it back. Default: `-NAK` it silently.
   */
  constructor(
    private readonly nc: NatsConnection,
    stream: string,
    private readonly consumer: string,
    private readonly unclaimed: (m: PulledMsg) => void = (m) => m.nak(),
  ) {
    this.nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`;
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (err, msg) => this.onMsg(err, msg) });
  }

  /**
   * True when the last pull ended with no answer from the server at all, neither a message nor a
   * status (its 408 at expiry): a consumer that no longer exists answers nothing (nats-server
   * 2.9.10), so the caller asks what became of it (vanished-consumer.ts).
   */
  get unanswered(): boolean {
    return this.silent;
  }

  /**
   * Asks for one message and resolves with it, or with null when none came within `expiresMs`
   * (or `signal` aborted; see {@link unanswered}). Never more than one pull of a slot at a time.
   * @throws StreamSetupError (NATS_SETUP) when the server refuses the pull (its consumer deleted,
   *   no JetStream answering, a bad request) or the subscription ended.
   */
  next(options: PullOptions): Promise<PulledMsg | null> {
    if (this.waiting) throw new Error("PullSlot.next: a pull is already waiting");
    if (options.signal?.aborted) {
      options.ack?.ack();
      return Promise.resolve(null);
    }
    const token = ++this.serial;
    this.silent = false;
    return new Promise<PulledMsg | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiting?.token === token) this.silent = true;
        settle(null);
      }, options.expiresMs + EXPIRY_MARGIN_MS);
      const onAbort = () => settle(null);
      const settle = (m: PulledMsg | null, err?: unknown) => {
        if (this.waiting?.token !== token) return;
        this.waiting = undefined;
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(m);
      };
      this.waiting = { token, settle };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        const pull = JSON.stringify({ batch: 1, expires: nanos(options.expiresMs) });
        const reply = `${this.prefix}.${token}`;
        const { ack } = options;
        const sent = ack instanceof Pulled && ack.ackNext(pull, reply);
        if (!sent) {
          ack?.ack(); // another slot's message, or one already acknowledged (then a no-op)
          this.nc.publish(this.nextSubject, encoder.encode(pull), { reply });
        }
      } catch (err) {
        settle(null, this.refused(String((err as Error).message ?? err), err));
      }
    });
  }

  /** Ends the subscription; a message the server still delivers to it is redelivered after its ack wait. */
  close(): void {
    this.waiting?.settle(null);
    this.sub.unsubscribe();
  }

  private refused(why: string, cause?: unknown): StreamSetupError {
    return new StreamSetupError(`pull from consumer ${this.consumer} failed: ${why}`, { cause });
  }

  private onMsg(err: Error | null, msg: Msg): void {
    if (err) {
      this.waiting?.settle(null, this.refused(err.message, err));
      return;
    }
    const info = msg.reply ? parseAckSubject(msg.reply) : null;
    if (info) {
      // A message keeps its own subject on delivery, so which pull it answers is not known; taken
      // by the pull waiting, if any — at most one message per slot either way.
      const m = new Pulled(msg, info);
      if (this.waiting) this.waiting.settle(m);
      else this.unclaimed(m); // no pull waits (one given up): handed back rather than held
      return;
    }
    // A status comes on the reply subject of the pull it ends.
    const token = Number(msg.subject.slice(this.prefix.length + 1));
    const current = this.waiting?.token === token ? this.waiting : undefined;
    // A status: 408 the pull expired, 404 no message, 409 the consumer went away / too many
    // pulls waiting / leadership changed, 503 no JetStream answered; 100 is a heartbeat.
    const code = msg.headers?.code ?? 0;
    if (!current || code === 100) return;
    if (code === 404 || code === 408) current.settle(null);
    else current.settle(null, this.refused(`${code} ${msg.headers?.description ?? ""}`.trim()));
  }
}
