/**
 * Configuration: parsed once from the environment with a schema, validated at start, then passed
 * down as a plain object. Every variable, its default and its meaning is listed here and in the
 * README's configuration reference (printed by `lanemap config`, from `configReference()`).
 */
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "./errors.js";

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** One entry per environment variable: its schema, default and meaning. */
const variables = {
  LANEMAP_DATA_DIR: {
    schema: z.string().min(1),
    default: "./data",
    doc: "Data directory: master archive, catalogue, views, models, embedded NATS store.",
  },
  PORT: {
    schema: int(0, 65535),
    default: "8080",
    doc: "HTTP port of the serving layer (0 = any free port).",
  },
  HOST: { schema: z.string().min(1), default: "127.0.0.1", doc: "Interface the serving layer listens on." },
  NATS_URL: {
    schema: z
      .string()
      .min(1)
      .refine(
        (v) =>
          v.split(",").every((u) => !/^\s*[a-z][a-z0-9+.-]*:\/\//i.test(u) || /^\s*(nats|tls):\/\//i.test(u)),
        {
          message:
            "must be nats:// or tls:// URLs (or host:port), comma-separated: an http:// URL is nats-server's monitoring endpoint, which LANEMAP_NATS_MONITOR_URLS takes",
        },
      )
      .optional(),
    default: undefined,
    doc: "NATS server URL(s), comma-separated: `nats://` or `tls://` URLs or `host:port` (an `http://` URL, nats-server's monitoring endpoint, is refused). Unset: `lanemap start` runs an embedded nats-server in the data directory.",
  },
  LANEMAP_OPERATOR_TOKEN: {
    schema: z.string().min(16, "must be at least 16 characters").optional(),
    default: undefined,
    doc: "Bearer token for operator endpoints (POST /v1/batch/runs). Unset: `lanemap start` generates one and prints it; `lanemap serve` disables operator endpoints.",
  },
  LANEMAP_LOG_LEVEL: {
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    default: "info",
    doc: "pino log level.",
  },
  LANEMAP_MAX_PIXELS: {
    schema: int(1),
    default: "100000000",
    doc: "Decode budget: a tile with more pixels (width × height) is refused before decoding.",
  },
  LANEMAP_DECODE_TIMEOUT_MS: {
    schema: int(100),
    default: "10000",
    doc: "Base of a tile's deadline (read + decode + classify; a tile over its deadline is failed with DEADLINE, dead-lettered by the speed lane). Each tile's deadline is this plus LANEMAP_DECODE_MS_PER_MSAMPLE per million samples its header announces (width × height × bands); a tile whose header cannot be read gets this alone.",
  },
  LANEMAP_DECODE_MS_PER_MSAMPLE: {
    schema: int(0),
    default: "3000",
    doc: "A tile's deadline allowance per million announced samples (width × height × bands), in ms, on top of LANEMAP_DECODE_TIMEOUT_MS: big valid tiles get time in proportion to their work, a hostile one still ends in DEADLINE. The default is ~4× the CPU time decode + descriptors + k-NN took per Msample on a 2-core machine (median ~690 ms), ~1.6× the slowest wall time seen with the machine 6× oversubscribed (1.9 s); a 1536² × 6 tile (14.2 Msample) gets 52.5 s. 0 = the base alone for every tile.",
  },
  LANEMAP_BATCH_CRON: {
    schema: z.string().min(1),
    default: "0 2 * * *",
    doc: "node-cron expression of the scheduled batch rebuild (default nightly at 02:00).",
  },
  LANEMAP_BATCH_TZ: { schema: z.string().min(1), default: "UTC", doc: "Time zone of the cron expression." },
  LANEMAP_BATCH_KEEP: { schema: int(1, 1000), default: "5", doc: "Batch view versions kept on disk." },
  LANEMAP_BATCH_WORKERS: {
    schema: int(1, 256),
    default: String(availableParallelism()),
    doc: "worker_threads of a batch run (default: the number of cores).",
  },
  LANEMAP_BATCH_ORDER: {
    schema: z.enum(["hilbert", "natural", "random", "distance", "hilbert-around"]),
    default: "hilbert",
    doc: "Order in which a batch run processes tiles.",
  },
  LANEMAP_BATCH_EXECUTOR: {
    schema: z.enum(["threads", "stream"]),
    default: "threads",
    doc: "Where a batch run classifies its tiles: `threads` (this process's worker_threads) or `stream` (one task per tile on the JetStream work queue, for `lanemap worker` processes on any machine; needs NATS).",
  },
  LANEMAP_BATCH_STALL_S: {
    schema: int(1),
    default: "300",
    doc: "`stream` executor: a run fails (BATCH_STALLED, CURRENT untouched, checkpoint kept) when no new task has been taken by a `lanemap worker`, none is held in progress by one (a big tile may take longer than this; a held task counts only up to its task deadline since the last result, so frozen workers fail the run too) and no result has come back for this many seconds.",
  },
  LANEMAP_BATCH_IO_MARGIN_S: {
    schema: int(1),
    default: "60",
    doc: "`stream` executor: beyond its tiles' own deadlines, how many seconds a batch task may spend loading its model and reading its tiles before its `lanemap worker` hands it back; the task's deadline is the sum (the coordinator counts a held task up to it). The adapters' retries through a JetStream leader election fit in the default.",
  },
  LANEMAP_BATCH_LEASE_S: {
    schema: int(1, 3600),
    default: "30",
    doc: "TTL of the batch coordinator lease in NATS KV (`KV_lanemap-batch-lease`), taken by every run whose storage or executor is NATS: a second coordinator is refused while it is held; the holder refreshes it every third of this and stops its run (BATCH_LEASE_LOST, checkpoint kept) when it could not; a killed holder's lease expires after this, and only then can a rerun take over.",
  },
  LANEMAP_STORAGE: {
    schema: z.enum(["files", "nats"]),
    default: "files",
    doc: "Where the master archive, model artefacts and published batch views live: `files` (the data directory, one machine) or `nats` (JetStream object store + KV, reached by every machine of a cluster; needs NATS).",
  },
  LANEMAP_NATS_REPLICAS: {
    schema: int(1, 5),
    default: "1",
    doc: "JetStream replicas of lanemap's streams, KV buckets and object stores (3 on a 3-node cluster).",
  },
  LANEMAP_NATS_MONITOR_URLS: {
    schema: z
      .string()
      .optional()
      .refine(
        (v) => (v ?? "").split(",").every((u) => u.trim() === "" || /^https?:\/\/[^/\s]+/.test(u.trim())),
        "must be http:// or https:// URLs, comma-separated",
      ),
    default: undefined,
    doc: "Comma-separated monitoring URLs (`http:` of nats-server) of every cluster node, e.g. `http://lanemap-a.internal:8222,...`: `lanemap ops status` compares each lanemap stream's copies across them and `ops repair-replicas` replaces a copy that diverged. Unset: not checked.",
  },
  LANEMAP_REPLICA_SETTLE_S: {
    schema: int(0, 600),
    default: "6",
    doc: "`ops repair-replicas`: how many seconds it first waits for a stream's missing peer to come back by itself before it places one (right after a node restarts, its stream leaders leave it out of STREAM.INFO for a few seconds: about 5 s seen on nats-server 2.9.10).",
  },
  LANEMAP_SPEED_CONCURRENCY: {
    schema: int(1, 64),
    default: "2",
    doc: "Tiles a speed worker process classifies at once (its in-flight bound).",
  },
  LANEMAP_STREAM_MAX_BYTES: {
    schema: z.coerce.number().int().min(-1),
    default: String(8 * 2 ** 30),
    doc: "Ingest stream limit in bytes (-1 = unlimited); bounds how far back `batch run --from-stream` reaches.",
  },
  LANEMAP_STREAM_MAX_AGE_S: {
    schema: int(0),
    default: String(30 * 86400),
    doc: "Ingest stream message age limit in seconds (0 = unlimited); bounds how far back `batch run --from-stream` reaches.",
  },
  LANEMAP_DUPLICATE_WINDOW_S: {
    schema: int(1),
    default: "600",
    doc: "JetStream duplicate window (Nats-Msg-Id) in seconds.",
  },
  LANEMAP_MAX_DELIVER: {
    schema: int(1, 100),
    default: "5",
    doc: "Deliveries of one tile before it is dead-lettered.",
  },
  LANEMAP_ACK_WAIT_S: {
    schema: int(1),
    default: "30",
    doc: "Ack wait in seconds; workers send in-progress heartbeats for slow tiles.",
  },
  LANEMAP_STATS_MAX_PIXELS: {
    schema: int(1),
    default: String(100_000_000),
    doc: "Largest area (in class-raster pixels) a /v1/stats request may cover.",
  },
  LANEMAP_CORS_ORIGINS: {
    schema: z.string().optional(),
    default: undefined,
    doc: "Comma-separated origins allowed by CORS (unset: same origin only; `*`: any).",
  },
  LANEMAP_FEED_INTERVAL_S: {
    schema: z.coerce.number().min(0),
    default: "20",
    doc: "`lanemap start`: seconds between fresh sample acquisitions fed to the speed lane (0 = none).",
  },
  LANEMAP_FEED_MAX_TILES: {
    schema: z.coerce.number().int().min(0),
    default: "500",
    doc: "`lanemap start`: most sample acquisitions fed over the data directory's life, earlier runs included (0 = no cap); bounds its growth.",
  },
} as const;

type Vars = typeof variables;
type Raw = { [K in keyof Vars]: z.infer<Vars[K]["schema"]> };

/** The platform's configuration, derived from the environment once. */
export interface Config {
  readonly dataDir: string;
  readonly port: number;
  readonly host: string;
  readonly natsUrl: string | undefined;
  readonly operatorToken: string | undefined;
  readonly logLevel: Raw["LANEMAP_LOG_LEVEL"];
  readonly maxPixels: number;
  /** Base of a tile's deadline, in ms (shared/pipeline/deadline.ts `tileDeadline`). */
  readonly decodeTimeoutMs: number;
  /** A tile's deadline allowance per million announced samples, in ms. */
  readonly decodeMsPerMsample: number;
  readonly batch: {
    readonly cron: string;
    readonly timezone: string;
    readonly keep: number;
    readonly workers: number;
    readonly order: Raw["LANEMAP_BATCH_ORDER"];
    readonly executor: Raw["LANEMAP_BATCH_EXECUTOR"];
    /** Stream executor: milliseconds without a task delivery or a result before a run fails. */
    readonly stallMs: number;
    /** Stream executor: a task's time for its model load and tile reads beyond its tiles' deadlines (ms). */
    readonly ioMarginMs: number;
    /** TTL of the coordinator lease of distributed runs (ms; batch-lease.ts). */
    readonly leaseTtlMs: number;
  };
  /** Where shared state lives (shared/storage) and how JetStream replicates it. */
  readonly storage: {
    readonly backend: Raw["LANEMAP_STORAGE"];
    readonly replicas: number;
    /** Every cluster node's monitoring URL (LANEMAP_NATS_MONITOR_URLS), or none. */
    readonly monitorUrls: readonly string[];
    /** `ops repair-replicas`: the wait for a missing peer to come back before placing one (ms). */
    readonly replicaSettleMs: number;
  };
  readonly speed: {
    readonly concurrency: number;
    readonly maxDeliver: number;
    readonly ackWaitMs: number;
  };
  readonly stream: {
    readonly maxBytes: number;
    readonly maxAgeS: number;
    readonly duplicateWindowS: number;
  };
  readonly serving: {
    readonly statsMaxPixels: number;
    readonly corsOrigins: readonly string[];
  };
  readonly feedIntervalS: number;
  readonly feedMaxTiles: number;
}

/**
 * NATS_URL as it may be shown (logs, `lanemap config`, `ops status`, a refused configuration): each
 * URL's credentials replaced by `***` (`nats://***@host:4222`), so a report says they are there
 * without giving them.
 */
export function redactNatsUrl(url: string): string {
  return url
    .split(",")
    .map((s) => s.replace(/^(\s*(?:[a-z][a-z0-9+.-]*:\/\/)?)[^@/]*@/i, "$1***@"))
    .join(",");
}

/** A refused value as an error may quote it: secrets never (the token, NATS_URL's credentials). */
function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return "undefined";
  if (name === "LANEMAP_OPERATOR_TOKEN") return `(${value.length} characters, not shown)`;
  return JSON.stringify(name === "NATS_URL" ? redactNatsUrl(value) : value);
}

