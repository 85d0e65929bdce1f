/**
 * The layering of STYLE.md, enforced (`npm run lint`):
 * errors, units <- fs <- config <- models <- backends <- cache <- runtime <- server / cli, imports pointing one way;
 * fleet/ sits beside the cache (it may use the cache's types and pure merge, config and errors), and only runtime/
 * composes it.
 * Around src, the trees that exercise it: src <- testkit <- test / bench / stress, the last three never into each
 * other (what two of them share lives in testkit).
 */
const upper = "^src/(cache|runtime|server|cli|index)";

/** One side of a rule: a path pattern, or `[path, pathNot]` for a pattern with exceptions. */
const side = (pattern) => (Array.isArray(pattern) ? { path: pattern[0], pathNot: pattern[1] } : { path: pattern });

/** A forbidden import: from files matching `from` into files matching `to` (each a pattern or `[path, pathNot]`). */
const forbid = (name, comment, from, to) => ({
  name,
  ...(comment ? { comment } : {}),
  severity: "error",
  from: side(from),
  to: side(to),
});

module.exports = {
  forbidden: [
    forbid(
      "src-imports-no-tests",
      "The product never reaches into the code that tests or measures it.",
      "^src/",
      "^(testkit|test|bench|stress)/",
    ),
    forbid(
      "testkit-imports-src-only",
      "testkit holds what test/, bench/ and stress/ share; it builds on src and knows none of its users.",
      "^testkit/",
      "^(test|bench|stress|scripts)/",
    ),
    forbid(
      "test-bench-stress-apart",
      "test/, bench/ and stress/ import src and testkit, never each other: a helper two of them need moves to testkit.",
      "^(test|bench|stress)/",
      // $1 is the importing tree: within one tree is fine.
      ["^(test|bench|stress)/", "^$1/"],
    ),
    {
      name: "no-circular",
      comment:
        "No import cycle that runs: a cycle closed only by `import type` (erased at build) is allowed, so a module may name the types of the module that drives it.",
      severity: "error",
      from: {},
      to: { circular: true, dependencyTypesNot: ["type-only"], viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    forbid(
      "errors-import-nothing",
      "src/errors is the bottom layer: every folder may import it, it imports no other folder.",
      "^src/errors",
      ["^src/", "^src/errors"],
    ),
    forbid(
      "units-import-nothing",
      "src/units.ts (byte units and their formatter) is plain arithmetic every layer and the status page share.",
      "^src/units\\.ts$",
      "^src/",
    ),
    forbid(
      "fs-imports-only-errors",
      "src/fs holds the file-system primitives every layer shares (the atomic write): it sees only errors.",
      "^src/fs",
      ["^src/", "^src/(fs|errors)"],
    ),
    forbid("config-below-models", null, "^src/config", "^src/(models|backends|cache|runtime|server|cli)"),
    forbid("models-below-backends", null, "^src/models", "^src/(backends|cache|runtime|server|cli)"),
    forbid("backends-below-cache", null, "^src/backends", upper),
    forbid(
      "cache-core-does-no-io",
      "The cache knows the Backend and snapshot-store interfaces (and the pure name matcher), never the filesystem, a runtime or the server.",
      ["^src/cache", "^src/cache/persistence/(file-store|state-worker|lock|zstd)"],
      "^(node:)?(fs|fs/promises|child_process|net|http)$|node-llama-cpp|onnxruntime-node|^src/(fs|runtime|server|cli)|^src/backends/(?!types)|^src/models/(?!types|name-index)",
    ),
    forbid(
      "policy-is-pure",
      "Policy functions see only plain data: no classes from elsewhere, no I/O, no clock.",
      "^src/cache/policy",
      ["^src/", "^src/(cache/policy|cache/types|models/types|config/schema|errors|units\\.ts$)"],
    ),
    forbid(
      "fleet-beside-the-cache",
      "src/fleet keeps the fleet's shared state (Redis): it may use errors, config, model and cache types, the cache's pure merge and clock helpers and its simulator (the fleet mode replays traces with it), never backends, a runtime, the server or the CLI.",
      "^src/fleet",
      "^src/(backends|runtime|server|cli|index)|^src/cache/(?!types|clock|persistence/(types|merge)|state-view|policy|sim/(types|simulate))|^src/models/(?!types)",
    ),
    forbid(
      "only-runtime-composes-the-fleet",
      "The fleet is composed by runtime/; lower layers and the server never import it.",
      "^src/(errors|units|fs|config|models|backends|cache|server)",
      "^src/fleet",
    ),
    forbid(
      "fleet-placement-is-pure",
      "Placement sees only plain data: the fleet's and the models' types.",
      "^src/fleet/placement",
      ["^src/|^node:|^[a-z]", "^src/(fleet/types|models/types)"],
    ),
    forbid("server-does-not-reach-cli", null, "^src/server", "^src/cli"),
    forbid(
      "server-does-not-reach-runtime",
      "runtime/ composes the server; the server sees the runtime only through its own ports (server/ports.ts).",
      "^src/server",
      "^src/runtime",
    ),
    forbid(
      "runtime-uses-server-entry-points-only",
      "runtime/ reaches into server/ only through the app factory and the ports, never its internals.",
      "^src/runtime",
      ["^src/server", "^src/server/(app|ports)\\.ts$"],
    ),
    forbid(
      "cli-goes-through-runtime",
      "The CLI reaches the server only through src/runtime.",
      "^src/cli",
      "^src/server",
    ),
    forbid("runtime-is-only-composed-by-edges", null, "^src/(errors|config|models|backends|cache)", "^src/runtime"),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
