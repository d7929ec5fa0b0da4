/**
 * The coordinator side of a batch run on the JetStream work queue (issue 14, "batch runs as a
 * scheduled stream"). The runner has already ordered the tiles (Hilbert, around a tile of interest);
 * each `process` call publishes that tile's task on `batch.task.<runId>`, in the runner's order and
 * never more than `slots` at once, and resolves when the tile's result comes back on
 * `batch.result.<runId>`, which this executor reads with an ordered consumer of its own.
 *
 * - A task carries one tile, or up to TASK_MAX_TILES small ones (TASK_MAX_SAMPLES announced samples
 *   in all): the tiles asked for in one tick are packed into full tasks, and a partial one waits for
 *   more tiles only while half the window is still on the queue or in workers' hands (a result,
 *   then its successor's `process`, comes soon); the run's start and tail publish it at once. Each
 *   tile still has its own result, so everything below holds per tile.
 * - A task's Nats-Msg-Id is `<runId>:<tileIds, comma-separated>:<generation>`, the generation being that of the
 *   run's tasks still queued when the coordinator starts (a resumed one), else its own start time:
 *   a re-publish of a queued task within the duplicate window is dropped by the server, never
 *   classified twice, while a run whose tasks were purged (below) publishes afresh — a filtered
 *   purge leaves the old ids in the server's duplicate window (nats-server#6782).
 * - Results are read from the start of the run's subject, so a coordinator that resumes a crashed
 *   run's checkpoint (same run id, see batch/staging.ts) takes the results the old incarnation
 *   missed instead of asking for them again; a result of another model version is dropped.
 * - The first result of a tile wins; later ones (a worker that died after publishing, before its
 *   ack) are counted and ignored.
 * - A task nobody acknowledged within max_deliver deliveries (its worker died or overran ack_wait
 *   every time) is reported by the server's max-deliveries advisory: the coordinator publishes a
 *   MAX_DELIVER failure result for it (so a resumed coordinator sees it too) and removes the task.
 * - A run never waits forever: when no new task has been taken by a worker, no result has come
 *   back and no task was held in progress by one for `config.batch.stallMs` (LANEMAP_BATCH_STALL_S)
 *   while tiles are owed, every waiting `process` rejects with BATCH_STALLED; a held task counts
 *   as work only up to the longest deadline of the tasks owed since the last progress, since a
 *   frozen worker holds its task for ever (stall-rule.ts). An abort of `signal` rejects them at
 *   once with its reason (the first SIGTERM stops a coordinator that waits on an idle queue).
 * - A node loss is ridden out, not fatal. The result consumer is R1 and lives on one node: when
 *   that node dies the ordered consumer of nats.js keeps asking the dead one and never delivers
 *   again (the operator's run 1 of issue 14: 81 results in the stream, 22 read). So the reader
 *   re-creates its consumer from the last stream sequence it read whenever the consumer ends or
 *   fails, and the watchdog compares the last result of the run in the stream with the last one
 *   read: results that wait unread for RESULT_LAG_MS get a new consumer, and a stall while
 *   results wait unread is reported as such, never blamed on the workers. Task publishes and the
 *   watchdog's reads retry transient JetStream errors (a leader election: timeouts, "jetstream is
 *   not enabled") for up to TRANSIENT_RETRY_MS; a task re-published under its Nats-Msg-Id is a
 *   no-op on the server.
 * - A run that ends (published, or failed other than by an interruption) purges its tasks still
 *   queued (`close({ purge: true })`), so a worker started later does not classify them; an
 *   interrupted one keeps them for its resume.
 */
import { getMaxListeners, setMaxListeners } from "node:events";
import { hostname } from "node:os";
import {
  DeliverPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  BATCH_HEADERS,
  BATCH_RASTER_BUCKET,
  BATCH_RESULT_MAX_AGE_S,
  BATCH_RESULT_STREAM,
  BATCH_TASK_CONSUMER,
  BATCH_TASK_STREAM,
  NatsModelRegistry,
  batchResultSubject,
  batchTaskSubject,
  ensureBatchQueue,
  ensureStreams,
  isTransientBrokerError,
  readObjectBytes,
  maxDeliveriesAdvisory,
  readRunRecord,
  recordRunOver,
  retryTransient,
  storedBeforeRunOver,
  type BatchQueueSettings,
  type RunEnd,
} from "../shared/adapters/nats/index.js";
import {
  LanemapError,
  describeError,
  parseModel,
  type CatalogueEntry,
  type Config,
  type ModelRegistry,
} from "../shared/index.js";
import { isTilesOwnFailure } from "./catalogue.js";
import { lookForStall } from "./stall-rule.js";
import { decodeResult, encodeResult, encodeTask, type ResultHead } from "./task-wire.js";
import { taskDeadlineMs } from "./task-worker.js";
import type { TileJobOutcome } from "./worker-pool.js";

/**
 * ack_wait beyond the base tile deadline. ack_wait is one setting of the shared consumer, not one
 * per tile, and it does not need to cover a tile's own deadline (which grows with the tile's size,
 * shared/pipeline/deadline.ts): a live task worker sends in-progress heartbeats every ack_wait / 3
 * from its event loop while the tile runs in a thread, so ack_wait only ever fires for a worker that
 * is gone, and its task goes to another within about this long.
 */
export const STREAM_ACK_MARGIN_MS = 5_000;

/** Tiles in flight per run unless told otherwise: enough to keep a fleet of workers busy. */
export const DEFAULT_STREAM_WINDOW = 64;

/**
 * The most tiles one task carries. A task of several small tiles costs the queue one task message,
 * one pull, one ack and one gap in the tile thread for all of them (a worker hands them to its
 * pool at once): at 128² those cost more than 10 % of a tile's classification (issue 14). Four
 * keeps a 64-tile window split over 16 workers.
 */
export const TASK_MAX_TILES = 4;

/**
 * The most announced samples (width × height × bands) of one task of several tiles: four 128² ×
 * 6-band tiles, about a third of a second of classification. A tile as large alone is a task of
 * its own, as every tile was before: its classification dwarfs what a task costs.
 */
export const TASK_MAX_SAMPLES = 4 * 128 * 128 * 6;

/**
 * The tasks on `subject` still in the task stream (queued, or held by a worker), read one stored
 * message after the other (no consumer): each task's tile ids by the task's key (its stream
 * sequence). Throws what the reads throw (no leader now, an older server).
 */
