import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import { resolveConfig } from "../../src/config/index.js";
import { ConfigInvalid } from "../../src/errors/index.js";
import { cliSandbox } from "../../testkit/cli.js";

/** The CLI tests' sandbox (empty home, XDG config dir and working directory), with the global file's folder made. */
async function sandbox(t: TestContext) {
  const s = await cliSandbox(t);
  await mkdir(dirname(s.globalFile), { recursive: true });
  return s;
}

test("defaults apply when no source sets anything", async (t) => {
  const s = await sandbox(t);
  const { config, origins } = await s.resolve();
  assert.equal(config.cache.max_cached_models, 5);
  assert.equal(config.cache.eviction_policy, "reload-cost");
  assert.equal(config.models_dir, join(s.home, ".local", "share", "inferno", "models"));
  assert.deepEqual(config.model_stores, ["ollama", "lmstudio", "huggingface"]);
  assert.equal(config.cache.cache_dir, join(s.home, ".cache", "inferno"));
  assert.deepEqual(origins.get("cache.max_cached_models"), { kind: "default", source: "built-in" });
});

test("the default models directory is per user: $XDG_DATA_HOME/inferno/models, else ~/.local/share, whatever the working directory", async (t) => {
  const s = await sandbox(t);
  const elsewhere = join(s.root, "elsewhere");
  await mkdir(elsewhere);
  const fromHere = await s.resolve();
  const fromThere = await resolveConfig({ env: s.env, home: s.home, cwd: elsewhere });
  assert.equal(fromHere.config.models_dir, join(s.home, ".local", "share", "inferno", "models"));
  assert.equal(fromThere.config.models_dir, fromHere.config.models_dir);
  const xdgData = join(s.root, "xdg-data");
  const withXdg = await resolveConfig({ env: { ...s.env, XDG_DATA_HOME: xdgData }, home: s.home, cwd: elsewhere });
  assert.equal(withXdg.config.models_dir, join(xdgData, "inferno", "models"));
  const otherUser = join(s.root, "other-home");
  const other = await resolveConfig({ env: { ...s.env, HOME: otherUser }, home: otherUser, cwd: s.cwd });
  assert.equal(other.config.models_dir, join(otherUser, ".local", "share", "inferno", "models"));
});

test("the default cache directory follows $XDG_CACHE_HOME when it is set, and ~/.cache when it is empty", async (t) => {
  const s = await sandbox(t);
  const xdgCache = join(s.root, "xdg-cache");
  const withXdg = await s.resolve({ XDG_CACHE_HOME: xdgCache });
  assert.equal(withXdg.config.cache.cache_dir, join(xdgCache, "inferno"));
  assert.deepEqual(withXdg.origins.get("cache.cache_dir")?.kind, "default");
  const empty = await s.resolve({ XDG_CACHE_HOME: "" });
  assert.equal(empty.config.cache.cache_dir, join(s.home, ".cache", "inferno"));
  const configured = await s.resolve({ XDG_CACHE_HOME: xdgCache, INFERNO_CACHE__CACHE_DIR: join(s.root, "mine") });
  assert.equal(configured.config.cache.cache_dir, join(s.root, "mine"), "a configured cache_dir wins over the default");
  // The CLI sees the same default: `config get` prints it.
  const shown = await s.run(["config", "get", "cache.cache_dir"], { XDG_CACHE_HOME: xdgCache });
  assert.equal(shown.stdout, `${join(xdgCache, "inferno")}\n`);
});

test("each layer overrides the one below it, and remembers its origin", async (t) => {
  const s = await sandbox(t);
  const explicit = join(s.root, "explicit.toml");
  await writeFile(s.globalFile, "[cache]\nmax_cached_models = 1\nmodel_ttl_seconds = 10\nwarmup_concurrency = 2\n");
  await writeFile(s.userFile, "[cache]\nmax_cached_models = 2\nmodel_ttl_seconds = 20\nrestore_window_hours = 5\n");
  await writeFile(s.localFile, "[cache]\nmax_cached_models = 3\nmodel_ttl_seconds = 30\n[server]\nport = 9000\n");
  await writeFile(explicit, '[cache]\nmax_cached_models = 4\n[server]\nport = 9001\nhost = "0.0.0.0"\n');
  const env = { INFERNO_CACHE__MAX_CACHED_MODELS: "6", INFERNO_SERVER__PORT: "9002" };
  const { config, origins } = await s.resolve(env, {
    configFile: explicit,
    flags: [{ key: "server.port", value: 9003, flag: "--port" }],
  });
  assert.equal(config.cache.warmup_concurrency, 2);
  assert.deepEqual(origins.get("cache.warmup_concurrency"), { kind: "global", source: s.globalFile });
  assert.equal(config.cache.restore_window_hours, 5);
  assert.deepEqual(origins.get("cache.restore_window_hours"), { kind: "user", source: s.userFile });
  assert.equal(config.cache.model_ttl_seconds, 30);
  assert.deepEqual(origins.get("cache.model_ttl_seconds"), { kind: "local", source: s.localFile });
  assert.equal(config.server.host, "0.0.0.0");
  assert.deepEqual(origins.get("server.host"), { kind: "file", source: explicit });
  assert.equal(config.cache.max_cached_models, 6);
  assert.deepEqual(origins.get("cache.max_cached_models"), { kind: "env", source: "INFERNO_CACHE__MAX_CACHED_MODELS" });
  assert.equal(config.server.port, 9003);
  assert.deepEqual(origins.get("server.port"), { kind: "flag", source: "--port" });
});

