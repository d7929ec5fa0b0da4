/** What the use cases work with: the view sources, the snapshot manager, the archive and config. */
import type { Logger } from "pino";
import type { TileArchive } from "../../shared/index.js";
import type { Config, ModelRegistry } from "../../shared/index.js";
import type { BatchTrigger } from "../batch-trigger.js";
import type { BatchViewSource } from "../view/batch-source.js";
import type { LiveSource } from "../view/live-source.js";
import type { SnapshotManager } from "../view/snapshot.js";
import type { BatchRunLedger } from "./batch-runs.js";
import type { SourceImagery } from "./source-image.js";
import type { TrainJobs } from "./train-jobs.js";

/** Shared by every use case of one server (nothing here is a module singleton). */
export interface ServingContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly batch: BatchViewSource;
  readonly live: LiveSource | null;
  readonly snapshots: SnapshotManager;
  readonly archive: TileArchive;
  /** Renders archived source tiles (its decoder worker ends with the server). */
  readonly sourceImages: SourceImagery;
  readonly batchTrigger: BatchTrigger | undefined;
  /** The runs this server triggered, followed for /metrics (present with a trigger). */
  readonly batchRuns: BatchRunLedger | undefined;
  /** The speed consumer's pending messages, when infra can tell. */
  readonly consumerLag: (() => Promise<number | undefined>) | undefined;
  /** Training jobs (present with a model trainer). */
  readonly trainJobs?: TrainJobs | undefined;
  /** The model registry both lanes read (opened once, on first use). */
  readonly models: () => Promise<ModelRegistry>;
  /** Process start, epoch ms. */
  readonly startedAt: number;
}
