/**
 * The live view: the speed lane's results in a JetStream KV bucket, one entry per tile under the
 * key `<cell>.<tileId>`. Why KV rather than a DuckDB file: a DuckDB file has one writer process,
 * while any number of speed workers on any machines write results; KV gives durable, replicated,
 * idempotent writes (the same tile twice is the same key), a revision number that serves as the
 * live view's position, and a watch that lets every serving process materialise the view in
 * memory and hear about changes at once, with nothing to rebuild after a restart but a re-watch.
 *
 * A value is an envelope: "LMR1", u32 JSON length, the JSON (TileResult + k + raster placement),
 * then the deflated class raster (shared/view/raster-codec.ts). Rasters that would not fit one
 * message go to an object store bucket of the period they are written in (names.ts
 * liveRasterBucket), one immutable object per content, and the envelope keeps only the period and
 * the object's name; `ops expire` drops a past period's bucket whole once no entry names it
 * ({@link LiveView.reclaimRasterBuckets}).
 */
import { isStreamNotFound } from "./jetstream-errors.js";
import { within } from "./transient.js";
import { createHash } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { LanemapError } from "../../errors.js";
import { tileResultSchema, type ClassifiedTile, type TileResult } from "../../view/types.js";
import { READ_RETRIES, guarded } from "./guarded.js";
import { LIVE_BUCKET, liveRasterBucket, liveRasterPeriod, parseLiveRasterBucket } from "./names.js";
import { kvValues, putObjectOnce, readObjectBytes } from "./object-reads.js";
import {
  atReplicas,
  checkReplicas,
  ensureReplicas,
  kvStreamName,
  objectStoreStreamName,
} from "./replicas.js";
import { LEADER_READS } from "./leader-reads.js";

/** What `KV.watch` resolves to. */
type KvWatchIterator = Awaited<ReturnType<KV["watch"]>>;

const MAGIC = [0x4c, 0x4d, 0x52, 0x31]; // "LMR1"
/** Rasters above this go to the object store (leaves room for headers under a 1 MiB max_payload). */
const INLINE_RASTER_LIMIT = 768 * 1024;

/**
 * How long after its month ends a period's raster bucket still counts as current for
 * {@link LiveView.reclaimRasterBuckets} (ms). Why: a writer picks the period by its own clock
 * before it stores the raster and names it in the entry; a writer whose clock is behind, or whose
 * put started just before midnight UTC on the last day, names the old month's bucket a moment
 * after the month ended. An hour covers any sane clock skew and any put.
 */
export const RASTER_PERIOD_GRACE_MS = 60 * 60 * 1000;

/** How long an initial replay of `follow()` may deliver nothing before it is given up (ms). */
const FOLLOW_IDLE_MS = 10_000;

/** Period of the consumer-free check that the watch of `follow()` still delivers (ms). */
const FOLLOW_CHECK_MS = 1_000;

/** How long a change a check saw may stay undelivered before the watch is recreated (ms). */
const FOLLOW_STALL_MS = 2_000;

/** How long one creation of a recreated watch of `follow()` may take before it is tried again (ms). */
const FOLLOW_CREATE_TIMEOUT_MS = 1_000;

/** How long one request of `list()` waits for its answer before the step is retried (ms). */
const LIVE_READ_TIMEOUT_MS = 2_000;

/** Most STREAM.MSG.GET requests one check of `follow()` spends on the watch's skipped sequences. */
const FOLLOW_GAP_GETS = 1_024;

/** STREAM.MSG.GET requests of one `list()` in flight at once (as the catalogue listing's). */
const LIVE_GETS_IN_FLIGHT = 32;

/** An entry as materialised by a reader: the raster may still be in the object store. */
export interface LiveEntry {
  readonly result: TileResult;
  readonly k: number;
  /** KV revision of this entry. */
  readonly revision: number;
  /**
   * The object store bucket its raster was spilled to (`lanemap-live-rasters-<yyyymm>`, or the
   * legacy `lanemap-live-rasters` for an entry written before periods), or null when it is inline.
   */
  readonly rasterBucket: string | null;
  /** The deflated class raster (fetched from the object store on first use when spilled). */
  raster(): Promise<Uint8Array>;
}