async function readQueuedTasks(
  jsm: JetStreamManager,
  subject: string,
  dead: (seq: number) => boolean = () => false,
): Promise<Map<string, string[]>> {
  const tasks = new Map<string, string[]>();
  for await (const m of storedTasks(jsm, subject)) {
    if (dead(m.seq)) continue;
    const ids = (m.header?.get(BATCH_HEADERS.tileId) ?? "").split(",").filter(Boolean);
    if (ids.length > 0) tasks.set(`seq ${m.seq}`, ids);
  }
  return tasks;
}

/**
 * The task messages on `subject` still in the task stream, in stream order, each read when the
 * previous one was taken (STREAM.MSG.GET, no consumer). Throws what the reads throw.
 */
async function* storedTasks(jsm: JetStreamManager, subject: string): AsyncGenerator<StoredMsg> {
  for (let seq = 1; ;) {
    // STREAM.MSG.GET's `next_by_subj` (nats-server 2.9): the first message on `subject` from `seq`.
    const query = { seq, next_by_subj: subject } as unknown as { seq: number };
    const m = await jsm.streams.getMessage(BATCH_TASK_STREAM, query);
    if (!m) return;
    yield m;
    seq = m.seq + 1;
  }
}

/**
 * The tile ids of the tasks on `subject` still in the task stream, each with its task's key (see
 * {@link readQueuedTasks}); none when they cannot be read (the message ids then still drop a
 * re-published task of the same tiles).
 */
async function tilesQueued(
  jsm: JetStreamManager,
  subject: string,
  dead: (seq: number) => boolean,
): Promise<Map<string, string>> {
  const tiles = new Map<string, string>();
  const tasks = await readQueuedTasks(jsm, subject, dead).catch(() => new Map<string, string[]>());
  for (const [key, ids] of tasks) for (const id of ids) tiles.set(id, key);
  return tiles;
}

/**
 * Which stored tasks of run `runId` are dead: stored before the run was recorded over
 * (batch-runs.ts), by sequence. None when the run has no record or it cannot be read now.
 */
async function deadTasksOf(
  nc: NatsConnection,
  jsm: JetStreamManager,
  runId: string,
): Promise<(seq: number) => boolean> {
  try {
    const record = await readRunRecord(nc, runId);
    if (!record) return () => false;
    const created = (await jsm.streams.info(BATCH_TASK_STREAM)).created;
    return (seq) => storedBeforeRunOver(record, seq, created);
  } catch {
    return () => false;
  }
}

/** A tile whose task is not published yet, and its `process` call's wait for that publish. */
interface PendingTile {
  readonly entry: CatalogueEntry;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** The work queue's settings from config, the same for coordinators and workers. */
export function batchQueueSettings(config: Config): BatchQueueSettings {
  return {
    replicas: config.storage.replicas,
    ackWaitMs: config.decodeTimeoutMs + STREAM_ACK_MARGIN_MS,
    maxDeliver: config.speed.maxDeliver,
    resultMaxAgeS: BATCH_RESULT_MAX_AGE_S,
    duplicateWindowS: config.stream.duplicateWindowS,
  };
}

/** Options of {@link StreamTileExecutor.start}. */
export interface StreamExecutorOptions {
  readonly nc: NatsConnection;
  readonly config: Config;
  readonly logger: Logger;
  /** The run's id on the queue: a resumed run keeps the id of the run whose checkpoint it adopted. */
  readonly runId: string;
  /** The model JSON the run applies; stored in `models` first when it is not there yet. */
  readonly artifact: Uint8Array;
  /** The registry workers load models from (default the NATS registry on `nc`). */
  readonly models?: ModelRegistry;
  /** The tiles this run still needs: results of any other tile are dropped. */
  readonly tileIds: ReadonlySet<string>;
  /** Tiles in flight at once (default {@link DEFAULT_STREAM_WINDOW}). */
  readonly window?: number;
  /**
   * The most tiles one task carries (default {@link TASK_MAX_TILES}; fewer in a window under 16).
   * 1 publishes every tile as a task of its own, which workers of every version read.
   */
  readonly tilesPerTask?: number;
  /** Stops the run: tiles still waiting reject at once with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * The watchdog's and failure paths' managers skip nats.js' account-info check: the meta leader
 * answers it, and while its node is being replaced that check alone times out.
 */
const NO_API_CHECK = { checkAPI: false } as const;

/** How often a waiting coordinator asks the task consumer whether workers take tasks, at most. */
const STALL_POLL_MS = 5_000;

/**
 * A coordinator that has had no result for this long (or half LANEMAP_BATCH_STALL_S, when shorter:
 * before the stall watchdog could fail the run) says, as often, what it waits on (the tiles owed,
 * how many tasks workers hold in progress and how many are queued, a few tile ids):
 * big tiles legitimately hold workers for minutes (their deadline grows with their size), and an
 * operator saw a run silent for 5 minutes not knowing why (issue 14, the operator's recheck).
 */
export const WAITING_REPORT_MS = 30_000;

/**
 * How long a result of the run may sit in the results stream unread before the coordinator
 * re-creates its result consumer (see the module comment): longer than a leader election.
 */
export const RESULT_LAG_MS = 10_000;

/**
 * How often a coordinator with tiles owed checks that their tasks are still on the work queue, at
 * most (or half LANEMAP_BATCH_STALL_S, when shorter), in ms: see `checkLostTasks`. One request
 * (the run's subject's count) when nothing is missing.
 */
export const LOST_TASK_CHECK_MS = 30_000;

/**
 * The most times one tile's task is published again after the broker lost it. A task that goes
 * missing every time is not the broker's doing (a worker from before tasks of several tiles
 * terminates them): the run then ends BATCH_STALLED as before, not in an endless loop.
 */
export const LOST_TASK_REPUBLISH_MAX = 3;

/** How long a task publish retries transient JetStream errors: a few leader elections. */
export const TRANSIENT_RETRY_MS = 60_000;

/**
 * How long `close` waits for the purge of the run's tasks and for its result reader to stop, in ms:
 * a reader stuck on a frozen or lost server must not hold the run's end — the error that ended the
 * run would never be reported and a SIGTERM would be ignored (issue 14, F3: a resume hung 10 min).
 */
export const CLOSE_WITHIN_MS = 10_000;

/** The coordinator of one run on the work queue (see the module comment). */
export class StreamTileExecutor {
  readonly replaced = 0;
  /** Results dropped because an earlier one of the same tile was taken (first wins). */
  duplicates = 0;
  /**
   * Tiles whose taken result came from a redelivered task: a worker was lost holding it (SIGKILL,
   * its machine gone) or missed its deadline, and another (or the same, restarted) took it again.
   */
  redelivered = 0;
  /** The worker processes (their names, host:pid by default) whose results were taken. */
  private readonly workerNames = new Set<string>();
  private readonly waiting = new Map<string, (o: TileJobOutcome) => void>();
  /** Results that came before their tile was asked for (a resumed run's late results). */
  private readonly arrived = new Map<string, TileJobOutcome>();
  /** Tiles whose first result was accepted (its raster may still be downloading). */
  private readonly accepted = new Set<string>();
  private closed = false;
  /** Tiles asked for whose task is not published yet (see {@link pack}), in the runner's order. */
  private readonly pending: PendingTile[] = [];
  private packScheduled = false;
  /** The most tiles one task carries: up to TASK_MAX_TILES, fewer in a small window. */
  private readonly tilesPerTask: number;
  /** When this incarnation started reading results (ms since the epoch). */
  private readonly startedAtMs = Date.now();
  /**
   * Tiles whose only result so far is an earlier incarnation's transient failure (a storage timeout
   * while a node was down): tried again under a fresh message id, the old one may still be in the
   * server's duplicate window.
   */
  private readonly retried = new Set<string>();
  private readonly reading: Promise<void>;
  /** The result consumer's messages now; replaced when the reader re-creates its consumer. */
  private results: ConsumerMessages | undefined;
  /** The stream sequence of the last result read: a re-created consumer starts after it. */
  private lastResultSeq = 0;
  /** When a result was last read or the result consumer last (re-)created (ms since the epoch). */
  private lastReadMs = Date.now();
  /** Result consumers created after the first one (a node loss, a stuck consumer). */
  resultConsumerResets = 0;
  /** The last result of the run in the stream at the watchdog's last look that was not read yet. */
  private unreadSeq = 0;
  /** Ends the reader's wait between two consumers (close). */
  private wakeReader: (() => void) | undefined;
  /**
   * Rejects when the run cannot go on (stalled queue, aborted): every `process` races it. Never
   * resolves.
   */
  private readonly halted: Promise<never>;
  private halt!: (err: unknown) => void;
  /** Why the run was halted, once it was: later `process` calls throw it without publishing. */
  private haltedBy: { readonly err: unknown } | undefined;
  /** When a sign of work was last seen: progress, or a task held within its bound (stall-rule.ts). */
  private lastSignMs = Date.now();
  /** When a new task of the queue was last taken or a result of the run last came (ms since the epoch). */
  private progressMs = Date.now();
  /** The task consumer's last delivered stream sequence at the last look, to tell a new task taken. */
  private delivered = -1;
  /** The tiles asked for (`process`) without a result yet: what a lost task is published again with. */
  private readonly asked = new Map<string, CatalogueEntry>();
  /**
   * Tiles without a result whose task the broker acknowledged at publish (or an earlier
   * incarnation's task, asked for): each should be on the queue until its result is stored.
   */
  private readonly onQueue = new Set<string>();
  /** The task each tile on the queue is in: its message id, or an earlier incarnation's stream sequence. */
  private readonly taskOf = new Map<string, string>();
  /** How often each tile's task was published again after the broker lost it. */
  private readonly lostAgain = new Map<string, number>();
  /** Rounds of tasks published again so far: each round's message ids are its own. */
  private lostRounds = 0;
  /** When the queue was last checked for lost tasks (ms since the epoch). */
  private lastLostCheckMs = Date.now();
  private readonly lostCheckMs: number;
  private checkingLost = false;
  /** Tiles whose task was published again because the broker lost it (see checkLostTasks). */
  republished = 0;
  /** Each published tile's task deadline (taskDeadlineMs), in ms: what a held task may take. */
  private readonly taskBoundMs = new Map<string, number>();
  /** When a result of the run last came, or the last "waiting" report was logged (ms since the epoch). */
  private lastHeardMs = Date.now();
  private readonly watchdog: NodeJS.Timeout;
  private readonly onAbort = () => this.halt(this.options.signal?.reason);
  /** The `worker` of the failure results this coordinator writes itself (MAX_DELIVER). */
  private readonly coordinatorName = `${hostname()}:${process.pid} (coordinator)`;

