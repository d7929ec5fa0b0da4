/**
 * Operational state: the published batch versions (files or NATS) and the one serving reads, the live view's
 * position, size and lag, and readiness.
 */
import { utcTimestamp } from "../../shared/index.js";
import type { ReadyBody, ViewsBody } from "../api/schemas.js";
import type { SnapshotLease } from "../view/snapshot.js";
import type { ServingContext } from "./context.js";
import { snapshotInfo } from "./present.js";

/** Batch versions (with the current one marked) and the live view's state. */
export async function viewsQuery(ctx: ServingContext, lease: SnapshotLease): Promise<ViewsBody> {
  const now = lease.now;
  const state = ctx.batch.state();
  const current = state.state === "open" ? state.name : null;
  const versions = await ctx.batch.publishedVersions();
  let live: ViewsBody["live"] = {
    configured: false,
    state: "not-configured",
    position: null,
    size: null,
    newestProcessedAt: null,
    sinceNewestResultS: null,
    consumerPendingMessages: null,
  };
  if (ctx.live) {
    const snap = lease.snapshot.live;
    const newest = snap ? ctx.live.newestProcessedMs(snap) : null;
    let consumerLag: number | null = null;
    if (ctx.consumerLag) {
      try {
        consumerLag = (await ctx.consumerLag()) ?? null;
      } catch (err) {
        ctx.logger.warn({ err }, "consumer lag probe failed");
      }
    }
    live = {
      configured: true,
      state: ctx.live.state().state,
      position: snap?.position ?? null,
      size: snap?.size ?? null,
      newestProcessedAt: newest === null ? null : new Date(newest).toISOString(),
      sinceNewestResultS: newest === null ? null : Math.max(0, now - newest) / 1000,
      consumerPendingMessages: consumerLag,
    };
  }
  return {
    batch: {
      state: state.state,
      current,
      error: state.state === "none-yet" ? null : state.error,
      versions: versions.map((v) => ({
        name: v.name,
        version: v.version,
        current: v.name === current,
        watermark: v.manifest.watermark,
        modelVersion: v.manifest.modelVersion,
        startedAt: utcTimestamp(v.manifest.startedAt),
        finishedAt: utcTimestamp(v.manifest.finishedAt),
        ageS: Math.max(0, now - Date.parse(v.manifest.finishedAt)) / 1000,
        cells: v.manifest.cells,
        tiles: v.manifest.tiles,
      })),
    },
    live,
    snapshot: snapshotInfo(lease),
  };
}

/**
 * Ready when the batch side is open or nothing was published yet (a fresh install serves live
 * results alone), and the live view is being followed when NATS is configured.
 */
export function readiness(ctx: ServingContext): ReadyBody {
  const b = ctx.batch.state();
  const l = ctx.live?.state() ?? null;
  const batchOk = b.state !== "error";
  const liveOk = l === null || l.state === "following";
  return {
    ready: batchOk && liveOk,
    batch: {
      state: b.state,
      version: b.state === "open" ? b.name : null,
      error: b.state === "none-yet" ? null : b.error,
    },
    live: l
      ? { configured: true, state: l.state, error: l.error }
      : { configured: false, state: "not-configured", error: null },
  };
}
