/** Starts the serving layer for a test on a free port, silent, disposed with `await using`. */
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { parseConfig } from "../../shared/index.js";
import {
  createServer,
  type BatchTrigger,
  type LanemapServer,
  type ServerOptions,
} from "../../serving/index.js";

export interface ServingFixture extends AsyncDisposable {
  readonly url: string;
  readonly server: LanemapServer;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  json<T = Record<string, unknown>>(
    path: string,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T; res: Response }>;
}

/** A server over `dataDir` (PORT=0, logs silent unless LANEMAP_TEST_LOG is set). */
export async function startServing(options: {
  dataDir: string;
  nc?: NatsConnection;
  batchTrigger?: BatchTrigger;
  env?: Record<string, string>;
  options?: ServerOptions;
}): Promise<ServingFixture> {
  const config = parseConfig({
    LANEMAP_DATA_DIR: options.dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    LANEMAP_LOG_LEVEL: "silent",
    ...options.env,
  });
  const logger = pino({ level: process.env["LANEMAP_TEST_LOG"] ?? "silent" });
  const server = createServer(
    config,
    {
      logger,
      ...(options.nc ? { nc: options.nc } : {}),
      ...(options.batchTrigger ? { batchTrigger: options.batchTrigger } : {}),
    },
    { pollIntervalMs: 200, ...options.options },
  );
  const listening = await server.listen();
  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(listening.url + path, { headers });
  return {
    url: listening.url,
    server,
    get,
    async json<T>(path: string, headers: Record<string, string> = {}) {
      const res = await get(path, headers);
      return { status: res.status, body: (await res.json()) as T, res };
    },
    [Symbol.asyncDispose]: () => listening.close(),
  };
}

/** Polls `check` until it returns a value (not undefined), up to `attempts` × 25 ms. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  attempts = 400,
): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("condition not reached");
}