test("nested environment variables reach section keys; top-level ones need no section", async (t) => {
  const s = await sandbox(t);
  const { config } = await s.resolve({
    INFERNO_MODELS_DIR: "./m",
    INFERNO_CACHE__ALWAYS_WARM: "a.gguf,b.gguf",
    INFERNO_CACHE__PERSIST_CACHE: "false",
    INFERNO_BACKEND__GPU: "false",
  });
  assert.equal(config.models_dir, join(s.cwd, "m"));
  assert.deepEqual(config.cache.always_warm, ["a.gguf", "b.gguf"]);
  assert.equal(config.cache.persist_cache, false);
  assert.equal(config.backend.gpu, "false");
});

test("~ and $VAR expand in paths; relative paths resolve against the file that sets them", async (t) => {
  const s = await sandbox(t);
  await writeFile(s.userFile, 'models_dir = "~/llms"\n[cache]\ncache_dir = "$STATE_ROOT/inferno"\n');
  const { config } = await s.resolve({ STATE_ROOT: "/var/tmp/x" });
  assert.equal(config.models_dir, join(s.home, "llms"));
  assert.equal(config.cache.cache_dir, "/var/tmp/x/inferno");

  await writeFile(s.localFile, 'models_dir = "weights"\n');
  const local = await s.resolve({ STATE_ROOT: "/x" });
  assert.equal(local.config.models_dir, join(s.cwd, "weights"));
});

async function invalidMessage(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => assert.fail("expected ConfigInvalid"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConfigInvalid, `expected ConfigInvalid, got ${String(error)}`);
  assert.equal(error.exitCode, 2);
  return error.message;
}

test("invalid values name the source, the key, the expectation and what was found", async (t) => {
  const s = await sandbox(t);
  const cases: Array<[string, RegExp[]]> = [
    ['[cache]\nmax_cached_models = "five"\n', [/cache\.max_cached_models/, /whole number/, /"five" \(a string\)/]],
    ["[cache]\nmax_cached_models = -2\n", [/cache\.max_cached_models/, /-2 \(a number\)/]],
    ["[cache]\nmax_cached_models = 1.5\n", [/whole number/, /1\.5/]],
    ['[cache]\neviction_policy = "fifo"\n', [/one of: lru, cost-aware/, /"fifo"/]],
    ['[cache]\npersist_cache = "yes"\n', [/true or false/, /"yes" \(a string\)/]],
    ['[cache]\nalways_warm = "a.gguf"\n', [/list of strings/]],
    ["[server]\nport = 70000\n", [/server\.port/, /70000/]],
    ["cache = 3\n", [/expected a table/]],
    [
      "[server]\nkeep_alive_min_seconds = 10\nkeep_alive_max_seconds = 5\n",
      [/keep_alive_min_seconds/, /must not exceed/],
    ],
  ];
  for (const [content, patterns] of cases) {
    await writeFile(s.localFile, content);
    const message = await invalidMessage(s.resolve());
    assert.match(message, new RegExp(s.localFile.replaceAll("/", "\\/")), content);
    for (const pattern of patterns) assert.match(message, pattern, `${content} → ${message}`);
  }
});

test("unknown keys are errors with a did-you-mean suggestion", async (t) => {
  const s = await sandbox(t);
  await writeFile(s.localFile, "[cache]\nmax_cached_model = 3\n");
  assert.match(
    await invalidMessage(s.resolve()),
    /cache\.max_cached_model: unknown key; did you mean cache\.max_cached_models\?/,
  );
  await writeFile(s.localFile, "[cahce]\nmax_cached_models = 3\n");
  assert.match(await invalidMessage(s.resolve()), /did you mean cache\?/);
});

test("bad environment variables and broken files are errors, never a fall-back to defaults", async (t) => {
  const s = await sandbox(t);
  assert.match(
    await invalidMessage(s.resolve({ INFERNO_CACHE__MAX_CACHED_MODELS: "lots" })),
    /environment variable INFERNO_CACHE__MAX_CACHED_MODELS: cache\.max_cached_models: expected a whole number, found "lots"/,
  );
  assert.match(
    await invalidMessage(s.resolve({ INFERNO_CACHE__TTL: "5" })),
    /INFERNO_CACHE__TTL: cache\.ttl: not a configuration key/,
  );
  await writeFile(s.localFile, "[cache\nmax_cached_models = 3\n");
  assert.match(await invalidMessage(s.resolve()), /not valid TOML at line 1/);
  await writeFile(s.localFile, "");
  assert.match(
    await invalidMessage(s.resolve({}, { configFile: join(s.root, "missing.toml") })),
    /missing\.toml: file not found/,
  );
  assert.match(await invalidMessage(s.resolve({}, { configFile: s.home })), /is a directory/);
  await writeFile(s.localFile, 'models_dir = "$NOPE/models"\n');
  assert.match(await invalidMessage(s.resolve()), /\$NOPE is not set/);
});

