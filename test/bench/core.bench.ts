/**
 * `npm run bench:core [decode] [knn] [e2e]`: GeoTIFF decoding vs GDAL in process, kNN predictions/s
 * vs scipy's cKDTree, FAISS and scikit-learn, end-to-end classification vs the PyData peer — each
 * against its anchors in the same run. Each section writes test/results/bench/core-<section>.json
 * (figures, machine, load at the start, the printed table), so a section can be re-run alone and
 * `npm run bench:readme` puts the newest tables into the README.
 */
import { printTable, writeResults } from "./harness.js";
import { runDecodeBench } from "./core/decode.js";
import { e2eResultsName, runE2eBench } from "./core/e2e.js";
import { runKnnBench } from "./core/knn.js";

const sections = { decode: runDecodeBench, knn: runKnnBench, e2e: runE2eBench };
const only = process.argv.slice(2);
for (const [name, run] of Object.entries(sections)) {
  if (only.length && !only.includes(name)) continue;
  const { table, results } = await run();
  printTable(table);
  // A run of fewer e2e cases is written beside the full run's results (e2eResultsName).
  writeResults(name === "e2e" ? e2eResultsName() : `core-${name}`, results, [table]);
}
