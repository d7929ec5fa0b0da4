/** NATS adapters: the names of the ingest contract and shared buckets. */
export * from "./names.js";
