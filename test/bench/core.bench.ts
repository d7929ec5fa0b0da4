/**
 * `npm run bench:core`: GeoTIFF decoding vs gdal_translate, kNN predictions/s vs scikit-learn and
 * ml-knn, end-to-end classification vs the PyData peer — each against its peer in the same run.
 */
import { printTable, writeResults } from "./harness.js";
import { runDecodeBench } from "./core/decode.js";
import { runE2eBench } from "./core/e2e.js";
import { runKnnBench } from "./core/knn.js";

const sections = { decode: runDecodeBench, knn: runKnnBench, e2e: runE2eBench };
const only = process.argv.slice(2);
const results: Record<string, unknown> = {};
for (const [name, run] of Object.entries(sections)) {
  if (only.length && !only.includes(name)) continue;
  const { table, results: r } = await run();
  printTable(table);
  results[name] = r;
}
writeResults("core", results);
