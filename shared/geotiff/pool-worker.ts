/**
 * The decoder worker of DecoderPool (pool.ts): decodes the GeoTIFF bytes of each job and sends back
 * the raster, transferring its band buffers.
 */
import { serveJobs, transferableBuffers } from "../workers/index.js";
import type { Raster } from "../raster/types.js";
import { decodeGeoTiff } from "./decode.js";
import type { DecodeJob } from "./pool.js";

serveJobs<DecodeJob, Raster>(async (job) => {
  // "keys": PROJ stays on the loading thread; callers take the CRS from the catalogue entry.
  const raster = await decodeGeoTiff(job.bytes, { maxPixels: job.maxPixels, crs: "keys" });
  // Every band owns a fresh ArrayBuffer (decode.ts allocates one per band): transfer, do not copy.
  return { result: raster, transfer: transferableBuffers(...raster.bands) };
});
