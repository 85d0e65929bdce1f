/**
 * Start-up cost: `--version`, every `--help` and `config path` answer without importing the configuration schema (zod),
 * a model runtime, the server or any command's work (`src/cli/actions/`). Shown by the modules the real process loads;
 * the time itself is `npm run bench -- --only startup` (CLI start-up against `node -e 0`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { cliSandbox } from "../../testkit/cli.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");
const MODULE_LOG = fileURLToPath(new URL("../../testkit/module-log.mjs", import.meta.url));

/** What these commands must not load: each costs more start-up than the whole command is allowed. */
const HEAVY =
  /\/node_modules\/(zod|node-llama-cpp|onnxruntime-node|hono|pino|smol-toml)\/|\/src\/(cli\/actions\/(?!config-path)|config\/(schema|load|keys)\.ts|runtime\/|backends\/(?!types\.ts)|models\/(?!(demo|types)\.ts))/;

async function modulesLoadedBy(t: Parameters<typeof cliSandbox>[0], args: string[]) {
  const s = await cliSandbox(t);
  const log = join(s.root, "modules.log");
  const result = spawnSync(process.execPath, ["--import", TSX, "--import", MODULE_LOG, MAIN, ...args], {
    cwd: s.cwd,
    env: { ...s.env, MODULE_LOG_FILE: log },
    encoding: "utf8",
  });
  const modules = (await readFile(log, "utf8")).split("\n").filter((line) => line !== "");
  return { ...result, modules };
}

const CHEAP: string[][] = [
  ["--version"],
  ["--help"],
  ["config", "path"],
  ...["serve", "run", "models list", "cache warmup", "config set"].map((c) => [...c.split(" "), "--help"]),
];

for (const args of CHEAP) {
  test(`inferno ${args.join(" ")} loads no schema, runtime, server or command work`, async (t) => {
    const { status, stdout, stderr, modules } = await modulesLoadedBy(t, args);
    assert.equal(status, 0, stderr);
    assert.ok(stdout.length > 0, "it answered");
    assert.ok(
      modules.some((m) => m.endsWith("/src/cli/main.ts")),
      `the log sees the CLI's own modules:\n${modules.join("\n")}`,
    );
    const heavy = modules.filter((m) => HEAVY.test(m));
    assert.deepEqual(heavy, [], `inferno ${args.join(" ")} loaded these`);
  });
}

test("the module log sees what a command that needs the configuration loads (the check above can fail)", async (t) => {
  const { status, stderr, modules } = await modulesLoadedBy(t, ["config", "get", "server.port"]);
  assert.equal(status, 0, stderr);
  assert.ok(
    modules.some((m) => /\/node_modules\/zod\//.test(m)),
    "config get validates the configuration with the schema",
  );
  assert.ok(modules.some((m) => m.endsWith("/src/cli/actions/config.ts")));
});

test("help built without the schema still describes each configuration flag from it", async (t) => {
  const s = await cliSandbox(t);
  const { findKey } = await import("../../src/config/keys.js");
  const help = await s.run(["serve", "--help"]);
  assert.equal(help.code, 0, help.stderr);
  const flat = help.stdout.replace(/\s+/g, " ");
  for (const key of ["backend.threads", "server.port", "cache.max_cached_models"]) {
    const description = findKey(key.split("."))?.description ?? "";
    assert.ok(description.length > 0);
    assert.ok(
      flat.includes(`${description.replace(/\s+/g, " ")} (config: ${key})`),
      `serve --help describes ${key}:\n${help.stdout}`,
    );
  }
  const warmup = await s.run(["cache", "warmup", "--help"]);
  assert.match(warmup.stdout.replace(/\s+/g, " "), /choices: "usage", "recent", "priority", "hybrid", "none"/);
});
