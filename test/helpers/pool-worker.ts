/**
 * A worker entry for the WorkerPool tests: each job names a behaviour, so a test can make a real
 * worker thread answer, hang, crash, exit or throw. `workerData` can make its start fail.
 */
import { TileInvalidError, serveJobs, transferableBuffers, workerPayload } from "../../shared/index.js";

/** What a test worker is told to do. */
export type PoolTestJob =
  | { readonly kind: "echo"; readonly value: string }
  /** Keeps `value` in the thread (a warm-up job's state), echoed by every later answer. */
  | { readonly kind: "remember"; readonly value: string }
  /** Doubles the samples in place and sends them back transferred. */
  | { readonly kind: "double"; readonly samples: Float64Array }
  | { readonly kind: "sleep"; readonly ms: number }
  | { readonly kind: "hang" }
  | { readonly kind: "throw"; readonly message: string }
  | { readonly kind: "crash"; readonly message: string }
  | { readonly kind: "exit"; readonly code: number };

/** What it answers. */
export type PoolTestResult =
  | {
      readonly kind: "echo";
      readonly value: string;
      readonly threadId: number;
      readonly remembered: readonly string[];
    }
  | { readonly kind: "double"; readonly samples: Float64Array; readonly received: number };

/** The test worker's start-up behaviour. */
export interface PoolTestWorkerData {
  readonly setup?: "throw" | "exit";
}

const { threadId } = await import("node:worker_threads");
const data = workerPayload<PoolTestWorkerData | undefined>();
const remembered: string[] = [];

serveJobs<PoolTestJob, PoolTestResult>(
  async (job) => {
    switch (job.kind) {
      case "echo":
        return { result: { kind: "echo", value: job.value, threadId, remembered } };
      case "remember":
        remembered.push(job.value);
        return { result: { kind: "echo", value: job.value, threadId, remembered } };
      case "double": {
        for (let i = 0; i < job.samples.length; i++) job.samples[i] = (job.samples[i] as number) * 2;
        return {
          result: { kind: "double", samples: job.samples, received: job.samples.length },
          transfer: transferableBuffers(job.samples),
        };
      }
      case "sleep":
        await new Promise((r) => setTimeout(r, job.ms));
        return { result: { kind: "echo", value: "slept", threadId, remembered } };
      case "hang":
        // A synchronous loop: nothing inside this thread can interrupt it.
        for (;;);
      case "throw":
        throw new TileInvalidError(job.message);
      case "crash":
        // Thrown outside the job's promise: an uncaught exception ends the thread.
        setTimeout(() => {
          throw new Error(job.message);
        });
        return new Promise(() => undefined);
      case "exit":
        process.exit(job.code);
    }
  },
  {
    setup: () => {
      if (data?.setup === "throw") throw new TileInvalidError("setup refused: no model here");
      if (data?.setup === "exit") process.exit(7);
    },
  },
);