  private constructor(
    private readonly options: StreamExecutorOptions,
    private readonly js: JetStreamClient,
    private readonly advisories: Subscription,
    readonly modelVersion: string,
    readonly slots: number,
    /** The message-id generation of this run's tasks (see the module comment). */
    private readonly generation: string,
    /** Tiles of an earlier incarnation's tasks still on the queue, with their task's key: not published again. */
    private readonly queuedTiles: Map<string, string>,
    /** Which of the run's stored tasks were stored before it was once recorded over (batch-runs.ts). */
    private readonly deadTask: (seq: number) => boolean,
  ) {
    for (const [tileId, key] of queuedTiles) this.taskOf.set(tileId, key);
    this.halted = new Promise<never>((_, reject) => {
      this.halt = (err) => {
        this.haltedBy ??= { err };
        reject(err);
        // Tiles still waiting to be packed never will be (pack() stops once halted): their
        // `process` calls end with the halt's reason instead of waiting for a close that the
        // run's lanes, waiting on them, would never reach.
        for (const t of this.pending.splice(0)) t.reject(err);
      };
    });
    this.halted.catch(() => undefined); // observed by every `process`; none may be waiting
    // A window of a few tasks keeps one tile per task: several workers each get one.
    this.tilesPerTask = Math.max(1, Math.min(options.tilesPerTask ?? TASK_MAX_TILES, Math.floor(slots / 4)));
    this.reading = this.read();
    const stallMs = options.config.batch.stallMs;
    this.lostCheckMs = Math.min(LOST_TASK_CHECK_MS, stallMs / 2);
    this.watchdog = setInterval(() => void this.checkStall(), Math.min(STALL_POLL_MS, stallMs / 4));
    this.watchdog.unref();
    if (options.signal?.aborted) this.onAbort();
    else options.signal?.addEventListener("abort", this.onAbort, { once: true });
    // Every task publish retrying through a node loss waits on the run's signal, one listener each
    // (retryTransient): a full window of them is expected, not a leak, and Node's default of 10
    // printed a MaxListenersExceededWarning to an operator watching a node die (issue 14).
    if (options.signal)
      setMaxListeners(Math.max(getMaxListeners(options.signal), slots + 16), options.signal);
  }