/**
 * Parses the configuration from an environment (default `process.env`), applying defaults.
 * Throws a ConfigError naming every variable that failed validation.
 * @throws ConfigError naming every variable that failed validation.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, v] of Object.entries(variables)) {
    const value = env[name] === "" ? undefined : (env[name] ?? v.default);
    const r = v.schema.safeParse(value);
    if (r.success) raw[name] = r.data;
    else problems.push(`${name}=${shownValue(name, env[name])}: ${r.error.issues[0]?.message ?? "invalid"}`);
  }
  if (problems.length) throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  const r = raw as Raw;
  return {
    dataDir: resolve(r.LANEMAP_DATA_DIR),
    port: r.PORT,
    host: r.HOST,
    natsUrl: r.NATS_URL,
    operatorToken: r.LANEMAP_OPERATOR_TOKEN,
    logLevel: r.LANEMAP_LOG_LEVEL,
    maxPixels: r.LANEMAP_MAX_PIXELS,
    decodeTimeoutMs: r.LANEMAP_DECODE_TIMEOUT_MS,
    decodeMsPerMsample: r.LANEMAP_DECODE_MS_PER_MSAMPLE,
    batch: {
      cron: r.LANEMAP_BATCH_CRON,
      timezone: r.LANEMAP_BATCH_TZ,
      keep: r.LANEMAP_BATCH_KEEP,
      workers: r.LANEMAP_BATCH_WORKERS,
      order: r.LANEMAP_BATCH_ORDER,
      executor: r.LANEMAP_BATCH_EXECUTOR,
      stallMs: r.LANEMAP_BATCH_STALL_S * 1000,
      ioMarginMs: r.LANEMAP_BATCH_IO_MARGIN_S * 1000,
      leaseTtlMs: r.LANEMAP_BATCH_LEASE_S * 1000,
    },
    storage: {
      backend: r.LANEMAP_STORAGE,
      replicas: r.LANEMAP_NATS_REPLICAS,
      monitorUrls: (r.LANEMAP_NATS_MONITOR_URLS ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      replicaSettleMs: r.LANEMAP_REPLICA_SETTLE_S * 1000,
    },
    speed: {
      concurrency: r.LANEMAP_SPEED_CONCURRENCY,
      maxDeliver: r.LANEMAP_MAX_DELIVER,
      ackWaitMs: r.LANEMAP_ACK_WAIT_S * 1000,
    },
    stream: {
      maxBytes: r.LANEMAP_STREAM_MAX_BYTES,
      maxAgeS: r.LANEMAP_STREAM_MAX_AGE_S,
      duplicateWindowS: r.LANEMAP_DUPLICATE_WINDOW_S,
    },
    serving: {
      statsMaxPixels: r.LANEMAP_STATS_MAX_PIXELS,
      corsOrigins: (r.LANEMAP_CORS_ORIGINS ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    },
    feedIntervalS: r.LANEMAP_FEED_INTERVAL_S,
    feedMaxTiles: r.LANEMAP_FEED_MAX_TILES,
  };
}

/** Every variable with its default and meaning, for the README and `lanemap config`. */
export function configReference(): { name: string; default: string | undefined; doc: string }[] {
  return Object.entries(variables).map(([name, v]) => ({ name, default: v.default, doc: v.doc }));
}

