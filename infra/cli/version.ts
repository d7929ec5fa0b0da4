import { readFileSync } from "node:fs";

/**
 * lanemap's version from its package.json, found by walking up from this module (the same code
 * runs from infra/cli/ and from dist/infra/cli/).
 */
export function packageVersion(): string {
  let dir = new URL(".", import.meta.url);
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === "lanemap" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // no package.json here: keep walking up
    }
    const up = new URL("..", dir);
    if (up.href === dir.href) return "unknown";
    dir = up;
  }
}
