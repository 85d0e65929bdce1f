import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { parse as parseToml } from "smol-toml";
import { packageVersion } from "../../src/cli/program.js";
import { cliSandbox } from "../../testkit/cli.js";

const COMMENTED = `# Inferno settings for this project
models_dir = "./models"   # relative to this file

[cache]
# keep usage statistics between runs
persist_cache = false     # off while testing
max_cached_models = 3

[server]
port = 9000 # the usual port
`;

test("config set changes only the value it sets; every other byte of a commented file stays", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, COMMENTED);
  const result = await s.run(["config", "set", "cache.persist_cache", "true"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    await readFile(s.localFile, "utf8"),
    COMMENTED.replace("persist_cache = false     # off", "persist_cache = true     # off"),
  );
  assert.match(result.stderr, /Set cache\.persist_cache = true in .*\.inferno\.toml/);
  assert.ok(
    result.stderr.includes(
      `(the local file: it applies when Inferno runs in ${s.cwd}; --global sets it for every directory)`,
    ),
    result.stderr,
  );
  const global = await s.run(["config", "set", "cache.persist_cache", "true", "--global"]);
  assert.doesNotMatch(global.stderr, /the local file/);
});

test("config set of a new key in an existing section appends it there and leaves the rest alone", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, COMMENTED);
  assert.equal((await s.run(["config", "set", "cache.model_ttl_seconds", "60"])).code, 0);
  assert.equal(
    await readFile(s.localFile, "utf8"),
    COMMENTED.replace("max_cached_models = 3\n", "max_cached_models = 3\nmodel_ttl_seconds = 60\n"),
  );
});

test("config set of an ill-typed or out-of-range value exits 2 and leaves the file byte for byte", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, COMMENTED);
  const cases: Array<[string, string, RegExp]> = [
    ["cache.max_cached_models", "many", /cache\.max_cached_models: expected a whole number, found "many"/],
    // A number that fails a range check is shown as the number it was read as, not quoted like a string.
    ["cache.max_cached_models", "0", /expected a whole number \(>0\), found 0$/m],
    [
      "server.port",
      "99999",
      /^error: Invalid value for server\.port: expected a whole number \(<=65535\), found 99999\n$/,
    ],
    ["server.port", "70_000", /server\.port: expected a whole number \(<=65535\), found 70000$/m],
    ["server.port", "9000.5", /server\.port: expected a whole number, found "9000\.5"$/m],
    ["cache.persist_cache", "maybe", /expected true or false, found "maybe"/],
    ["cache.eviction_policy", "fifo", /expected one of: lru, cost-aware, reload-cost, found "fifo"/],
    ["server.port", "70000", /server\.port: expected a whole number/],
  ];
  for (const [key, value, message] of cases) {
    const result = await s.run(["config", "set", key, value]);
    assert.equal(result.code, 2, `${key}=${value}`);
    assert.match(result.stderr, message);
    assert.equal(await readFile(s.localFile, "utf8"), COMMENTED, `${key}=${value} must not touch the file`);
  }
});

test("config set validates the whole resulting configuration, including rules that span keys", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, "[server]\nkeep_alive_max_seconds = 5\n");
  const result = await s.run(["config", "set", "server.keep_alive_min_seconds", "10"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /keep_alive_min_seconds: must not exceed server\.keep_alive_max_seconds \(5\), found 10/);
  assert.equal(await readFile(s.localFile, "utf8"), "[server]\nkeep_alive_max_seconds = 5\n");
});

test("config set refuses a change while another layer is broken, naming that layer", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.userFile, "[cache]\nmax_cached_models = -1\n");
  const result = await s.run(["config", "set", "server.port", "9000"]);
  assert.equal(result.code, 2);
  assert.ok(result.stderr.includes(s.userFile), result.stderr);
  await assert.rejects(readFile(s.localFile), { code: "ENOENT" });
});