/** An immutable view of the live results at one position. */
export interface LiveSnapshot {
  /** Highest KV revision applied; grows with every write or delete. */
  readonly position: number;
  readonly size: number;
  readonly byCell: ReadonlyMap<string, readonly LiveEntry[]>;
  readonly byTile: ReadonlyMap<string, LiveEntry>;
}

/** The KV key of a result: `<cell>.<tileId>`. */
export const liveKey = (cell: string, tileId: string): string => `${cell}.${tileId}`;

function encodeEnvelope(meta: unknown, raster: Uint8Array | null): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(meta));
  const out = new Uint8Array(8 + json.length + (raster?.length ?? 0));
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, json.length, true);
  out.set(json, 8);
  if (raster) out.set(raster, 8 + json.length);
  return out;
}

interface EnvelopeMeta {
  result: TileResult;
  k: number;
  rasterObject: string | null;
  /**
   * The period (`yyyymm`) whose bucket holds `rasterObject`; absent (null) in entries written
   * before periods, whose rasters are in the legacy bucket.
   */
  rasterPeriod?: string | null;
}

function decodeEnvelope(bytes: Uint8Array): { meta: EnvelopeMeta; raster: Uint8Array } {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b))
    throw new LanemapError("LIVE_VIEW", "live view entry has no LMR1 envelope");
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (8 + len > bytes.length) throw new LanemapError("LIVE_VIEW", "live view entry is truncated");
  const raw = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len))) as EnvelopeMeta;
  const result = tileResultSchema.parse(raw.result);
  if (!Number.isInteger(raw.k) || raw.k < 1) throw new LanemapError("LIVE_VIEW", "live view entry has no k");
  const rasterPeriod = raw.rasterPeriod ?? null;
  if (rasterPeriod !== null && parseLiveRasterBucket(liveRasterBucket(rasterPeriod)) !== rasterPeriod)
    throw new LanemapError("LIVE_VIEW", `live view entry names no raster period: ${String(rasterPeriod)}`);
  return {
    meta: { result, k: raw.k, rasterObject: raw.rasterObject ?? null, rasterPeriod },
    raster: bytes.subarray(8 + len),
  };
}

/** What {@link LiveView.reclaimRasterBuckets} found and did. */
export interface RasterReclaim {
  /** The period new rasters go to at the check (`yyyymm`). */
  readonly period: string;
  /** Buckets dropped whole (on a dry run: that would be), by name, sorted. */
  readonly dropped: readonly string[];
  /** Buckets kept, by name, sorted, with why: the current period's, or named by a live entry. */
  readonly kept: readonly { readonly bucket: string; readonly why: "current" | "named" }[];
}

/** The live raster buckets on the server (STREAM.NAMES), the legacy one first, then by period. */
async function rasterBucketNames(
  jsm: JetStreamManager,
): Promise<{ bucket: string; period: string | null }[]> {
  const out: { bucket: string; period: string | null }[] = [];
  for await (const stream of jsm.streams.names()) {
    if (!stream.startsWith("OBJ_")) continue;
    const bucket = stream.slice("OBJ_".length);
    const period = parseLiveRasterBucket(bucket);
    if (period !== undefined) out.push({ bucket, period });
  }
  return out.sort((a, b) => (a.period ?? "").localeCompare(b.period ?? ""));
}

/** Reads and writes the live view bucket. */
export class LiveView {
  private readonly kv: KV;
  private readonly objm: Objm;
  /** Raster buckets this process created or found, by name (a dropped one is forgotten on a failed put). */
  private readonly rasterStores = new Map<string, ObjectStore>();
  private readonly nc: NatsConnection;
  private readonly replicas: number | undefined;
  private readonly now: () => Date;

  private constructor(kv: KV, nc: NatsConnection, replicas: number | undefined, now: () => Date) {
    this.kv = kv;
    this.nc = nc;
    this.objm = new Objm(nc);
    this.replicas = replicas;
    this.now = now;
  }

