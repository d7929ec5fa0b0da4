#!/usr/bin/env node
// The `lanemap` command. The code base is TypeScript run through tsx's loader, so `npx lanemap`
// works in a fresh clone with no build step; the hot paths are plain typed-array loops either way.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
