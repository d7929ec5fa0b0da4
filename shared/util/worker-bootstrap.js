// Bootstrap for worker threads: register tsx's loader, then import the real (TypeScript) entry.
// The entry reads its own data through `workerPayload()` from ./worker-data.ts.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.__entry);
