/**
 * Dry runs of the destructive commands `ops` borrows from the rest of the CLI (`dlq retry`,
 * `views rollback`, `model activate`): what they would do, checked the way they check it, with
 * nothing changed. The commands themselves stay the one implementation; these only read.
 */
import { stat } from "node:fs/promises";
import {
  listBatchVersions,
  readBatchVersion,
  readCurrentPointer,
  type BatchVersion,
} from "../../shared/adapters/archive/index.js";
import {
  ModelNotFoundError,
  type DeadLetter,
  type DeadLetterQueue,
  type NatsModelRegistry,
} from "../../shared/adapters/nats/index.js";
import { LanemapError, loadModelFile, versionNameOf } from "../../shared/index.js";

/** What `views rollback V` would do. */
export interface RollbackPreview {
  readonly from: string | null;
  readonly to: string;
  readonly watermark: number;
  readonly modelVersion: string;
  readonly tiles: number;
}

/**
 * Resolves a rollback target as `views rollback` does ("v000042" or "42"), without moving CURRENT.
 * @throws LanemapError VIEW_NOT_FOUND when it is not a complete version.
 */
export async function previewRollback(dataDir: string, spec: string): Promise<RollbackPreview> {
  const name = versionNameOf(spec);
  const v: BatchVersion | null = name === null ? null : await readBatchVersion(dataDir, name);
  if (!v) {
    const known = (await listBatchVersions(dataDir)).map((x) => x.name);
    throw new LanemapError(
      "VIEW_NOT_FOUND",
      `"${spec}" is not a complete batch view version; complete versions: ${known.length ? known.join(", ") : "none"}`,
    );
  }
  return {
    from: await readCurrentPointer(dataDir),
    to: v.name,
    watermark: v.manifest.watermark,
    modelVersion: v.manifest.modelVersion,
    tiles: v.manifest.tiles.total,
  };
}

/** What `dlq retry` would send back, and the asked-for sequences that are not dead letters. */
export interface DlqRetryPreview {
  readonly letters: readonly DeadLetter[];
  readonly missing: readonly number[];
}

/** The dead letters `dlq retry --all` or `--seq ...` would retry. */
export async function previewDlqRetry(
  queue: DeadLetterQueue,
  wanted: { all: true } | { seqs: readonly number[] },
): Promise<DlqRetryPreview> {
  const letters = await queue.list();
  if ("all" in wanted) return { letters, missing: [] };
  const bySeq = new Map(letters.map((d) => [d.seq, d]));
  return {
    letters: wanted.seqs.flatMap((s) => bySeq.get(s) ?? []),
    missing: wanted.seqs.filter((s) => !bySeq.has(s)),
  };
}

/** What `model activate X` would do. */
export interface ModelActivatePreview {
  readonly version: string;
  /** The artifact would be uploaded (a file whose version the registry does not have yet). */
  readonly upload: boolean;
  readonly from: string | null;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Validates a model file (the same parse `model activate` runs) or checks that a version is in
 * the registry, without uploading or activating anything.
 * @throws ModelError for an invalid file, ModelNotFoundError for an unknown version.
 */
export async function previewModelActivate(
  registry: NatsModelRegistry,
  target: string,
): Promise<ModelActivatePreview> {
  const from = (await registry.current())?.version ?? null;
  if (await isFile(target)) {
    const model = await loadModelFile(target);
    return { version: model.version, upload: !(await registry.record(model.version)), from };
  }
  if (!(await registry.record(target))) throw new ModelNotFoundError(target);
  return { version: target, upload: false, from };
}
