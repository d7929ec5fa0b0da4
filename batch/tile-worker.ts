/**
 * Entry of a batch tile worker (started by worker-pool.ts through shared/util `startWorker`). It loads
 * the model once, then for each tile it is sent reads the bytes from the archive itself, decodes and
 * classifies them with shared/pipeline `classifyTileBytes` and posts back the summary and the
 * compressed class raster (transferred, not copied). A tile's failure is a message, not a crash.
 */
import { parentPort } from "node:worker_threads";
import { setTimeout as sleep } from "node:timers/promises";
import { ArchiveStore } from "../shared/adapters/archive/index.js";
import {
  LanemapError,
  classifyTileBytes,
  createClassifier,
  describeError,
  loadModelFile,
  workerPayload,
  type Classifier,
  errorCode,
} from "../shared/index.js";
import type { FromWorker, TileWorkerData, ToWorker } from "./worker-protocol.js";

if (!parentPort) throw new LanemapError("WORKER_START", "tile-worker.ts must run in a worker thread");
const port = parentPort;
const data = workerPayload<TileWorkerData>();
const post = (msg: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

let classifier: Classifier | undefined;
try {
  classifier = createClassifier(await loadModelFile(data.modelPath));
} catch (err) {
  // The pool terminates this worker and fails the run.
  post({
    type: "init-failed",
    code: err instanceof LanemapError ? err.code : "MODEL",
    message: `model ${data.modelPath}: ${describeError(err)}`,
  });
}
if (classifier) serve(classifier);

function serve(classifier: Classifier): void {
  const store = new ArchiveStore(data.dataDir);
  port.on("message", (msg: ToWorker) => {
    void (async () => {
      const { job, entry } = msg;
      try {
        if (data.tileDelayMs > 0) await sleep(data.tileDelayMs);
        const bytes = await store.readObject(entry.contentHash);
        const out = await classifyTileBytes(bytes, classifier, entry, "batch", { maxPixels: data.maxPixels });
        const raster = out.raster;
        // Transfer the raster's buffer only when it is exactly the raster (not a view into a pool).
        const transfer =
          raster.byteOffset === 0 &&
          raster.byteLength === raster.buffer.byteLength &&
          raster.buffer instanceof ArrayBuffer
            ? [raster.buffer]
            : [];
        post({ type: "done", job, result: out.result, k: out.k, raster }, transfer);
      } catch (err) {
        post({
          type: "failed",
          job,
          code: errorCode(err),
          reason: describeError(err),
        });
      }
    })();
  });
  post({ type: "ready", modelVersion: classifier.model.version });
}