test("config set of an unknown key exits 2 with a did-you-mean and writes nothing", async (t) => {
  const s = await cliSandbox(t);
  const cases: Array<[string, string]> = [
    ["cache.max_cache_models", "cache.max_cached_models"],
    ["max_cached_models", "cache.max_cached_models"],
    ['cache.models."a.gguf".pined', 'cache.models."a.gguf".pinned'],
  ];
  for (const [key, suggestion] of cases) {
    const result = await s.run(["config", "set", key, "3"]);
    assert.equal(result.code, 2, key);
    assert.ok(result.stderr.includes(`Unknown configuration key ${key}; did you mean ${suggestion}?`), result.stderr);
  }
  const section = await s.run(["config", "set", "cache", "3"]);
  assert.equal(section.code, 2);
  assert.match(
    section.stderr,
    /cache is a table, not a single setting: name one of its keys, e\.g\. cache\.persist_cache/,
  );
  await assert.rejects(readFile(s.localFile), { code: "ENOENT" });
});

test("the seed commands create the local file and keep ~ as typed; get expands it with HOME", async (t) => {
  const s = await cliSandbox(t);
  assert.equal((await s.run(["config", "set", "cache.persist_cache", "true"])).code, 0);
  assert.equal(await readFile(s.localFile, "utf8"), "[cache]\npersist_cache = true\n");
  assert.equal((await s.run(["config", "set", "cache.cache_dir", "~/.cache/inferno"])).code, 0);
  assert.equal(await readFile(s.localFile, "utf8"), '[cache]\npersist_cache = true\ncache_dir = "~/.cache/inferno"\n');
  const get = await s.run(["config", "get", "cache.cache_dir"]);
  assert.equal(get.code, 0);
  assert.equal(get.stdout, `${join(s.home, ".cache", "inferno")}\n`);
});

test("config set --global writes the global file, creating its directory", async (t) => {
  const s = await cliSandbox(t);
  const result = await s.run(["config", "set", "backend.threads", "2", "--global"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await readFile(s.globalFile, "utf8"), "[backend]\nthreads = 2\n");
  await assert.rejects(readFile(s.localFile), { code: "ENOENT" });
  assert.equal((await s.run(["config", "get", "backend.threads"])).stdout, "2\n");
});

test("config set takes lists as a,b or as a TOML array", async (t) => {
  const s = await cliSandbox(t);
  assert.equal((await s.run(["config", "set", "cache.always_warm", "a.gguf, b.gguf"])).code, 0);
  assert.deepEqual(JSON.parse((await s.run(["config", "get", "cache.always_warm", "--json"])).stdout), [
    "a.gguf",
    "b.gguf",
  ]);
  assert.equal((await s.run(["config", "set", "cache.always_warm", '["c.onnx"]'])).code, 0);
  assert.equal(await readFile(s.localFile, "utf8"), '[cache]\nalways_warm = [ "c.onnx" ]\n');
  assert.equal((await s.run(["config", "get", "cache.always_warm"])).stdout, '[ "c.onnx" ]\n');
});

test("per-model keys with quoted names can be set, read and unset", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, COMMENTED);
  assert.equal((await s.run(["config", "set", 'cache.models."my_model.gguf".pinned', "true"])).code, 0);
  assert.equal((await s.run(["config", "set", 'cache.models."my_model.gguf".ttl_seconds', "600"])).code, 0);
  const text = await readFile(s.localFile, "utf8");
  assert.ok(text.startsWith(COMMENTED), "the existing text is kept as the file's start");
  assert.match(text, /\[cache\.models\."my_model\.gguf"\]\npinned = true\nttl_seconds = 600\n$/);
  assert.equal((await s.run(["config", "get", 'cache.models."my_model.gguf".pinned'])).stdout, "true\n");
  assert.deepEqual(JSON.parse((await s.run(["config", "get", 'cache.models."my_model.gguf"', "--json"])).stdout), {
    pinned: true,
    ttl_seconds: 600,
  });
  assert.equal((await s.run(["config", "unset", 'cache.models."my_model.gguf".ttl_seconds'])).code, 0);
  assert.equal((await s.run(["config", "get", 'cache.models."my_model.gguf".ttl_seconds', "--json"])).stdout, "null\n");
});