  /**
   * Opens the live view bucket, creating it (file storage, history 1) when absent. With `replicas`
   * (`config.storage.replicas`) the bucket and its raster objects are brought to that many replicas,
   * in place when they exist; without, a new bucket gets 1 and an existing one keeps its own (a
   * reader never rescales what the writers set up). `now` is the clock that picks the period a
   * spilled raster is written in, and which periods are past ({@link reclaimRasterBuckets}); tests
   * give a fixed one.
   * @throws LanemapError (NATS_SETUP) when the replicas cannot be set.
   */
  static async open(
    nc: NatsConnection,
    options: { replicas?: number; now?: () => Date } = {},
  ): Promise<LiveView> {
    const { replicas } = options;
    const kv = await atReplicas(kvStreamName(LIVE_BUCKET), replicas, () =>
      new Kvm(nc).create(LIVE_BUCKET, {
        history: 1,
        storage: "file",
        ...LEADER_READS,
        replicas: replicas === undefined ? 1 : checkReplicas(replicas),
      } as Parameters<Kvm["create"]>[1]),
    );
    if (replicas !== undefined)
      await ensureReplicas(await jetstreamManager(nc), kvStreamName(LIVE_BUCKET), replicas);
    return new LiveView(kv, nc, replicas, options.now ?? (() => new Date()));
  }

  /** The raster bucket `bucket`, created (at the view's replicas) when absent. */
  private async rasterStore(bucket: string): Promise<ObjectStore> {
    const known = this.rasterStores.get(bucket);
    if (known) return known;
    const objects = await atReplicas(objectStoreStreamName(bucket), this.replicas, () =>
      this.objm.create(bucket, {
        storage: "file",
        ...(this.replicas === undefined ? {} : { replicas: this.replicas }),
      } as Parameters<Objm["create"]>[1]),
    );
    if (this.replicas !== undefined)
      await ensureReplicas(await jetstreamManager(this.nc), objectStoreStreamName(bucket), this.replicas);
    this.rasterStores.set(bucket, objects);
    return objects;
  }

  /**
   * Writes (or rewrites, idempotently) one result; resolves with its KV revision once durable.
   *
   * A raster above {@link INLINE_RASTER_LIMIT} is stored as its own object named by key and
   * content (`<cell>.<tileId>.<sha256>`), written only when absent (putObjectOnce, which sends no
   * purge even when a write fails half way), so no object is ever
   * overwritten. Why: an object put over an existing name purges the old chunks in place (a
   * filtered STREAM.PURGE), and on nats-server 2.9.10 a node SIGKILLed seconds after such a purge
   * came back with 8 messages of the raster stream where its peers held 240; once it led, 29 of
   * 30 live results' rasters were unreadable (nats-removals-node-kill.test.ts, issue 14).
   *
   * The object goes to the bucket of the period (UTC month) of the view's clock at the put,
   * `lanemap-live-rasters-<yyyymm>`, created when absent, and the entry names the period beside
   * the object. The rasters a rewrite supersedes and those of removed results stay in their
   * period's bucket until `ops expire` drops it whole ({@link reclaimRasterBuckets}): a raster
   * stream is only ever appended to, then deleted (STREAM.DELETE, a meta-layer operation).
   */
  async put(record: ClassifiedTile): Promise<number> {
    const { result } = record;
    const key = liveKey(result.cell, result.tileId);
    let rasterObject: string | null = null;
    let rasterPeriod: string | null = null;
    let inline: Uint8Array | null = record.raster;
    if (record.raster.length > INLINE_RASTER_LIMIT) {
      rasterObject = `${key}.${createHash("sha256").update(record.raster).digest("hex")}`;
      rasterPeriod = liveRasterPeriod(this.now());
      const bucket = liveRasterBucket(rasterPeriod);
      await this.rasterStore(bucket); // created when absent
      try {
        await putObjectOnce(this.nc, bucket, rasterObject, record.raster);
      } catch (err) {
        // A bucket this process knew may have been dropped since (a clock far behind the one of
        // `ops expire`): forgotten, so the put the worker retries creates it again.
        this.rasterStores.delete(bucket);
        throw err;
      }
      inline = null;
    }
    return this.kv.put(key, encodeEnvelope({ result, k: record.k, rasterObject, rasterPeriod }, inline));
  }