  /**
   * Makes sure the queue's streams, consumer and bucket exist (and the speed lane's streams every
   * worker needs to start), stores the model in the registry
   * when it is not there, and starts reading the run's results.
   * @throws StreamSetupError (NATS_SETUP); ModelError for an artifact that is not a model;
   *   the registry's errors (a model whose classes disagree with its catalogue).
   */
  static async start(options: StreamExecutorOptions): Promise<StreamTileExecutor> {
    const { nc, config, runId } = options;
    // Idempotent set-up: retried through a leader election (a node lost as the run starts).
    await retryTransient(
      "creating or checking the batch work queue",
      async () => ensureBatchQueue(nc, await jetstreamManager(nc), batchQueueSettings(config)),
      { deadlineMs: TRANSIENT_RETRY_MS, logger: options.logger },
    );
    // The workers that take the tasks serve the speed lane too, and a `lanemap worker` starts by
    // making sure its streams exist: where they cannot be made (a node's max_file_store smaller than
    // LANEMAP_STREAM_MAX_BYTES asks, replicas the cluster cannot place) every worker exits at once
    // with NATS_SETUP, and a run that had published its tasks waited LANEMAP_BATCH_STALL_S for
    // nobody (an operator's check). The same set-up here fails the run at once with the same line.
    await retryTransient(
      "creating or checking the speed lane's streams the workers need",
      async () => ensureStreams(await jetstreamManager(nc), config.stream, config.storage.replicas),
      { deadlineMs: TRANSIENT_RETRY_MS, logger: options.logger },
    );
    const jsm = await jetstreamManager(nc, NO_API_CHECK);
    const model = parseModel(new TextDecoder().decode(options.artifact));
    const models = options.models ?? (await NatsModelRegistry.open(nc));
    if (!(await models.get(model.version))) await models.put(model);
    const js = jetstream(nc);
    // A task of this run still queued is an earlier incarnation's: publish under its generation.
    // Not one stored before the run was recorded over (a failed run resumed from its checkpoint):
    // workers drop those (batch-runs.ts), so their tiles are published afresh.
    const dead = await deadTasksOf(nc, jsm, runId);
    const queued = await jsm.streams
      .getMessage(BATCH_TASK_STREAM, { last_by_subj: batchTaskSubject(runId) })
      .catch(() => null);
    const queuedId = queued && !dead(queued.seq) ? (queued.header?.get("Nats-Msg-Id") ?? "") : "";
    const resumed = queuedId.startsWith(`${runId}:`);
    const generation = resumed ? queuedId.slice(queuedId.lastIndexOf(":") + 1) : String(Date.now());
    // The tiles of the earlier incarnation's tasks still queued (or in a worker's hands): their
    // results will come, and this incarnation may pack them differently, under other message ids.
    const queuedTiles = resumed
      ? await tilesQueued(jsm, batchTaskSubject(runId), dead)
      : new Map<string, string>();
    // Only the tiles this run still needs: a queued task's others are not waited for.
    for (const tileId of [...queuedTiles.keys()])
      if (!options.tileIds.has(tileId)) queuedTiles.delete(tileId);
    // The advisory callback needs the executor, which needs the subscription: a late-bound holder.
    const ref: { self?: StreamTileExecutor } = {};
    const advisories = nc.subscribe(maxDeliveriesAdvisory(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER), {
      callback: (err, msg) => {
        if (err || !ref.self) return;
        const a = msg.json<{ stream_seq?: number; deliveries?: number }>();
        if (typeof a.stream_seq === "number") void ref.self.onMaxDeliveries(a.stream_seq, a.deliveries ?? 0);
      },
    });
    const self = new StreamTileExecutor(
      options,
      js,
      advisories,
      model.version,
      options.window ?? DEFAULT_STREAM_WINDOW,
      generation,
      queuedTiles,
      dead,
    );
    ref.self = self;
    // `queueRunId`, not `runId`: the runner's logger already carries this run's id, and a resumed
    // run's queue id is the interrupted run's (one JSON line had two different `runId` keys).
    options.logger.info(
      { queueRunId: runId, model: model.version, window: self.slots, tiles: options.tileIds.size },
      "batch tiles go to the work queue",
    );
    return self;
  }

  /** Distinct worker processes whose results this run took (the coordinator's own MAX_DELIVER not counted). */
  get workers(): number {
    return this.workerNames.size;
  }

  /**
   * Publishes the tile's task (unless its result already came) and resolves with its result.
   * @throws what publishing throws (NATS unreachable): the run fails and keeps its checkpoint;
   *   LanemapError BATCH_STALLED when no worker takes the run's tasks (see the module comment);
   *   the signal's reason once the run is aborted.
   */
  async process(entry: CatalogueEntry): Promise<TileJobOutcome> {
    const { tileId } = entry;
    if (this.closed) return { ok: false, code: "CANCELLED", reason: "the run was stopped" };
    if (this.haltedBy) throw this.haltedBy.err;
    this.asked.set(tileId, entry);
    const early = this.arrived.get(tileId);
    if (early) {
      this.arrived.delete(tileId);
      return early;
    }
    const outcome = Promise.race([
      new Promise<TileJobOutcome>((resolve) => this.waiting.set(tileId, resolve)),
      this.halted,
    ]);
    // Awaited by the caller once returned; until then (the task still being packed or published) a
    // halt must not reject it unobserved: Node ends the process on an unhandled rejection (an
    // operator's BATCH_STALLED came out as a crash dump instead of `lanemap: ...`).
    outcome.catch(() => undefined);
    // Until its task is published (publishTask sets the task's own): the deadline of a task of
    // tiles of this size, full (a task of tiles queued by an earlier incarnation keeps this one).
    this.taskBoundMs.set(
      tileId,
      taskDeadlineMs(this.options.config, Array<CatalogueEntry>(this.tilesPerTask).fill(entry)),
    );
    if (this.accepted.has(tileId)) return outcome; // its result is on its way
    // Its task from an earlier incarnation is still queued: its result will come.
    if (this.queuedTiles.delete(tileId)) {
      this.onQueue.add(tileId);
      return outcome;
    }
    const published = new Promise<void>((resolve, reject) => this.pending.push({ entry, resolve, reject }));
    this.schedulePack();
    try {
      await published;
    } catch (err) {
      this.waiting.delete(tileId);
      throw err;
    }
    return outcome;
  }

  /** Packs the waiting tiles into tasks once this tick's `process` calls are in (see {@link pack}). */
  private schedulePack(): void {
    if (this.packScheduled || this.pending.length === 0) return;
    this.packScheduled = true;
    setImmediate(() => {
      this.packScheduled = false;
      this.pack();
    });
  }

  /**
   * Publishes the tiles waiting to be published as tasks (see the module comment, "a task of several
   * tiles"): as many full tasks as they make, then the rest as one more only when fewer than half
   * the window's tiles are on the queue or in workers' hands (the run's tail, or its start): while
   * more are, a result comes soon and its tile's successor fills the task.
   */
  private pack(): void {
    if (this.closed || this.haltedBy) return;
    while (this.pending.length > 0) {
      const n = this.firstTaskSize(this.pending);
      const full = n < this.pending.length || n >= this.tilesPerTask;
      const onTheQueue = this.waiting.size - this.pending.length;
      if (!full && onTheQueue >= this.slots / 2) return;
      void this.publishTask(this.pending.splice(0, n));
    }
  }

