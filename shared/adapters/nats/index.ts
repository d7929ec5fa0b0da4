/** NATS adapters: the names of the ingest contract and shared buckets, and the live view. */
export * from "./names.js";
export {
  LiveView,
  LiveFollower,
  liveKey,
  type LiveEntry,
  type LiveRecord,
  type LiveSnapshot,
} from "./live-view.js";
