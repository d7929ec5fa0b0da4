/**
 * A classifier thread of ClassifierPool (classifier-pool.ts): keeps the classifiers of the models it
 * was sent (built once per version), classifies decoded rasters with `classifyRaster` and posts back
 * the live record, transferring its raster bytes. It says "ready" once its modules are loaded, so the
 * pool's deadlines never count the thread's start-up.
 */
import { parentPort } from "node:worker_threads";
import {
  LanemapError,
  classifyRaster,
  encodeError,
  parseModel,
  prepareClassifier,
  type Classifier,
} from "../shared/index.js";
import type { ThreadReply, ThreadRequest } from "./classifier-pool.js";

const port = parentPort;
if (port === null) throw new Error("classifier-thread.ts must run in a worker thread");

/** Classifiers by model version; two are kept so a swap never rebuilds the previous one mid-flight. */
const classifiers = new Map<string, Classifier>();
const KEEP = 2;

port.on("message", (req: ThreadRequest) => {
  if (req.type === "model") {
    try {
      if (!classifiers.has(req.version)) {
        const model = parseModel(new TextDecoder().decode(req.artifact));
        if (model.version !== req.version)
          throw new LanemapError("MODEL", `the artifact stored as ${req.version} is model ${model.version}`);
        classifiers.set(req.version, prepareClassifier(model));
        while (classifiers.size > KEEP) classifiers.delete(classifiers.keys().next().value as string);
      }
      port.postMessage({ type: "model", version: req.version, ok: true } satisfies ThreadReply);
    } catch (err) {
      port.postMessage({
        type: "model",
        version: req.version,
        ok: false,
        error: encodeError(err),
      } satisfies ThreadReply);
    }
    return;
  }
  let reply: ThreadReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const classifier = classifiers.get(req.version);
    if (!classifier) throw new LanemapError("MODEL", `model ${req.version} was not loaded in this thread`);
    const out = classifyRaster(req.raster, classifier, req.entry, "live");
    // A copy of our own to transfer: a small Buffer may sit in Node's shared allocation pool.
    const raster = new Uint8Array(out.raster);
    reply = { type: "job", id: req.id, ok: true, out: { ...out, raster } };
    transfer = [raster.buffer];
  } catch (err) {
    reply = { type: "job", id: req.id, ok: false, error: encodeError(err) };
  }
  port.postMessage(reply, transfer);
});

port.postMessage({ type: "ready" } satisfies ThreadReply);