  /** How many of `tiles`, from the first, make one task: up to tilesPerTask and TASK_MAX_SAMPLES. */
  private firstTaskSize(tiles: readonly PendingTile[]): number {
    let n = 0;
    let samples = 0;
    for (const { entry } of tiles) {
      const s = entry.width * entry.height * entry.bandCount;
      if (n >= this.tilesPerTask || (n > 0 && samples + s > TASK_MAX_SAMPLES)) break;
      n++;
      samples += s;
    }
    return n;
  }

  /**
   * Publishes one task of `tiles` and settles each tile's `published` with its outcome. `again`
   * names a republish of tasks the broker lost (see checkLostTasks): a message id of its own.
   */
  private async publishTask(tiles: readonly PendingTile[], again?: number): Promise<void> {
    const { runId } = this.options;
    const entries = tiles.map((t) => t.entry);
    const ids = entries.map((e) => e.tileId);
    const boundMs = taskDeadlineMs(this.options.config, entries);
    for (const id of ids) this.taskBoundMs.set(id, boundMs);
    const h = natsHeaders();
    h.set(BATCH_HEADERS.runId, runId);
    h.set(BATCH_HEADERS.tileId, ids.join(","));
    h.set(BATCH_HEADERS.modelVersion, this.modelVersion);
    const task = encodeTask({
      runId,
      modelVersion: this.modelVersion,
      maxPixels: this.options.config.maxPixels,
      entries,
    });
    // A retried tile's task under the generation may be in the duplicate window: a fresh id. The id
    // names every tile of the task, so two tasks share one only when they carry the same tiles.
    const retried = ids.some((id) => this.retried.has(id));
    const generation =
      again !== undefined
        ? `${this.startedAtMs}l${again}`
        : retried
          ? `${this.startedAtMs}r`
          : this.generation;
    const msgID = `${runId}:${ids.join(",")}:${generation}`;
    try {
      // Idempotent under its Nats-Msg-Id: a publish that landed before its answer was lost is a no-op.
      await retryTransient(
        `publishing the task of tile${ids.length > 1 ? "s" : ""} ${ids.join(", ")} on ${batchTaskSubject(runId)}`,
        () => this.js.publish(batchTaskSubject(runId), task, { msgID, headers: h }),
        {
          deadlineMs: TRANSIENT_RETRY_MS,
          logger: this.options.logger,
          ...(this.options.signal ? { signal: this.options.signal } : {}),
        },
      );
      for (const id of ids) {
        this.onQueue.add(id);
        this.taskOf.set(id, msgID);
      }
      for (const t of tiles) t.resolve();
    } catch (err) {
      for (const t of tiles) t.reject(err);
    }
  }