test("config unset removes the key, keeps every other line, and is a no-op with a message when absent", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, COMMENTED);
  const result = await s.run(["config", "unset", "cache.max_cached_models"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await readFile(s.localFile, "utf8"), COMMENTED.replace("max_cached_models = 3\n", ""));
  assert.equal((await s.run(["config", "get", "cache.max_cached_models"])).stdout, "5\n");

  const again = await s.run(["config", "unset", "cache.max_cached_models"]);
  assert.equal(again.code, 0);
  assert.match(again.stderr, /cache\.max_cached_models is not set in .*; nothing to remove/);
  assert.equal(await readFile(s.localFile, "utf8"), COMMENTED.replace("max_cached_models = 3\n", ""));

  const unknown = await s.run(["config", "unset", "cache.max_cached_modles"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /did you mean cache\.max_cached_models\?/);
});

test("config unset --global edits the global file only", async (t) => {
  const s = await cliSandbox(t);
  await mkdir(join(s.globalFile, ".."), { recursive: true });
  await writeFile(s.globalFile, '# global\n[server]\nport = 7000\nhost = "0.0.0.0"\n');
  await writeFile(s.localFile, "[server]\nport = 7001\n");
  assert.equal((await s.run(["config", "unset", "server.port", "--global"])).code, 0);
  assert.equal(await readFile(s.globalFile, "utf8"), '# global\n[server]\nhost = "0.0.0.0"\n');
  assert.equal(await readFile(s.localFile, "utf8"), "[server]\nport = 7001\n");
});

test("config set warns when a higher-precedence source still decides the value", async (t) => {
  const s = await cliSandbox(t);
  const result = await s.run(["config", "set", "server.port", "9000"], { INFERNO_SERVER__PORT: "9100" });
  assert.equal(result.code, 0);
  assert.match(result.stderr, /server\.port is 9100 in effect: env INFERNO_SERVER__PORT takes precedence/);
});

test("config show --origin names every kind of source", async (t) => {
  const s = await cliSandbox(t);
  const explicit = join(s.root, "explicit.toml");
  await mkdir(join(s.globalFile, ".."), { recursive: true });
  await writeFile(s.globalFile, "[cache]\nwarmup_concurrency = 2\n");
  await writeFile(s.userFile, "[cache]\nrestore_window_hours = 5\n");
  await writeFile(s.localFile, "[cache]\nmodel_ttl_seconds = 30\n");
  await writeFile(explicit, '[server]\nhost = "0.0.0.0"\n');
  const result = await s.run(["--config", explicit, "config", "show", "--origin", "--port", "9003"], {
    INFERNO_CACHE__MAX_CACHED_MODELS: "6",
  });
  assert.equal(result.code, 0, result.stderr);
  const line = (key: string) => result.stdout.split("\n").find((l) => l.startsWith(`${key} =`)) ?? "";
  assert.match(line("eviction_policy"), /= "reload-cost" +# default$/);
  assert.ok(line("warmup_concurrency").endsWith(`# global file ${s.globalFile}`), line("warmup_concurrency"));
  assert.ok(line("restore_window_hours").endsWith(`# user file ${s.userFile}`));
  assert.ok(line("model_ttl_seconds").endsWith(`# local file ${s.localFile}`));
  assert.ok(line("host").endsWith(`# --config file ${explicit}`));
  assert.match(line("max_cached_models"), /= 6 +# env INFERNO_CACHE__MAX_CACHED_MODELS$/);
  assert.match(line("port"), /= 9003 +# flag --port$/);

  const json = await s.run(["--config", explicit, "config", "show", "--origin", "--json"]);
  const parsed = JSON.parse(json.stdout) as { config: { server: { host: string } }; origins: Record<string, unknown> };
  assert.equal(parsed.config.server.host, "0.0.0.0");
  assert.deepEqual(parsed.origins["server.host"], { kind: "file", source: explicit });
});

test("config show prints the effective configuration as TOML that reads back, or as JSON", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, '[cache.models."a.gguf"]\npinned = true\n');
  const toml = await s.run(["config", "show"]);
  assert.equal(toml.code, 0);
  assert.match(toml.stdout, /^\[cache\.models\."a\.gguf"\]\npinned = true$/m);
  assert.doesNotMatch(toml.stdout, /#/);
  const { parse } = await import("smol-toml");
  const json = JSON.parse((await s.run(["config", "show", "--json"])).stdout) as unknown;
  assert.deepEqual(JSON.parse(JSON.stringify(parse(toml.stdout))), json);
});

test("config show and config get of a section print secrets masked; config get of the key prints it", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(
    s.localFile,
    '[server]\napi_key = "sk-local-1"\n[fleet]\nredis_url = "redis://inferno:pw-2@127.0.0.1:6390/0"\nsecret = "fleet-3"\n',
  );
  const secrets = /sk-local-1|pw-2|fleet-3/;
  for (const args of [
    ["config", "show"],
    ["config", "show", "--json"],
    ["config", "show", "--origin"],
    ["config", "get", "fleet"],
    ["config", "get", "server", "--json"],
  ]) {
    const result = await s.run(args);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, secrets, args.join(" "));
  }
  const shown = (await s.run(["config", "show"])).stdout;
  assert.match(shown, /^api_key = "\*\*\*"$/m);
  assert.match(shown, /^secret = "\*\*\*"$/m);
  assert.match(shown, /^redis_url = "redis:\/\/inferno:\*\*\*@127\.0\.0\.1:6390\/0"$/m);
  // Unset secrets stay as they are (an empty key is not a secret to hide).
  const bare = await cliSandbox(t);
  assert.match((await bare.run(["config", "show"])).stdout, /^api_key = ""$/m);
  // One key named alone: as it is, for scripts.
  assert.equal((await s.run(["config", "get", "server.api_key"])).stdout, "sk-local-1\n");
  assert.equal((await s.run(["config", "get", "fleet.redis_url"])).stdout, "redis://inferno:pw-2@127.0.0.1:6390/0\n");
});

