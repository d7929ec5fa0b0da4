/**
 * `npm run bench:readme`: rewrites the README's benchmark tables from the newest JSON results under
 * test/results/bench/, so no figure in the README is older than the run it came from.
 *
 * The README marks each generated block with a pair of comments naming its results file:
 *
 *     <!-- bench:core-knn -->  ...generated...  <!-- /bench:core-knn -->
 *
 * A block is replaced by: when and where it was measured (date, nproc, CPU model, Node, the load
 * average when the bench started), for a comparison of two trees (`npm run bench:compare`) which
 * commits were compared, then every table the bench printed, with its notes. A block whose
 * results file is missing is left as it is and reported, so a figure is never silently kept as if
 * it were new. Text outside the markers is not touched.
 *
 * Usage: node --import tsx test/bench/readme.ts [README path]   (exit 1 when a block was not refreshed)
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../helpers/env.js";
import { renderTable, type Table } from "./harness.js";

interface Results {
  name: string;
  at: string;
  machine: {
    nproc?: number;
    cpus?: number;
    cpu?: string;
    node?: string;
    loadAtStart?: number[];
    startedAt?: string;
  };
  tables?: Table[];
  /** A comparison's two trees (compare.bench.ts): the commit each side had checked out. */
  data?: { before?: Commit; after?: Commit };
}

interface Commit {
  commit?: string;
  subject?: string;
}

/** The generated markdown of one results file. */
export function renderBlock(r: Results): string {
  const m = r.machine;
  const load = m.loadAtStart ? m.loadAtStart.map((l) => l.toFixed(2)).join(" / ") : "not recorded";
  const lines = [
    `_Measured ${(m.startedAt ?? r.at).slice(0, 16).replace("T", " ")} UTC by \`${r.name}\` on ${m.nproc ?? m.cpus ?? "?"} × ${m.cpu ?? "?"}, ` +
      `Node ${m.node ?? "?"}; load average at the start (1 / 5 / 15 min): ${load}._`,
  ];
  const { before, after } = r.data ?? {};
  if (before?.commit && after?.commit) {
    // Subjects can be paragraphs long: the first words are enough to recognise the commit.
    const short = (t: string) => (t.length > 60 ? `${t.slice(0, 59).trimEnd()}…` : t);
    const side = (c: Commit) => `\`${c.commit}\`${c.subject ? ` (“${short(c.subject)}”)` : ""}`;
    lines.push("", `_Compared: before = ${side(before)}, after = ${side(after)}._`);
  }
  for (const t of r.tables ?? []) {
    lines.push("", `**${t.title}**`, "", renderTable(t));
    for (const n of t.notes ?? []) lines.push("", n);
  }
  return lines.join("\n");
}

/** README text with every marked block replaced from `dir`; `stale` lists the blocks left as they were. */
export function refreshReadme(
  readme: string,
  dir: string,
): { text: string; refreshed: string[]; stale: string[] } {
  const refreshed: string[] = [];
  const stale: string[] = [];
  const text = readme.replace(
    /<!-- bench:([\w-]+) -->\n[\s\S]*?\n<!-- \/bench:\1 -->/g,
    (block, name: string) => {
      const file = join(dir, `${name}.json`);
      if (!existsSync(file)) {
        stale.push(name);
        return block;
      }
      const r = JSON.parse(readFileSync(file, "utf8")) as Results;
      if (!r.tables || r.tables.length === 0) {
        stale.push(name);
        return block;
      }
      refreshed.push(name);
      return `<!-- bench:${name} -->\n${renderBlock(r)}\n<!-- /bench:${name} -->`;
    },
  );
  return { text, refreshed, stale };
}

if (process.argv[1]?.endsWith("readme.ts")) {
  const path = process.argv[2] ?? join(projectRoot, "README.md");
  const { text, refreshed, stale } = refreshReadme(
    readFileSync(path, "utf8"),
    join(projectRoot, "test", "results", "bench"),
  );
  writeFileSync(path, text);
  console.log(`refreshed: ${refreshed.join(", ") || "none"}`);
  if (stale.length > 0) {
    console.log(`not refreshed (no results file with tables): ${stale.join(", ")}`);
    process.exitCode = 1;
  }
}