  /**
   * Stops reading results; tiles still waiting resolve as CANCELLED. Tasks stay queued for a
   * resume unless `purge`: the run is over (published, or failed other than by an interruption),
   * and its tasks still queued are removed so that no worker classifies them for nobody. A purge
   * that fails is logged: the tasks then age out with the stream's max age.
   */
  async close(options: { purge?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.options.signal?.removeEventListener("abort", this.onAbort);
    // Tiles never published: their `process` calls resolve CANCELLED with the others below.
    for (const t of this.pending.splice(0)) t.resolve();
    for (const resolve of this.waiting.values())
      resolve({ ok: false, code: "CANCELLED", reason: "the run was stopped" });
    this.waiting.clear();
    this.advisories.unsubscribe();
    this.wakeReader?.();
    const ended = (async () => {
      if (options.purge) await this.purgeTasks();
      await this.results?.close().catch(() => undefined);
      await this.reading;
    })();
    ended.catch(() => undefined); // awaited below, possibly past its bound
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      ended.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_WITHIN_MS))),
    ]);
    clearTimeout(timer);
    if (!inTime) {
      // The reader stops by itself once its consumer ends: `closed` is set.
      this.results?.stop();
      this.options.logger.warn(
        { queueRunId: this.options.runId, withinMs: CLOSE_WITHIN_MS, purge: options.purge ?? false },
        "the batch result reader (or the purge of the run's tasks) did not stop in time; given up (NATS frozen or unreachable?)",
      );
    }
  }

  /**
   * Reads the run's results until closed: one ordered consumer from the start of the run's subject,
   * then, whenever it ends or fails (its node died, the watchdog stopped it), a new one from the
   * sequence after the last result read, after 250 ms, 500 ms, ... at most 5 s.
   */
  private async read(): Promise<void> {
    const log = this.options.logger;
    const subject = batchResultSubject(this.options.runId);
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const consumer = await this.js.consumers.get(BATCH_RESULT_STREAM, {
          filter_subjects: subject,
          ...(this.lastResultSeq > 0
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.lastResultSeq + 1 }
            : {}),
        });
        const messages = await consumer.consume();
        this.results = messages;
        this.lastReadMs = Date.now();
        if (this.closed) {
          // Closed while the consumer was being made (a SIGTERM as the run starts). Not `close()`:
          // nats.js ends a consumer's messages from inside their iteration, which never comes here,
          // so its promise never settled and the close waited CLOSE_WITHIN_MS for it (the first
          // SIGTERM took 10 s). `stop()` unsubscribes at once; the server drops the R1 consumer
          // after its inactive threshold.
          messages.stop();
          return;
        }
        for await (const m of messages) {
          attempt = 0;
          if (m.seq <= this.lastResultSeq) continue; // a re-created consumer's overlap
          this.lastResultSeq = m.seq;
          this.lastSignMs = this.progressMs = this.lastReadMs = Date.now();
          try {
            const { head, raster } = decodeResult(m.data);
            await this.onResult(head, raster, m.info.timestampNanos / 1e6 < this.startedAtMs);
          } catch (err) {
            log.warn({ err: describeError(err), subject: m.subject }, "unreadable batch result dropped");
          }
        }
      } catch (err) {
        if (!this.closed)
          log.warn({ err: describeError(err), subject }, "the batch result consumer failed; re-creating it");
      }
      if (this.closed) return;
      this.resultConsumerResets++;
      log.info(
        { subject, afterSeq: this.lastResultSeq, resets: this.resultConsumerResets },
        "re-creating the batch result consumer after the last result read",
      );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(5_000, 250 * 2 ** attempt));
        this.wakeReader = () => (clearTimeout(t), resolve());
      });
      this.wakeReader = undefined;
    }
  }

  /**
   * The watchdog's look at the results stream: when the run's last result there is past the last
   * one read and nothing was read for RESULT_LAG_MS, the consumer is stuck (its node died): stop
   * it, and the reader makes a new one. A failed look (no leader now) changes nothing.
   */
  private async checkUnreadResults(): Promise<void> {
    let last: number;
    try {
      const jsm = await jetstreamManager(this.options.nc, NO_API_CHECK);
      const m = await jsm.streams.getMessage(BATCH_RESULT_STREAM, {
        last_by_subj: batchResultSubject(this.options.runId),
      });
      last = m?.seq ?? 0;
    } catch (err) {
      this.options.logger.debug({ err: describeError(err) }, "cannot read the run's last result");
      return;
    }
    this.unreadSeq = last > this.lastResultSeq ? last : 0;
    if (this.unreadSeq === 0 || Date.now() - this.lastReadMs < RESULT_LAG_MS || this.closed) return;
    this.options.logger.warn(
      { lastInStream: last, lastRead: this.lastResultSeq, idleMs: Date.now() - this.lastReadMs },
      "batch results wait unread in the stream: the result consumer is stuck (its node died?); re-creating it",
    );
    this.lastReadMs = Date.now(); // one re-creation per RESULT_LAG_MS at most
    this.results?.stop();
  }

  private async onResult(head: ResultHead, raster: Uint8Array, earlier: boolean): Promise<void> {
    const { tileId } = head;
    const log = this.options.logger;
    if (head.runId !== this.options.runId || !this.options.tileIds.has(tileId)) return;
    if (head.modelVersion !== this.modelVersion) {
      log.warn({ tileId, model: head.modelVersion }, "batch result of another model dropped");
      return;
    }
    if (this.accepted.has(tileId)) {
      this.duplicates++;
      log.debug({ tileId, worker: head.worker }, "duplicate batch result ignored (first wins)");
      return;
    }
    const o = head.outcome;
    if (earlier && !o.ok && !isTilesOwnFailure(o.code)) {
      // A resumed run inherits only a tile's own failure: a transient one (STORAGE, ...), a DEADLINE
      // or MAX_DELIVER is tried again (a run whose every tile missed its deadline on frozen workers
      // failed every resume of it in 0.6 s on those old results, an operator's check).
      this.retried.add(tileId);
      log.info(
        { tileId, code: o.code },
        "an earlier incarnation's transient failure: the tile is tried again",
      );
      return;
    }
    this.accepted.add(tileId);
    this.queuedTiles.delete(tileId);
    this.asked.delete(tileId);
    this.onQueue.delete(tileId);
    this.taskOf.delete(tileId);
    if (head.worker !== this.coordinatorName) this.workerNames.add(head.worker);
    if ((head.deliveries ?? 1) > 1) this.redelivered++;
    let outcome: TileJobOutcome;
    if (!o.ok) outcome = o;
    else if (o.rasterObject === undefined) outcome = { ok: true, result: o.result, k: o.k, raster };
    else {
      // No consumer (object-reads.ts): a read that fails on the broker is a transient STORAGE
      // failure, tried again, not a missing raster.
      const stored = await readObjectBytes(this.options.nc, BATCH_RASTER_BUCKET, o.rasterObject).catch(
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      );
      outcome =
        stored instanceof Error
          ? {
              ok: false,
              code: isTransientBrokerError(stored) ? "STORAGE" : "OBJECT_MISSING",
              reason: `reading class raster ${o.rasterObject}: ${stored.message}`,
            }
          : stored
            ? { ok: true, result: o.result, k: o.k, raster: stored }
            : {
                ok: false,
                code: "OBJECT_MISSING",
                reason: `class raster ${o.rasterObject} is not in the store`,
              };
    }
    this.lastHeardMs = Date.now();
    const resolve = this.waiting.get(tileId);
    if (resolve) {
      this.waiting.delete(tileId);
      resolve(outcome);
    } else this.arrived.set(tileId, outcome);
    // Fewer tiles on the queue now: a partial task may have to go (the run's tail).
    this.schedulePack();
  }

  /**
   * Removes this run's tasks still on the queue (see close), one STREAM.MSG.DELETE each. Why not a
   * filtered STREAM.PURGE of the run's subject, as before: on nats-server 2.9.10 a node SIGKILLed
   * seconds after a filtered purge of a replicated stream came back with only the messages written
   * after it, as if the purge had been replayed unfiltered (issue 14, nats-removals-node-kill.test.ts),
   * which here would drop the tasks of a run started meanwhile; message deletes came through every
   * round of that probe.
   */
  private async purgeTasks(): Promise<void> {
    const purged = await removeQueuedTasks(this.options.nc, this.options.runId, this.options.logger);
    if (purged > 0)
      this.options.logger.info(
        { purged, subject: batchTaskSubject(this.options.runId) },
        "the run is over: its tasks still queued were removed",
      );
  }

  /**
   * Fails the run when tiles are owed and there has been no sign of work for `stallMs`: no new
   * task taken (the shared consumer's delivered stream sequence moved: some worker pulls), no
   * result, and no task held in progress by a worker within its deadline (stall-rule.ts).
   */
  private async checkStall(): Promise<void> {
    if (this.closed) return;
    const now = Date.now();
    if (this.waiting.size === 0) {
      this.lastSignMs = this.progressMs = now; // nothing owed: the runner is between phases or writing
      return;
    }
    await this.checkUnreadResults();
    let held = 0;
    try {
      const jsm = await jetstreamManager(this.options.nc, NO_API_CHECK);
      const info = await jsm.consumers.info(BATCH_TASK_STREAM, BATCH_TASK_CONSUMER);
      // The stream sequence, not the delivery count: a redelivery to a frozen worker's open pull
      // moves the count and is no progress.
      const delivered = info.delivered.stream_seq;
      if (this.delivered >= 0 && delivered !== this.delivered) this.progressMs = Date.now();
      this.delivered = delivered;
      held = info.num_ack_pending;
      this.reportWaiting(held, info.num_pending);
    } catch (err) {
      // No answer (a leader election, NATS down) is no sign of a worker either.
      this.options.logger.debug({ err: describeError(err) }, "cannot read the task consumer");
    }
    if (Date.now() - this.lastLostCheckMs >= this.lostCheckMs && (await this.checkLostTasks(false)) > 0)
      this.progressMs = Date.now();
    const stallMs = this.options.config.batch.stallMs;
    const heldBoundMs = this.heldBoundMs();
    const verdict = lookForStall({
      nowMs: Date.now(),
      progressMs: this.progressMs,
      signMs: this.lastSignMs,
      held,
      heldBoundMs,
      stallMs,
    });
    this.lastSignMs = verdict.signMs;
    if (this.closed || !verdict.stalled) return;
    // Nothing queued may be the broker's doing: before blaming the workers, every task owed is
    // looked for (a look under way decides first).
    if (this.checkingLost || (await this.checkLostTasks(true)) > 0) {
      if (!this.checkingLost) this.progressMs = this.lastSignMs = Date.now();
      return;
    }
    if (this.closed) return;
    const { runId } = this.options;
    const s = Math.round(stallMs / 1000);
    if (this.unreadSeq > 0) {
      // Workers did their part: the results are in the stream and this coordinator cannot read them.
      this.halt(
        new LanemapError(
          "BATCH_STALLED",
          `results of run ${runId} wait in ${BATCH_RESULT_STREAM} (up to sequence ${this.unreadSeq}, last read ${this.lastResultSeq}) ` +
            `that this coordinator could not read for ${s} s despite ${this.resultConsumerResets} new result consumers (${this.waiting.size} tiles waiting); ` +
            "check the cluster (`lanemap ops status`), then run the batch again: it resumes from the checkpoint and takes those results",
        ),
      );
      return;
    }
    if (verdict.cause === "held") {
      const idleS = Math.round((Date.now() - this.progressMs) / 1000);
      this.halt(
        new LanemapError(
          "BATCH_STALLED",
          `workers hold ${held} tasks of the task queue in progress past their deadline: no result of run ${runId} and no new task taken for ${idleS} s ` +
            `(the tasks' deadline ${Math.round(heldBoundMs / 1000)} s + LANEMAP_BATCH_STALL_S=${s}; ${this.waiting.size} tiles waiting, e.g. ${this.sampleOwed()}); ` +
            "a worker is frozen or hung: check the `lanemap worker` processes (stopped, swapping, a read that hangs), then run the batch again: it resumes from the checkpoint",
        ),
      );
      return;
    }
    this.halt(
      new LanemapError(
        "BATCH_STALLED",
        `no \`lanemap worker\` has taken a task of run ${runId} for ${s} s (${this.waiting.size} tiles waiting; LANEMAP_BATCH_STALL_S=${s}); ` +
          "start one with `lanemap worker` against the same NATS, then run the batch again: it resumes from the checkpoint",
      ),
    );
  }

  /**
   * Publishes again the tasks the broker lost (issue 14, F-B): after rolling kills and replica
   * repairs a nats-server 2.9 replica of LANEMAP_BATCH_TASKS may reset to a shorter history
   * ("expected sequence does not match store", last_seq 377 -> 365) and tasks it acknowledged at
   * publish are gone; the run waited for their results with nothing queued until BATCH_STALLED. A
   * tile is lost when its task was acknowledged at publish, it has no result, and no task on the
   * run's subject carries it — judged only once every result stored by the end of the look has been
   * read: a worker removes a task (acknowledges it) only after its results are stored, so a task
   * that went that way has its result read by then. Tiles are idempotent (the first result wins),
   * and a task published again has a message id of its own (`<runId>:<tiles>:<start>l<round>`): its
   * old id may still be in the duplicate window. An earlier incarnation's task lost before its
   * tiles are asked for is published when they are. The run's subject's message count gates the
   * look at each stored task (as many tasks as are owed: nothing lost), unless `full`.
   * @returns how many tiles were found lost (published again, or to be when asked for).
   */
  private async checkLostTasks(full: boolean): Promise<number> {
    if (this.closed || this.haltedBy || this.checkingLost) return 0;
    this.checkingLost = true;
    this.lastLostCheckMs = Date.now();
    const log = this.options.logger;
    const { runId } = this.options;
    const subject = batchTaskSubject(runId);
    try {
      const owed = [...this.onQueue].filter((id) => this.waiting.has(id) && !this.accepted.has(id));
      const earlier = [...this.queuedTiles.keys()];
      if (owed.length === 0 && earlier.length === 0) return 0;
      const tasksOwed = new Set([...owed, ...earlier].map((id) => this.taskOf.get(id) ?? id)).size;
      const jsm = await jetstreamManager(this.options.nc, NO_API_CHECK);
      const info = await jsm.streams.info(BATCH_TASK_STREAM, { subjects_filter: subject });
      const tasksInStream = info.state.subjects?.[subject] ?? 0;
      const none = (looked: string) => {
        log.debug({ tasksOwed, tasksInStream, looked }, "looked for lost batch tasks: none");
        return 0;
      };
      if (!full && tasksInStream >= tasksOwed) return none("count");
      const stored = new Set<string>();
      for (const ids of (await readQueuedTasks(jsm, subject, this.deadTask)).values())
        for (const id of ids) stored.add(id);
      const last = await jsm.streams.getMessage(BATCH_RESULT_STREAM, {
        last_by_subj: batchResultSubject(runId),
      });
      if ((last?.seq ?? 0) > this.lastResultSeq) return 0; // results wait unread: the next look decides
      const lostEarlier = earlier.filter((id) => !stored.has(id) && this.queuedTiles.delete(id));
      const lost = owed.filter(
        (id) => !stored.has(id) && this.onQueue.has(id) && this.waiting.has(id) && !this.accepted.has(id),
      );
      if (lost.length === 0 && lostEarlier.length === 0) return none("tasks");
      const again: PendingTile[] = [];
      const exhausted: string[] = [];
      for (const id of lost) {
        this.onQueue.delete(id);
        this.taskOf.delete(id);
        const times = this.lostAgain.get(id) ?? 0;
        const entry = this.asked.get(id);
        if (!entry || times >= LOST_TASK_REPUBLISH_MAX) {
          exhausted.push(id);
          continue;
        }
        this.lostAgain.set(id, times + 1);
        again.push({
          entry,
          resolve: () => undefined,
          // Not on the queue still: the next look finds it lost again.
          reject: (err) => {
            this.onQueue.add(id);
            log.warn(
              { tileId: id, err: describeError(err) },
              "cannot publish again a batch task the broker lost",
            );
          },
        });
      }
      const tiles = again.length;
      const round = ++this.lostRounds;
      const publishing: Promise<void>[] = [];
      while (again.length > 0)
        publishing.push(this.publishTask(again.splice(0, this.firstTaskSize(again)), round));
      this.republished += tiles;
      log.warn(
        {
          queueRunId: runId,
          lostTiles: lost.length + lostEarlier.length,
          publishedAgain: tiles,
          tasksPublished: publishing.length,
          earlierIncarnation: lostEarlier.length,
          notAgain: exhausted.length,
          tasksOwed,
          tasksInStream,
          tiles: [...lost, ...lostEarlier].slice(0, 5),
        },
        `batch tasks lost by the broker: ${lost.length + lostEarlier.length} tiles owed a result are in no task of ${BATCH_TASK_STREAM}; ` +
          `${tiles} published again in ${publishing.length} tasks` +
          (lostEarlier.length > 0
            ? `, ${lostEarlier.length} of an earlier incarnation to be published when asked for`
            : "") +
          (exhausted.length > 0
            ? `, ${exhausted.length} not again (lost ${LOST_TASK_REPUBLISH_MAX} times already)`
            : ""),
      );
      await Promise.all(publishing);
      return tiles + lostEarlier.length;
    } catch (err) {
      // No answer (a leader election, NATS down): the next look tries again.
      log.debug({ err: describeError(err), subject }, "cannot look for lost batch tasks");
      return 0;
    } finally {
      this.checkingLost = false;
    }
  }

  /** How long a held task counts as work after the last progress: the longest deadline of the tiles owed (ms). */
  private heldBoundMs(): number {
    let ms = 0;
    for (const tileId of this.waiting.keys()) ms = Math.max(ms, this.taskBoundMs.get(tileId) ?? 0);
    return ms;
  }

  /** A few tile ids owed, for a message. */
  private sampleOwed(): string {
    const ids = [...this.waiting.keys()];
    return ids.slice(0, 5).join(", ") + (ids.length > 5 ? ", ..." : "");
  }

  /**
   * Says what the run waits on when no result came for a while (see WAITING_REPORT_MS), in figures
   * that add up: the run's tiles without a result are those whose task is published and awaited
   * (the window) plus those not published yet; held and queued are the shared task queue's, every
   * run's tasks, not this run's alone.
   */
  private reportWaiting(held: number, queued: number): void {
    const reportMs = Math.min(WAITING_REPORT_MS, this.options.config.batch.stallMs / 2);
    if (Date.now() - this.lastHeardMs < reportMs) return;
    this.lastHeardMs = Date.now();
    const total = this.options.tileIds.size;
    const left = Math.max(this.waiting.size, total - this.accepted.size);
    const awaited = this.waiting.size;
    this.options.logger.warn(
      {
        queueRunId: this.options.runId,
        tilesLeft: left,
        tilesTotal: total,
        awaited,
        notPublished: left - awaited,
        heldByWorkers: held,
        queued,
        tiles: [...this.waiting.keys()].slice(0, 5),
      },
      `batch run waiting: no result for ${(reportMs / 1000).toFixed(1)} s or more; ${left} of ${total} tiles have no result yet ` +
        `(${awaited} published and awaited, ${left - awaited} not published yet); ` +
        `the task queue (all runs) has ${held} tasks held in progress by workers and ${queued} waiting for a worker`,
    );
  }

  /** A task of this run exhausted its deliveries: record its failure as its result (see the module comment). */
  private async onMaxDeliveries(seq: number, deliveries: number): Promise<void> {
    const log = this.options.logger;
    try {
      const jsm = await jetstreamManager(this.options.nc, NO_API_CHECK);
      const stored = await jsm.streams.getMessage(BATCH_TASK_STREAM, { seq });
      // The header names the task's tiles, one or several (comma-separated; no tile id has a comma).
      const tileIds = stored?.header?.get(BATCH_HEADERS.tileId)?.split(",").filter(Boolean) ?? [];
      if (!stored || stored.header?.get(BATCH_HEADERS.runId) !== this.options.runId || tileIds.length === 0)
        return;
      for (const tileId of tileIds) {
        const head: ResultHead = {
          runId: this.options.runId,
          tileId,
          modelVersion: this.modelVersion,
          worker: this.coordinatorName,
          outcome: {
            ok: false,
            code: "MAX_DELIVER",
            reason: `not acknowledged after ${deliveries} deliveries (a worker died or overran the ack wait each time)`,
          },
        };
        // First result wins: a failure result published twice by a retry is counted as a duplicate,
        // and so is one of a tile of the task whose result a worker did publish.
        await retryTransient(
          `publishing the MAX_DELIVER result of tile ${tileId}`,
          () => this.js.publish(batchResultSubject(this.options.runId), encodeResult(head)),
          { deadlineMs: TRANSIENT_RETRY_MS, logger: log },
        );
      }
      await jsm.streams.deleteMessage(BATCH_TASK_STREAM, seq, false);
      log.warn({ tiles: tileIds, deliveries }, "batch task exhausted its deliveries; failing it");
    } catch (err) {
      log.error({ err: describeError(err), seq }, "cannot fail a batch task that exhausted its deliveries");
    }
  }
}

