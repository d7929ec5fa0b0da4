/**
 * What the speed-lane tests share: tiny generated tiles and models, a config for a temporary data
 * directory, bounded polling, and worker processes started the way an operator starts them
 * (`node infra/bin/lanemap.js speed`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino, type Logger } from "pino";
import { NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import {
  createClassifier,
  createFeatureSpec,
  decodeGeoTiff,
  parseConfig,
  serializeModel,
  trainModel,
  type Config,
  type Model,
} from "../../shared/index.js";
import { SAMPLE_CLASSES, SAMPLE_NIR_BAND, SAMPLE_RED_BAND, generateTile } from "../../sample/index.js";
import { projectRoot } from "../helpers/env.js";

/** Seed of every generated tile in these tests. */
export const SEED = 11;
/** Pixels per side of test tiles: tiny, so a tile takes milliseconds. */
export const TILE_SIZE = 64;

/** A generated 6-band (or `bands`-band) tile of grid cell (col, row) acquired at `acquired`. */
export function testTile(
  col: number,
  row: number,
  acquired: string,
  bands = 6,
): { cell: string; bytes: Uint8Array; tileId: string; acquired: string } {
  const t = generateTile({ seed: SEED, col, row, tileSize: TILE_SIZE, bands, acquired });
  const stamp = acquired.replace(/[-:]/g, "").replace(/\.\d+/, "");
  return { cell: t.cell, bytes: t.bytes, tileId: `${t.cell}-${stamp}`, acquired };
}

const models = new Map<string, Model>();

/**
 * A model trained on one generated tile's truth raster (every pixel a sample). `k` makes distinct
 * models (distinct versions) for hot-swap tests; `bands` must match the tiles it classifies.
 */
export async function testModel(k = 5, bands = 6): Promise<Model> {
  const key = `${k}/${bands}`;
  const cached = models.get(key);
  if (cached) return cached;
  const t = generateTile({
    seed: SEED,
    col: 9,
    row: 9,
    tileSize: TILE_SIZE,
    bands,
    acquired: "2024-01-15T16:40:00Z",
  });
  const raster = await decodeGeoTiff(t.bytes);
  const truth = await decodeGeoTiff(t.truthBytes);
  const names = Object.fromEntries(SAMPLE_CLASSES.map((c) => [String(c.id), c.name]));
  const model = trainModel(
    [raster],
    { kind: "raster", raster: truth, names },
    {
      features: createFeatureSpec(bands, { red: SAMPLE_RED_BAND, nir: SAMPLE_NIR_BAND }),
      k,
      source: `test tile seed ${SEED}`,
      createdAt: "2024-01-01T00:00:00Z",
    },
  );
  models.set(key, model);
  return model;
}

/** Class counts of classifying `bytes` directly, in this process: what the live result must say. */
export async function directCounts(model: Model, bytes: Uint8Array): Promise<number[]> {
  return createClassifier(model).classify(await decodeGeoTiff(bytes)).counts;
}

/** Uploads and activates a model in the registry. */
export async function activateModel(nc: NatsConnection, model: Model): Promise<void> {
  const registry = await NatsModelRegistry.open(nc);
  await registry.upload(model.version, new TextEncoder().encode(serializeModel(model)));
  await registry.activate(model.version);
}

/** Environment of a speed worker in the tests: short ack wait, few deliveries, quiet logs. */
export function testEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    LANEMAP_DATA_DIR: dataDir,
    LANEMAP_ACK_WAIT_S: "2",
    LANEMAP_MAX_DELIVER: "3",
    // One tile in flight: one classifier and one decoder thread per worker keep start-up short.
    LANEMAP_SPEED_CONCURRENCY: "1",
    LANEMAP_DECODE_TIMEOUT_MS: "5000",
    LANEMAP_LOG_LEVEL: "silent",
    ...extra,
  };
}

/** The config of an in-process worker in the tests. */
export function testConfig(dataDir: string, extra: Record<string, string> = {}): Config {
  return parseConfig(testEnv(dataDir, extra));
}

/** A logger that says nothing (set LANEMAP_TEST_LOG=debug to see the worker's logs). */
export function testLogger(): Logger {
  return pino({ level: process.env["LANEMAP_TEST_LOG"] ?? "silent" });
}

/** A temporary folder removed on dispose. */
export async function tempDir(prefix = "lanemap-speed-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Polls `probe` until it returns a value other than undefined/false, at most `timeoutMs`; throws
 * naming `what` otherwise. The bound is a failure guard, never a measurement.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The JetStream client of a connection. */
export function js(nc: NatsConnection): JetStreamClient {
  return jetstream(nc);
}

/** A `lanemap` child process with its JSON log lines collected. */
export interface CliProcess extends AsyncDisposable {
  readonly child: ChildProcess;
  /** Parsed lines of stdout and of stderr (pino's), non-JSON ones kept as { text }. */
  readonly lines: Record<string, unknown>[];
  /** The lines of stdout alone. */
  readonly out: readonly string[];
  readonly stderr: () => string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  /** Waits for a log line matching `pred`. */
  waitForLine(
    what: string,
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

/** Starts `node infra/bin/lanemap.js ...args` with `env` added to this process's environment. */
export function lanemap(args: string[], env: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, [join(projectRoot, "infra", "bin", "lanemap.js"), ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  const out: string[] = [];
  let err = "";
  // pino's JSON lines come on stderr, the command's own output on stdout: both are searched by
  // waitForLine (non-JSON lines kept as { text }); runLanemap reports stdout alone.
  const splitter = (onLine: (text: string) => void) => {
    let buffered = "";
    return {
      data: (d: Buffer) => {
        buffered += d.toString();
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          onLine(buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
        }
      },
      end: () => {
        if (buffered) onLine(buffered);
        buffered = "";
      },
    };
  };
  const parse = (text: string) => {
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>);
    } catch {
      lines.push({ text });
    }
  };
  const stdout = splitter((text) => {
    out.push(text);
    parse(text);
  });
  const stderr = splitter(parse);
  child.stdout?.on("data", stdout.data);
  child.stderr?.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-20_000);
    stderr.data(d);
  });
  // "close" (not "exit"): both streams are fully read by then, including a last line without a newline.
  const exited = new Promise<number | string>((resolve) =>
    child.once("close", (code, signal) => {
      stdout.end();
      stderr.end();
      resolve(code ?? signal ?? "unknown");
    }),
  );
  return {
    child,
    lines,
    out,
    stderr: () => err,
    exited,
    waitForLine: (what, pred, timeoutMs = 30_000) =>
      waitFor(
        what,
        () => {
          // The line first: a process may print it and exit before the next poll (a prompt stop).
          const line = lines.find(pred);
          if (line) return line;
          if (child.exitCode !== null)
            throw new Error(`the process exited (${child.exitCode}): ${err.trim().split("\n").pop() ?? ""}`);
          return undefined;
        },
        timeoutMs,
      ),
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

/** Runs `lanemap ...args` to its end; resolves with its exit code and output. */
export async function runLanemap(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = lanemap(args, env);
  const code = await p.exited;
  return { code, stdout: p.out.join("\n"), stderr: p.stderr() };
}