test('per-model overrides are read from [cache.models."name"] tables', async (t) => {
  const s = await sandbox(t);
  await writeFile(s.localFile, '[cache.models."my_model.gguf"]\nttl_seconds = 600\npinned = true\n');
  const { config, origins } = await s.resolve();
  assert.deepEqual(config.cache.models["my_model.gguf"], { ttl_seconds: 600, pinned: true });
  assert.equal(origins.get('cache.models."my_model.gguf".pinned')?.kind, "local");
  await writeFile(s.localFile, '[cache.models."my_model.gguf"]\nttl = 600\n');
  assert.match(await invalidMessage(s.resolve()), /unknown key/);
  // The fleet's copies of a model: a range, checked whole.
  await writeFile(s.localFile, '[cache.models."my_model.gguf"]\nmin_copies = 2\nmax_copies = 3\n');
  const copies = await s.resolve();
  assert.deepEqual(copies.config.cache.models["my_model.gguf"], { min_copies: 2, max_copies: 3 });
  await writeFile(s.localFile, '[cache.models."my_model.gguf"]\nmin_copies = 3\nmax_copies = 2\n');
  assert.match(await invalidMessage(s.resolve()), /max_copies must not be below min_copies/);
  await writeFile(s.localFile, '[cache.models."my_model.gguf"]\nmax_copies = 0\n');
  assert.match(await invalidMessage(s.resolve()), /max_copies/);
});

test("models_dirs: models_dir is the first entry; left unset, the list's first entry takes its place", async (t) => {
  const s = await sandbox(t);
  const at = (...p: string[]) => join(s.cwd, ...p);
  const load = (text: string, env: Record<string, string> = {}) =>
    writeFile(s.localFile, text).then(() => s.resolve(env));

  const neither = await load("");
  const perUser = join(s.home, ".local", "share", "inferno", "models");
  assert.deepEqual([neither.config.models_dir, neither.config.models_dirs], [perUser, [perUser]]);

  const both = await load('models_dir = "a"\nmodels_dirs = ["b", "a", "~/c"]\n');
  assert.equal(both.config.models_dir, at("a"));
  assert.deepEqual(
    both.config.models_dirs,
    [at("a"), at("b"), join(s.home, "c")],
    "models_dir first, duplicates dropped, ~ expanded",
  );

  const listOnly = await load('models_dirs = ["b", "$EXTRA"]\n', { EXTRA: join(s.root, "extra") });
  assert.equal(listOnly.config.models_dir, at("b"), "the default directory is not searched behind the user's back");
  assert.deepEqual(listOnly.config.models_dirs, [at("b"), join(s.root, "extra")]);
  assert.deepEqual(listOnly.origins.get("models_dir"), { kind: "local", source: s.localFile });

  await writeFile(s.localFile, "");
  const flagWins = await s.resolve(
    { INFERNO_MODELS_DIRS: "x,y" },
    { flags: [{ key: "models_dir", value: "first", flag: "--models-dir" }] },
  );
  assert.deepEqual(flagWins.config.models_dirs, [at("first"), at("x"), at("y")]);

  await assert.rejects(load('models_dirs = "a"\n'), /models_dirs: expected a list of strings .*found "a" \(a string\)/);
  await assert.rejects(load('models_dirs = ["$NOPE/m"]\n'), /models_dirs: environment variable \$NOPE is not set/);
});

test("model_stores: a list of known stores, each once; default all three (read when present)", async (t) => {
  const s = await sandbox(t);
  const load = (text: string, env: Record<string, string> = {}) =>
    writeFile(s.localFile, text).then(() => s.resolve(env));
  assert.deepEqual((await load("")).config.model_stores, ["ollama", "lmstudio", "huggingface"]);
  assert.deepEqual((await load("model_stores = []\n")).config.model_stores, []);
  assert.deepEqual((await load('model_stores = ["ollama", "huggingface"]\n')).config.model_stores, [
    "ollama",
    "huggingface",
  ]);
  assert.deepEqual((await load("", { INFERNO_MODEL_STORES: "lmstudio,ollama" })).config.model_stores, [
    "lmstudio",
    "ollama",
  ]);
  await assert.rejects(
    load('model_stores = ["olama"]\n'),
    (e: unknown) =>
      e instanceof ConfigInvalid &&
      e.message.includes(s.localFile) &&
      /model_stores: expected a list of: ollama, lmstudio, huggingface .*found \["olama"\]/.test(e.message),
  );
  await assert.rejects(load('model_stores = ["ollama", "ollama"]\n'), /model_stores: .*each store may be listed once/);
  await assert.rejects(
    load("", { INFERNO_MODEL_STORES: "ollama,docker" }),
    /INFERNO_MODEL_STORES.*expected a list of: ollama/,
  );
});