/**
 * Ends run `runId` on the queue: records it as over (shared/adapters/nats batch-runs.ts: every task
 * of it stored until now is dead, also one a node's stale copy of the stream brings back later),
 * then removes its tasks still queued, one STREAM.MSG.DELETE each (see the executor's purgeTasks
 * for why not a filtered purge). Never throws: a record or a removal that fails is logged at warn
 * (the tasks then age out with the stream's max age).
 * @returns how many tasks were removed.
 */
export async function removeQueuedTasks(
  nc: NatsConnection,
  runId: string,
  logger: Logger,
  end: RunEnd = "over",
): Promise<number> {
  const subject = batchTaskSubject(runId);
  try {
    const r = await recordRunOver(nc, runId, end);
    logger.debug({ queueRunId: runId, lastTaskSeq: r.lastTaskSeq, end }, "batch run recorded as over");
  } catch (err) {
    logger.warn(
      { err: describeError(err), queueRunId: runId },
      "cannot record the run as over; a stale copy of its tasks could still be classified",
    );
  }
  try {
    const jsm = await jetstreamManager(nc, NO_API_CHECK);
    const seqs: number[] = [];
    for await (const m of storedTasks(jsm, subject)) seqs.push(m.seq);
    let purged = 0;
    for (const seq of seqs) {
      // A task a worker acknowledged meanwhile is gone already (its error code differs between
      // server versions: whether the message is still there decides).
      const gone = await jsm.streams
        .deleteMessage(BATCH_TASK_STREAM, seq, false)
        .catch(async (err: unknown) => {
          if (err instanceof JetStreamApiError && !(await jsm.streams.getMessage(BATCH_TASK_STREAM, { seq })))
            return false;
          throw err;
        });
      if (gone) purged++;
    }
    return purged;
  } catch (err) {
    logger.warn(
      { err: describeError(err), subject },
      "cannot remove the run's tasks still queued; they expire with the task stream's max age",
    );
    return 0;
  }
}