test("config get prints values, sections, JSON, and rejects unknown keys", async (t) => {
  const s = await cliSandbox(t);
  assert.equal((await s.run(["config", "get", "server.port"])).stdout, "8080\n");
  assert.equal((await s.run(["config", "get", "server.host", "--json"])).stdout, '"127.0.0.1"\n');
  assert.equal((await s.run(["config", "get", "server.port", "--port", "1234"])).stdout, "1234\n");
  assert.match((await s.run(["config", "get", "server"])).stdout, /^\[server\]\nhost = "127\.0\.0\.1"\nport = 8080\n/);
  const unknown = await s.run(["config", "get", "server.prot"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown configuration key server\.prot; did you mean server\.port\?/);
  const badKey = await s.run(["config", "get", 'cache.models."a.gguf']);
  assert.equal(badKey.code, 2);
  assert.match(badKey.stderr, /unterminated quote/);
});

test("config path lists the files in precedence order, which exist, and which file set writes", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, "");
  const result = await s.run(["config", "path"]);
  assert.equal(result.code, 0);
  const rows = result.stdout.trim().split("\n").slice(2);
  assert.deepEqual(
    rows.map((r) => r.split(/ {2,}/)),
    [
      ["global", s.globalFile, "no", "config set --global"],
      ["user", s.userFile, "no"],
      ["local", s.localFile, "yes", "config set"],
    ],
  );
  const json = JSON.parse((await s.run(["--config", "x.toml", "config", "path", "--json"])).stdout) as {
    files: Array<{ kind: string; path: string; exists: boolean; written_by: string | null }>;
  };
  assert.deepEqual(
    json.files.map((f) => [f.kind, f.path, f.exists, f.written_by]),
    [
      ["global", s.globalFile, false, "config set --global"],
      ["user", s.userFile, false, null],
      ["local", s.localFile, true, "config set"],
      ["file", join(s.cwd, "x.toml"), false, null],
    ],
  );
});

