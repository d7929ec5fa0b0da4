/**
 * Training as a job (POST /v1/models): one at a time (a second request while one runs is a 409),
 * its state kept for the last few jobs, every state change published as a `train-job` event. The
 * work itself is the injected ModelTrainer's, in a worker thread, so requests keep being answered.
 */
import { randomBytes } from "node:crypto";
import { describeError, errorCode } from "../../shared/index.js";
import { NotFoundError, ProblemError } from "../errors.js";
import type { ModelTrainer, TrainOutcome, TrainProgress } from "../model-trainer.js";

/** A training job as the API reports it. */
export interface TrainJobStatus {
  readonly jobId: string;
  readonly state: "running" | "succeeded" | "failed";
  readonly phase: TrainProgress["phase"] | "done";
  readonly message: string;
  readonly startedAt: string;
  readonly finishedAt?: string;
  /** Milliseconds from the request to the end. */
  readonly elapsedMs?: number;
  /** The stored model, once the job succeeded. */
  readonly result?: TrainOutcome;
  /** Why it failed: the error code and message. */
  readonly error?: { readonly code: string; readonly message: string };
}

/** Jobs remembered after they end. */
const KEEP = 20;

/** The jobs of one server. */
export class TrainJobs {
  private readonly jobs = new Map<string, TrainJobStatus>();
  private running: { id: string; abort: AbortController } | null = null;

  constructor(
    private readonly trainer: ModelTrainer,
    private readonly publish: (s: TrainJobStatus) => void,
    private readonly log: (s: TrainJobStatus) => void,
  ) {}

  /**
   * Starts a job and resolves with its first status at once; the job goes on in the background.
   * @throws ProblemError 409 (train-job-active) while another job runs.
   */
  start(options: { k?: number; maxSamplesPerFeature?: number }): TrainJobStatus {
    if (this.running)
      throw new ProblemError(
        409,
        "train-job-active",
        "Training job active",
        `training job ${this.running.id} is running`,
        {
          extensions: { active_job_id: this.running.id },
        },
      );
    const jobId = `train-${new Date().toISOString().replace(/[-:.]/g, "").slice(0, 15)}-${randomBytes(3).toString("hex")}`;
    const abort = new AbortController();
    this.running = { id: jobId, abort };
    const t0 = Date.now();
    const startedAt = new Date(t0).toISOString();
    this.set({ jobId, state: "running", phase: "selecting", message: "queued", startedAt });
    void this.trainer
      .train(
        options,
        (p) => this.set({ jobId, state: "running", phase: p.phase, message: p.message, startedAt }),
        abort.signal,
      )
      .then(
        (result) =>
          this.set({
            jobId,
            state: "succeeded",
            phase: "done",
            message: `model ${result.version} stored`,
            startedAt,
            finishedAt: new Date().toISOString(),
            elapsedMs: Date.now() - t0,
            result,
          }),
        (err: unknown) =>
          this.set({
            jobId,
            state: "failed",
            phase: "done",
            message: describeError(err),
            startedAt,
            finishedAt: new Date().toISOString(),
            elapsedMs: Date.now() - t0,
            error: { code: errorCode(err), message: describeError(err) },
          }),
      )
      .finally(() => {
        if (this.running?.id === jobId) this.running = null;
      });
    return this.jobs.get(jobId) as TrainJobStatus;
  }

  /** A job's status; 404 for an unknown (or long forgotten) id. */
  status(jobId: string): TrainJobStatus {
    const s = this.jobs.get(jobId);
    if (!s) throw new NotFoundError(`no training job ${jobId}`, "train-job-not-found");
    return s;
  }

  /** Aborts a running job (server shutdown). */
  close(): void {
    this.running?.abort.abort(new Error("the server is stopping"));
  }

  private set(s: TrainJobStatus): void {
    this.jobs.delete(s.jobId);
    this.jobs.set(s.jobId, s);
    while (this.jobs.size > KEEP) this.jobs.delete(this.jobs.keys().next().value as string);
    this.publish(s);
    if (s.state !== "running" || s.message === "queued") this.log(s);
  }
}