  /** Removes one result (expiry of an absorbed result). */
  async remove(cell: string, tileId: string): Promise<void> {
    await this.kv.purge(liveKey(cell, tileId));
  }

  /** One entry by key, or undefined. */
  async get(cell: string, tileId: string): Promise<LiveEntry | undefined> {
    const e = await this.kv.get(liveKey(cell, tileId));
    if (!e || e.operation !== "PUT" || e.value.length === 0) return undefined;
    return this.entry(e.value, e.revision);
  }

  /** The entry a PUT's value holds, or null when it is empty or unreadable (skipped, not fatal to serving). */
  private readable(value: Uint8Array, revision: number): LiveEntry | null {
    if (value.length === 0) return null;
    try {
      return this.entry(value, revision);
    } catch {
      return null;
    }
  }

  private entry(value: Uint8Array, revision: number): LiveEntry {
    const { meta, raster } = decodeEnvelope(value);
    const copy = meta.rasterObject ? null : raster.slice();
    const name = meta.rasterObject;
    // An entry written before periods names no period: its raster is in the legacy bucket.
    const bucket = name ? liveRasterBucket(meta.rasterPeriod ?? null) : null;
    return {
      result: meta.result,
      k: meta.k,
      revision,
      rasterBucket: bucket,
      raster: async () => {
        if (copy) return copy;
        // No consumer (object-reads.ts); a broker failure is a transient STORAGE error.
        const blob =
          name && bucket
            ? await guarded(
                `reading live raster object ${name} of ${bucket}`,
                () => readObjectBytes(this.nc, bucket, name),
                READ_RETRIES,
              )
            : null;
        if (!blob)
          throw new LanemapError("LIVE_VIEW", `raster object ${name ?? "?"} of ${bucket ?? "?"} is missing`);
        return blob;
      },
    };
  }