test("config init writes a commented starter that validates, and never overwrites", async (t) => {
  const s = await cliSandbox(t);
  const init = await s.run(["config", "init"]);
  assert.equal(init.code, 0, init.stderr);
  const starter = await readFile(s.localFile, "utf8");
  assert.match(starter, /^# max_cached_models = 5$/m);
  assert.match(starter, /^# \[cache\.models\."my_model\.gguf"\]$/m);
  assert.ok(starter.includes(`# cache_dir = "${join(s.home, ".cache", "inferno")}"`));
  assert.ok(starter.includes(`# models_dir = "${s.modelsDir}"`));
  // Every line to uncomment is TOML as it stands, or `…` for a key without a default (never `key = ` and nothing).
  for (const line of starter.split("\n").filter((l) => /^# [\w."]+ = /.test(l))) {
    const assignment = line.slice(2);
    if (assignment.endsWith(" = …")) continue;
    assert.doesNotThrow(() => parseToml(assignment), line);
  }

  const validate = await s.run(["config", "validate"]);
  assert.equal(validate.code, 0, validate.stderr);
  assert.equal(validate.stdout, `OK\n  local file ${s.localFile}\n`);

  const again = await s.run(["config", "init"]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists; not overwriting it/);
  assert.equal(await readFile(s.localFile, "utf8"), starter);

  // `set` on the starter fills in under its section header and keeps the comments.
  assert.equal((await s.run(["config", "set", "server.port", "9000"])).code, 0);
  const edited = await readFile(s.localFile, "utf8");
  // In the [server] table: no table header line between them (comments may hold brackets).
  assert.match(edited, /^\[server\]$(?:(?!^\[)[\s\S])*?^port = 9000$/m);
  assert.equal(edited.replace("\nport = 9000\n", ""), starter);
  assert.equal((await s.run(["config", "get", "server.port"])).stdout, "9000\n");
});

test("config init --global creates the global file and its directory", async (t) => {
  const s = await cliSandbox(t);
  assert.equal((await s.run(["config", "init", "--global"])).code, 0);
  assert.match(await readFile(s.globalFile, "utf8"), /^# \[cache\]|^\[cache\]$/m);
  const validate = await s.run(["config", "validate", "--json"]);
  assert.deepEqual(JSON.parse(validate.stdout), {
    ok: true,
    files: [{ kind: "global", path: s.globalFile }],
    environment: [],
  });
});

test("config validate reports a broken layer with exit 2 and names it", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, '[cache]\nmax_cached_models = "lots"\n');
  const result = await s.run(["config", "validate"]);
  assert.equal(result.code, 2);
  assert.ok(result.stderr.includes(`Invalid configuration in ${s.localFile}: cache.max_cached_models`), result.stderr);
  assert.equal(result.stdout, "");
  await rm(s.localFile);
  const env = await s.run(["config", "validate"], { INFERNO_SERVER__PORT: "x" });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /environment variable INFERNO_SERVER__PORT/);
});

test("the CLI maps usage errors to exit 2 and --version/--help to 0", async (t) => {
  const s = await cliSandbox(t);
  const unknownFlag = await s.run(["config", "show", "--bogus"]);
  assert.equal(unknownFlag.code, 2);
  assert.match(unknownFlag.stderr, /unknown option '--bogus'/);
  assert.equal((await s.run(["config", "set", "server.port"])).code, 2);
  const version = await s.run(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(version.stdout, `${packageVersion()}\n`);
  for (const args of [["--help"], ["config", "--help"], ["config", "set", "--help"]]) {
    const help = await s.run(args);
    assert.equal(help.code, 0, args.join(" "));
    assert.match(help.stdout, /^Usage: inferno/);
  }
});

test("the real entry point runs end to end in its own process", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, "[server]\nport = 9123\n");
  const root = new URL("../..", import.meta.url).pathname;
  // tsx is resolved from here: the child runs in the sandbox, which has no node_modules of its own.
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), join(root, "src/cli/main.ts"), "config", "get", "server.port"],
    { cwd: s.cwd, env: s.env },
  );
  assert.equal(stdout, "9123\n");
});

test("more pins than max_cached_models: config validate exits 2 naming both keys", async (t) => {
  const s = await cliSandbox(t);
  await writeFile(s.localFile, '[cache]\nmax_cached_models = 1\nalways_warm = ["a.gguf", "b.gguf"]\n');
  const result = await s.run(["config", "validate"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /cache\.always_warm/);
  assert.match(result.stderr, /cache\.max_cached_models is 1/);
});
