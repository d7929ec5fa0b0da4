// Lint rules, including the architecture: dependencies point one way,
// shared <- batch, speed, serving <- infra, and the lanes never import each other.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const lane = (self, others) => ({
  files: [`${self}/**/*.ts`],
  rules: {
    "no-restricted-imports": [
      "error",
      {
        patterns: [
          ...others.map((o) => ({
            group: [`**/${o}/**`, `**/${o}/*`],
            message: `${self}/ may not import ${o}/: dependencies point shared <- batch, speed, serving <- infra.`,
          })),
          {
            group: ["@duckdb/*"],
            message: `${self}/ reaches DuckDB only through shared/adapters/duckdb/index.js (its values stay there).`,
          },
          {
            group: ["**/sample/**", "**/sample/*"],
            message: `${self}/ may not import sample/: the sample generator is for infra and tests.`,
          },
          {
            // Siblings reach shared only through its public entries, never deep paths nor internals.
            regex: "^(\\.\\./)+shared/(?!index\\.js$|adapters/[a-z]+/index\\.js$).+",
            message: "Import shared/ through shared/index.js or shared/adapters/<tech>/index.js.",
          },
        ],
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ["node_modules/**", "dist/**", "data/**", "test/results/**", "serving/web/vendor/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        Buffer: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        setImmediate: "readonly",
        AbortController: "readonly",
        AbortSignal: "readonly",
        TextEncoder: "readonly",
        TextDecoder: "readonly",
        performance: "readonly",
        structuredClone: "readonly",
        fetch: "readonly",
        WebAssembly: "readonly",
        document: "readonly",
        window: "readonly",
        EventSource: "readonly",
      },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
    },
  },
  {
    files: ["shared/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/batch/**", "**/speed/**", "**/serving/**", "**/infra/**", "**/sample/**"],
              message: "shared/ is the core: it imports no lane, no infra and not the sample generator.",
            },
          ],
        },
      ],
    },
  },
  {
    // The sample generator builds on shared/ (its face and internals) and nothing else.
    files: ["sample/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/batch/**", "**/speed/**", "**/serving/**", "**/infra/**"],
              message: "sample/ builds on shared/ only: it imports no lane and no infra.",
            },
            {
              regex: "^(\\.\\./)+shared/(?!index\\.js$|internal\\.js$|adapters/[a-z]+/index\\.js$).+",
              message: "Import shared/ through shared/index.js or shared/internal.js.",
            },
          ],
        },
      ],
    },
  },
  lane("batch", ["speed", "serving", "infra"]),
  lane("speed", ["batch", "serving", "infra"]),
  lane("serving", ["batch", "speed", "infra"]),
);