  /**
   * Materialises the whole bucket in memory and keeps it current. Resolves once the initial
   * values are loaded; `onChange` hears every later change (with the entry, or null for a delete),
   * once each, in revision order (a change the watch skipped is heard late, see below).
   *
   * An initial replay that delivers nothing for `idleMs` (default {@link FOLLOW_IDLE_MS}) is given
   * up: the watch is a consumer nats-server 2.9 may place on an offline peer (nats-server
   * PR #7165), whose replay then never comes, and `serve` awaited it at start (issue 14).
   *
   * Later, the watch is checked every `checkMs` (default {@link FOLLOW_CHECK_MS}) without a
   * consumer: the bucket's first message after the follower's position (STREAM.MSG.GET
   * `{ seq, next_by_subj }`, which the stream's leader answers). Why: the watch is an R1 ordered
   * consumer; when its node dies, nats.js recreates it only after two missed 5 s heartbeats, then
   * with 30 s heartbeats, and nats-server 2.9 may place the new one on the dead node again — a
   * follower went deaf for minutes, unnoticed (issue 14). A message the watch has not delivered
   * `stallMs` (default {@link FOLLOW_STALL_MS}) after a check saw it is read then, with everything
   * after it (STREAM.MSG.GET, at most {@link FOLLOW_GAP_GETS} a check), and the watch is recreated
   * from the follower's position + 1 (logged, warn, once per recreation): nothing is lost or heard
   * twice, and a change waits about `stallMs` + `checkMs` however many creations land on the dead
   * node again. {@link LiveFollower.behind} says meanwhile.
   *
   * The same check reads what the watch went past: once the replay is done, a change delivered
   * more than one revision after the last leaves a gap, and the check reads the bucket's messages in
   * it (STREAM.MSG.GET `next_by_subj` from its start), at most {@link FOLLOW_GAP_GETS} a check. Why:
   * on nats-server 2.9.10 a filtered purge moves every consumer of the stream on to the purged
   * subject's first kept message (nats-server PR #3838 limited that to the consumers it concerns),
   * and a KV purge is one (a rollup of its key): a watch still delivering older changes skips them.
   * Followers kept the results `ops expire` removed while their position said they had heard it
   * all (issue 14); a watch behind a burst of 3,000 writes and 201 purges heard 994 keys. A gap
   * normally holds only messages the bucket no longer has (a key rewritten or purged before the
   * watch delivered it); a message still there was skipped and is applied then (logged, warn),
   * unless its key has heard a newer revision: `onChange` then hears it late, out of order.
   * @throws a TimeoutError (transient: serving follows again) when the replay stalls; what the
   *   watch throws.
   */
  async follow(
    onChange?: (change: { key: string; entry: LiveEntry | null; position: number }) => void,
    options: { idleMs?: number; checkMs?: number; stallMs?: number; logger?: Logger } = {},
  ): Promise<LiveFollower> {
    const idleMs = options.idleMs ?? FOLLOW_IDLE_MS;
    const checkMs = options.checkMs ?? FOLLOW_CHECK_MS;
    const stallMs = options.stallMs ?? FOLLOW_STALL_MS;
    const { logger } = options;
    const follower = new LiveFollower();
    const status = await this.kv.status();
    // The bucket's last stream sequence tells when the initial replay is complete.
    const initialLast = status.streamInfo.state.last_seq;
    let iter: KvWatchIterator = await this.kv.watch({ key: ">" });
    let resolveReady!: () => void;
    let rejectReady!: (err: unknown) => void;
    let isReady = false;
    const ready = new Promise<void>((resolve, reject) => {
      resolveReady = () => {
        isReady = true;
        resolve();
      };
      rejectReady = reject;
    });
    if (initialLast === 0 || status.values === 0) resolveReady();
    let heard = Date.now();
    let stopped = false;
    /** Revision ranges the watch went past after the replay, not yet read in the bucket (oldest first). */
    const gaps: { from: number; to: number }[] = [];
    /** While a new watch is being created, and when the last one was (it gets `stallMs` of its own). */
    let recreating = false;
    let recreatedAt = 0;
    const deliver = (e: KvWatchEntry): void => {
      heard = Date.now();
      // A watch delivers in revision order; one recreated from the position on, or a stalled one's
      // late buffered entry, must never apply a change twice or an older one after a newer.
      if (e.revision <= follower.position) return;
      if (isReady && e.revision > follower.position + 1)
        gaps.push({ from: follower.position + 1, to: e.revision - 1 });
      const entry = e.operation === "PUT" ? this.readable(e.value, e.revision) : null;
      follower.apply(e.key, entry, e.revision);
      if (e.revision >= initialLast) resolveReady();
      onChange?.({ key: e.key, entry, position: e.revision });
    };
    const run = async (): Promise<void> => {
      for (;;) {
        try {
          for await (const e of iter) deliver(e);
        } catch (err) {
          if (stopped || !isReady) throw err;
          logger?.warn({ err }, "the live view's watch failed; recreating it");
        }
        // Ended by stop(), by the check below (stalled), or by the client giving the consumer up.
        if (stopped || !isReady) return;
        recreating = true;
        const from = follower.position + 1;
        // No I/O: a handle whose requests are given up after 1 s, not the client's 5 s.
        const watchKv = await new Kvm(
          jetstream(this.nc, { timeout: FOLLOW_CREATE_TIMEOUT_MS, checkAPI: false }),
        ).open(LIVE_BUCKET);
        let next: KvWatchIterator | undefined;
        for (let attempt = 1; !stopped && !next; attempt++) {
          try {
            next = await watchKv.watch({ key: ">", resumeFromRevision: from });
            logger?.info({ from, attempt }, "following the live view again with a new watch");
          } catch (err) {
            // A creation nats-server 2.9 placed on a dead node times out; the next one may land
            // on a live node, so it is tried again soon, not after the backoff of other reads.
            if (attempt % 10 === 0)
              logger?.warn({ err, from, attempt }, "cannot recreate the live view's watch; trying again");
            await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2_000)));
          }
        }
        recreating = false;
        recreatedAt = Date.now();
        if (!next) return;
        if (stopped) return next.stop();
        iter = next;
      }
    };
    // A rejection after the replay is dropped; before it, it fails the start.
    void run().catch((err: unknown) => rejectReady(err));
    const jsm = await jetstreamManager(this.nc, { checkAPI: false, timeout: LIVE_READ_TIMEOUT_MS });
    const stream = kvStreamName(LIVE_BUCKET);
    const subjects = `$KV.${LIVE_BUCKET}.>`;
    const keyPrefix = `$KV.${LIVE_BUCKET}.`;
    /** Reads the gaps' messages still in the bucket and applies them; the number applied. */
    const fillGaps = async (): Promise<number> => {
      let applied = 0;
      for (let gets = 0; gaps.length > 0 && gets < FOLLOW_GAP_GETS && !stopped; gets++) {
        const gap = gaps[0]!;
        const request = { seq: gap.from, next_by_subj: subjects };
        const m = await within(LIVE_READ_TIMEOUT_MS, jsm.streams.getMessage(stream, request)).catch(
          () => undefined, // unanswered: the next check reads again from here
        );
        if (m === undefined || stopped) break;
        if (m === null || m.seq > gap.to) {
          gaps.shift();
          continue;
        }
        gap.from = m.seq + 1;
        const key = m.subject.slice(keyPrefix.length);
        const op = m.header?.get("KV-Operation") || "PUT";
        const entry = op === "PUT" ? this.readable(m.data, m.seq) : null;
        if (!follower.apply(key, entry, m.seq)) continue;
        applied++;
        onChange?.({ key, entry, position: m.seq });
      }
      return applied;
    };
    /** The first message the watch had not delivered when a check saw it, and when. */
    let missed: { revision: number; at: number } | undefined;
    let checking = false;
    const check = async (): Promise<void> => {
      if (gaps.length > 0) {
        const applied = await fillGaps();
        if (applied > 0)
          logger?.warn(
            { applied, position: follower.position },
            "the live view's watch skipped changes the bucket holds; applied them from the bucket",
          );
        if (stopped) return;
      }
      const position = follower.position;
      // nats.js types STREAM.MSG.GET without next_by_subj, which the server takes (2.9's
      // JSApiMsgGetRequest): passed as a variable, not a literal the type would refuse.
      const request = { seq: position + 1, next_by_subj: subjects };
      const next = await within(LIVE_READ_TIMEOUT_MS, jsm.streams.getMessage(stream, request)).catch(
        () => undefined, // unanswered (an election): the next check reads again
      );
      if (next === undefined || stopped) return;
      if (next === null || follower.position >= next.seq) missed = undefined;
      else missed ??= { revision: next.seq, at: Date.now() };
      follower.missed = missed;
      if (!missed || Date.now() - missed.at < stallMs) return;
      // Stalled: read what the watch has not delivered now, without a consumer, while a new watch
      // is created. Why: each creation may land on the dead node again (nats-server 2.9, PR #7165)
      // and then times out; three such in a row took a follower past 10 s (1 run in ~20 of
      // live-follow-node-down.test.ts under load). The new watch starts after what was read.
      if (!gaps.some((g) => g.to === Number.POSITIVE_INFINITY))
        gaps.push({ from: follower.position + 1, to: Number.POSITIVE_INFINITY });
      const read = await fillGaps();
      if (read > 0)
        logger?.info(
          { read, position: follower.position },
          "read the live view's changes its stalled watch held back",
        );
      if (stopped || recreating || Date.now() - Math.max(missed.at, recreatedAt) < stallMs) return;
      logger?.warn(
        { revision: missed.revision, position: follower.position, behindMs: Date.now() - missed.at },
        "the live view's watch stalled: it has not delivered a change the bucket holds; recreating the watch",
      );
      recreatedAt = Date.now();
      iter.stop();
    };
    const checker = setInterval(() => {
      // One check at a time: a tick that finds one under way is skipped, not queued.
      if (checking || !isReady || stopped) return;
      checking = true;
      void check()
        .catch((err: unknown) => logger?.warn({ err }, "checking the live view's watch failed"))
        .finally(() => (checking = false));
    }, checkMs);
    checker.unref();
    follower.stopFn = () => {
      stopped = true;
      clearInterval(checker);
      iter.stop();
    };
    const stalled = setInterval(
      () => {
        if (Date.now() - heard < idleMs) return;
        const err = new Error(
          `following the live view: its watch delivered nothing for ${idleMs} ms of the initial replay (${follower.snapshot().position} of revision ${initialLast})`,
        );
        err.name = "TimeoutError";
        rejectReady(err);
      },
      Math.min(1_000, idleMs),
    );
    try {
      await ready;
    } catch (err) {
      follower.stop();
      throw err;
    } finally {
      clearInterval(stalled);
    }
    return follower;
  }

  /**
   * Drops whole (`$JS.API.STREAM.DELETE`) every raster bucket of a past period, and the legacy
   * one, that no live entry names an object in; `ops expire` calls it after its removals. Nothing
   * is ever purged: a filtered STREAM.PURGE lost a node's copy of the raster stream on nats-server
   * 2.9.10 (put() says how), and a stream deletion is a meta-layer operation that came through
   * every node-kill round (the views' and the archive's, README "Scaling out").
   *
   * Past: a period before the one of the view's clock {@link RASTER_PERIOD_GRACE_MS} ago, so the
   * current month's bucket, and for the first hour of a month the previous one's, are never
   * candidates however unnamed: a put in flight at a month boundary, or by a writer whose clock is
   * a little behind, names a bucket this check keeps. The candidates' names are read before the
   * entries (consumer-free, {@link list}), so a bucket a writer creates meanwhile is not one.
   * `alsoNamed` adds buckets to keep: `ops expire` passes those its first listing named, so an
   * entry it removes keeps its raster until the next run.
   *
   * Why a late reader is harmless: a reader that took a snapshot holding an entry that no entry
   * names any more (removed by `ops expire`, or superseded by a rewrite into the current period)
   * may ask for its raster after the drop and get LIVE_VIEW "raster object … is missing" for that
   * one request. A removed entry's bucket outlives the run that removed it (`alsoNamed`), and a
   * removed result is one the current batch view absorbed, which the merge rule answers from the
   * batch view (its raster is never read); a superseded one is replaced in every follower's
   * snapshot as soon as it hears the rewrite, so only a request that took its snapshot before that
   * and reads the raster after the whole check could meet the drop, and the next request reads the
   * rewrite.
   * @param options.dryRun list what would be dropped, drop nothing.
   * @throws LanemapError STORAGE when the broker still fails after the retries.
   */
  async reclaimRasterBuckets(
    options: { alsoNamed?: Iterable<string>; dryRun?: boolean } = {},
  ): Promise<RasterReclaim> {
    const at = this.now();
    const period = liveRasterPeriod(at);
    const oldestKept = liveRasterPeriod(new Date(at.getTime() - RASTER_PERIOD_GRACE_MS));
    const jsm = await jetstreamManager(this.nc, { checkAPI: false, timeout: LIVE_READ_TIMEOUT_MS });
    const buckets = await guarded(
      "listing the live raster buckets",
      () => rasterBucketNames(jsm),
      READ_RETRIES,
    );
    const kept: { bucket: string; why: "current" | "named" }[] = [];
    const past: string[] = [];
    for (const b of buckets) {
      // yyyymm strings order as the months do; a period ahead of this clock is a writer's ahead.
      if (b.period !== null && b.period >= oldestKept) kept.push({ bucket: b.bucket, why: "current" });
      else past.push(b.bucket);
    }
    const dropped: string[] = [];
    if (past.length > 0) {
      const named = new Set<string>(options.alsoNamed ?? []);
      for (const e of await this.list()) if (e.rasterBucket) named.add(e.rasterBucket);
      for (const bucket of past) {
        if (named.has(bucket)) {
          kept.push({ bucket, why: "named" });
          continue;
        }
        if (!options.dryRun) {
          await guarded(
            `dropping the live raster bucket ${bucket}`,
            async () => {
              try {
                await jsm.streams.delete(objectStoreStreamName(bucket));
              } catch (err) {
                if (!isStreamNotFound(err)) throw err; // gone already: a retried or concurrent drop
              }
            },
            READ_RETRIES,
          );
          this.rasterStores.delete(bucket);
        }
        dropped.push(bucket);
      }
    }
    const byName = (a: { bucket: string }, b: { bucket: string }) => (a.bucket < b.bucket ? -1 : 1);
    return { period, dropped: dropped.sort(), kept: kept.sort(byName) };
  }

  /**
   * Every current entry, read once (for operator scripts: `ops expire`, `ops diff`), oldest
   * revision first; an unreadable entry is skipped, as {@link follow} does. Read without a
   * consumer: the keys are the subjects of the bucket's stream (`listKvKeys`), each key's value the
   * last message on its subject (STREAM.MSG.GET), {@link LIVE_GETS_IN_FLIGHT} at a time, each step
   * bounded (2 s a request) and retried.
   *
   * Why not {@link follow}: its KV watch is a consumer, which nats-server 2.9 may place on an
   * offline peer (nats-server PR #7165); with a node down the read then waited for an initial
   * replay that never came (issue 14).
   * @throws LanemapError STORAGE "reading the live view failed: …" when the broker still fails.
   */
  async list(): Promise<LiveEntry[]> {
    const what = "reading the live view failed";
    const out: LiveEntry[] = [];
    const values = kvValues(this.nc, LIVE_BUCKET, {
      what,
      timeoutMs: LIVE_READ_TIMEOUT_MS,
      inFlight: LIVE_GETS_IN_FLIGHT,
    });
    for await (const m of values) {
      try {
        out.push(this.entry(m.data, m.seq));
      } catch {
        // An unreadable entry is skipped, as follow() skips it.
      }
    }
    return out.sort((a, b) => a.revision - b.revision);
  }
}

