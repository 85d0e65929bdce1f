/**
 * The layering of STYLE.md, enforced (`npm run lint`):
 * errors, units <- fs <- config <- models <- backends <- cache <- runtime <- server / cli, imports pointing one way.
 */
const upper = "^src/(cache|runtime|server|cli|index)";
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      from: {},
      to: { circular: true, dependencyTypesNot: ["type-only"] },
    },
    {
      name: "errors-import-nothing",
      comment: "src/errors is the bottom layer: every folder may import it, it imports no other folder.",
      severity: "error",
      from: { path: "^src/errors" },
      to: { path: "^src/", pathNot: "^src/errors" },
    },
    {
      name: "units-import-nothing",
      comment:
        "src/units.ts (byte units and their formatter) is plain arithmetic every layer and the status page share.",
      severity: "error",
      from: { path: "^src/units\\.ts$" },
      to: { path: "^src/" },
    },
    {
      name: "fs-imports-only-errors",
      comment: "src/fs holds the file-system primitives every layer shares (the atomic write): it sees only errors.",
      severity: "error",
      from: { path: "^src/fs" },
      to: { path: "^src/", pathNot: "^src/(fs|errors)" },
    },
    {
      name: "config-below-models",
      severity: "error",
      from: { path: "^src/config" },
      to: { path: "^src/(models|backends|cache|runtime|server|cli)" },
    },
    {
      name: "models-below-backends",
      severity: "error",
      from: { path: "^src/models" },
      to: { path: "^src/(backends|cache|runtime|server|cli)" },
    },
    {
      name: "backends-below-cache",
      severity: "error",
      from: { path: "^src/backends" },
      to: { path: upper },
    },
    {
      name: "cache-core-does-no-io",
      comment:
        "The cache knows the Backend and snapshot-store interfaces (and the pure name matcher), never the filesystem, a runtime or the server.",
      severity: "error",
      from: { path: "^src/cache", pathNot: "^src/cache/persistence/(file-store|state-worker|lock|zstd)" },
      to: {
        path: "^(node:)?(fs|fs/promises|child_process|net|http)$|node-llama-cpp|onnxruntime-node|^src/(fs|runtime|server|cli)|^src/backends/(?!types)|^src/models/(?!types|name-index)",
      },
    },
    {
      name: "policy-is-pure",
      comment: "Policy functions see only plain data: no classes from elsewhere, no I/O, no clock.",
      severity: "error",
      from: { path: "^src/cache/policy" },
      to: { path: "^src/", pathNot: "^src/(cache/policy|cache/types|models/types|config/schema|errors|units\\.ts$)" },
    },
    {
      name: "server-does-not-reach-cli",
      severity: "error",
      from: { path: "^src/server" },
      to: { path: "^src/cli" },
    },
    {
      name: "server-does-not-reach-runtime",
      comment:
        "runtime/ composes the server; the server sees the runtime only through its own ports (server/ports.ts).",
      severity: "error",
      from: { path: "^src/server" },
      to: { path: "^src/runtime" },
    },
    {
      name: "runtime-uses-server-entry-points-only",
      comment: "runtime/ reaches into server/ only through the app factory and the ports, never its internals.",
      severity: "error",
      from: { path: "^src/runtime" },
      to: { path: "^src/server", pathNot: "^src/server/(app|ports)\\.ts$" },
    },
    {
      name: "cli-goes-through-runtime",
      comment: "The CLI reaches the server only through src/runtime.",
      severity: "error",
      from: { path: "^src/cli" },
      to: { path: "^src/server" },
    },
    {
      name: "runtime-is-only-composed-by-edges",
      severity: "error",
      from: { path: "^src/(errors|config|models|backends|cache)" },
      to: { path: "^src/runtime" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