/**
 * `LANEMAP_*` variables read outside the configuration: by the CLI (`LANEMAP_DEBUG` prints the
 * stack of an unexpected error) and by `.ci/` (`LANEMAP_CI_LTS=0` skips the Node LTS pass,
 * `LANEMAP_CI_CACHE` is where `.ci/node-lts` keeps Node binaries).
 * `LANEMAP_TEST_*` (test hooks) and `LANEMAP_BENCH_*` (benchmarks) are known by prefix.
 */
const OTHER_VARIABLES: readonly string[] = ["LANEMAP_DEBUG", "LANEMAP_CI_LTS", "LANEMAP_CI_CACHE"];
const OTHER_PREFIXES: readonly string[] = ["LANEMAP_TEST_", "LANEMAP_BENCH_"];

/** A `LANEMAP_*` variable of the environment that nothing reads, and the known one it most resembles. */
export interface UnknownVariable {
  readonly name: string;
  /** The known variable at the smallest edit distance, when it is close enough to be a typo. */
  readonly suggestion: string | undefined;
}

/**
 * The `LANEMAP_*` names of `env` that no part of lanemap reads (a misspelt variable is otherwise
 * ignored silently and its default applies), each with the closest known name when one is within
 * a third of its length in Levenshtein distance. Sorted by name.
 */
export function unknownVariables(
  env: Readonly<Record<string, string | undefined>> = process.env,
): UnknownVariable[] {
  const known = [...Object.keys(variables).filter((n) => n.startsWith("LANEMAP_")), ...OTHER_VARIABLES];
  const unknown: UnknownVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith("LANEMAP_") || known.includes(name)) continue;
    if (OTHER_PREFIXES.some((p) => name.startsWith(p))) continue;
    let best: string | undefined;
    let bestDistance = Infinity;
    for (const k of known) {
      const d = editDistance(name, k);
      if (d < bestDistance) [best, bestDistance] = [k, d];
    }
    // The shared "LANEMAP_" prefix is not evidence of a typo: measure against the rest.
    const close = bestDistance <= Math.max(2, Math.floor((name.length - "LANEMAP_".length) / 3));
    unknown.push({ name, suggestion: close ? best : undefined });
  }
  return unknown;
}

/** Levenshtein distance (insertions, deletions, substitutions of one character each cost 1). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}