/** Keeps a materialised copy of the live view; `snapshot()` is immutable and cheap when unchanged. */
export class LiveFollower {
  private readonly entries = new Map<string, LiveEntry>();
  /** Per key, the revision of its last change applied (a removal included). */
  private readonly revisions = new Map<string, number>();
  private revision = 0;
  private cached: LiveSnapshot | undefined;
  /** @internal */
  stopFn: (() => void) | undefined;
  /** @internal The first change the watch had not delivered when a check saw it (epoch ms). */
  missed: { revision: number; at: number } | undefined;

  /** @internal The highest revision applied. */
  get position(): number {
    return this.revision;
  }

  /**
   * @internal Applies a change unless its key already has one as new; whether it applied. A skipped
   * change is applied late (follow()), so an older one must never replace or revive a newer one.
   */
  apply(key: string, entry: LiveEntry | null, revision: number): boolean {
    if ((this.revisions.get(key) ?? 0) >= revision) return false;
    this.revisions.set(key, revision);
    if (entry) this.entries.set(key, entry);
    else this.entries.delete(key);
    this.revision = Math.max(this.revision, revision);
    this.cached = undefined;
    return true;
  }

  /** The live view as of now; later changes never alter a returned snapshot. */
  snapshot(): LiveSnapshot {
    if (this.cached) return this.cached;
    const byCell = new Map<string, LiveEntry[]>();
    const byTile = new Map<string, LiveEntry>();
    for (const e of this.entries.values()) {
      byTile.set(e.result.tileId, e);
      const list = byCell.get(e.result.cell);
      if (list) list.push(e);
      else byCell.set(e.result.cell, [e]);
    }
    this.cached = { position: this.revision, size: byTile.size, byCell, byTile };
    return this.cached;
  }

  /**
   * How far behind the bucket the follower is: the first change it has not heard though a check
   * saw the bucket hold it at least `forMs` ago (ms), and since when (epoch ms); null when it
   * has heard everything the last check saw.
   */
  behind(forMs = FOLLOW_CHECK_MS): { revision: number; since: number } | null {
    const m = this.missed;
    if (!m || this.revision >= m.revision || Date.now() - m.at < forMs) return null;
    return { revision: m.revision, since: m.at };
  }

  /** Stops following. */
  stop(): void {
    this.stopFn?.();
  }
}
