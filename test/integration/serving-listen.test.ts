/**
 * The serving layer's socket: a port another process holds fails start-up as LISTEN naming the
 * address and what to do, not as a failure of the views it has already loaded.
 */
import assert from "node:assert/strict";
import { createServer as createTcpServer } from "node:net";
import { test } from "node:test";
import { LanemapError } from "../../shared/index.js";
import { startServing } from "../helpers/serving-server.js";
import { tempDataDir, writeBatchView } from "../helpers/serving-views.js";

test("serving on a port another process listens on fails as LISTEN naming the address in use and PORT", async () => {
  await using data = await tempDataDir();
  await writeBatchView(data.dir, { version: 1, watermark: 0, tiles: [] });
  const holder = createTcpServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  const { port } = holder.address() as { port: number };
  try {
    await assert.rejects(
      startServing({ dataDir: data.dir, env: { PORT: String(port) } }),
      (e: unknown) =>
        e instanceof LanemapError &&
        e.code === "LISTEN" &&
        e.message ===
          `cannot listen on 127.0.0.1:${port}: the address is in use (another process listens there: stop it or set PORT)`,
    );
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
});
