/**
 * The decoder worker: decodes GeoTIFF bytes posted by DecoderPool (pool.ts) and posts back the raster,
 * transferring its band buffers, or the error as plain data. It says "ready" once its modules are
 * loaded, so that the pool's deadlines never count the worker's start-up.
 */
import { parentPort } from "node:worker_threads";
import type { BandArray } from "../raster/types.js";
import { decodeGeoTiff } from "./decode.js";
import type { PoolReply, PoolRequest } from "./pool.js";
import { toWireError } from "./wire.js";

const port = parentPort;
if (port === null) throw new Error("pool-worker.ts must run in a worker thread");

port.on("message", (req: PoolRequest) => {
  void (async () => {
    let reply: PoolReply;
    let transfer: ArrayBuffer[] = [];
    try {
      // "keys": PROJ stays on the loading thread; callers take the CRS from the catalogue entry.
      const raster = await decodeGeoTiff(new Uint8Array(req.bytes), {
        maxPixels: req.maxPixels,
        crs: "keys",
      });
      reply = { id: req.id, ok: true, raster };
      // Every band owns a fresh ArrayBuffer (decode.ts allocates one per band): transfer, do not copy.
      transfer = [...new Set(raster.bands.map((b: BandArray) => b.buffer as ArrayBuffer))];
    } catch (err) {
      reply = { id: req.id, ok: false, error: toWireError(err) };
    }
    port.postMessage(reply, transfer);
  })();
});

port.postMessage({ ready: true } satisfies PoolReply);
