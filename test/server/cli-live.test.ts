/**
 * `inferno cache …` and `inferno ps` against a running server (address from the configuration or `--server`), and the
 * fall-back to the state file once it stops — each saying which it used.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { CacheStats } from "../../src/cache/types.js";
import { runCli } from "../../testkit/cli.js";
import { startTestServer } from "../../testkit/server.js";

it("cache stats/ps/evict/warmup/save/clear use the running server; after it stops, stats reads the file and says so", async (t) => {
  const s = await startTestServer(t, {
    models: { gguf: { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } } },
    // frequency_per_hour and priority are decayed "as of now", so two reads differ by the decay in between. A half-life
    // of ~10^11 years makes that decay over this test smaller than a double's precision: the two reads then agree
    // exactly, and every other field must agree without help.
    config: { cache: { usage_half_life_hours: 1e15 } },
  });
  await s.openai().completions.create({ model: "a.gguf", prompt: "Hi", max_tokens: 2 });
  await s.openai().completions.create({ model: "a.gguf", prompt: "Hi", max_tokens: 2 });
  // The configuration holds port 0 (any free port); the CLI finds the server through [server] port given by the environment.
  const where = { cwd: s.cwd, env: { ...s.env, INFERNO_SERVER__PORT: String(s.server.port) } };

  const served = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
  const live = await runCli(["cache", "stats", "--json"], where);
  assert.equal(live.code, 0, live.stderr);
  assert.match(live.stderr, new RegExp(`using the running server at ${s.url}`));
  assert.deepEqual(JSON.parse(live.stdout), served);

  const table = await runCli(["cache", "stats"], where);
  assert.match(table.stdout, /hits 1, misses 1/);

  // advise through the running server (the runtime replays its own request log on a worker thread): the route's answer.
  const advice = await runCli(["cache", "advise", "--json"], where);
  assert.equal(advice.code, 0, advice.stderr);
  const report = JSON.parse(advice.stdout);
  assert.deepEqual([report.log.requests, report.log.observed.hits, report.log.observed.misses], [2, 1, 1]);
  assert.deepEqual(report, (await s.getJson("/v1/cache/advise")).body);

  const ps = await runCli(["ps", "--server", s.url], { cwd: s.cwd, env: s.env });
  assert.equal(ps.code, 0, ps.stderr);
  const [header, row, ...rest] = ps.stdout.trim().split("\n");
  assert.match(header ?? "", /^NAME\s+SIZE\s+MEMORY\s+PARALLEL\s+PID\s+UNTIL$/);
  // Each spelling's --help names the columns ps prints.
  for (const command of [["ps"], ["cache", "ps"]]) {
    const help = (await runCli([...command, "--help"], where)).stdout.replace(/\s+/g, " ");
    assert.ok(help.includes(`(${(header ?? "").split(/\s+/).join(", ")})`), help);
  }
  assert.match(row ?? "", /^a\.gguf\s+\d[\d.]* [KM]iB\s+\d[\d.]* [KM]iB\s+\d+\s+(\d+|-)\s+in 59 minutes$/);
  assert.deepEqual(rest, []);
  assert.deepEqual(
    (await runCli(["cache", "ps", "--json"], where)).stdout,
    JSON.stringify((await s.getJson<{ data: unknown }>("/v1/cache/models")).body.data, null, 2) + "\n",
  );

  const warm = await runCli(["cache", "warmup", "b.gguf"], where);
  assert.equal(warm.code, 0, warm.stderr);
  assert.equal(warm.stdout, "loaded: b.gguf\n");
  assert.deepEqual(
    s.runtime.cache.loadedModels().map((m) => m.name),
    ["a.gguf", "b.gguf"],
  );

  const evict = await runCli(["cache", "evict", "b.gguf"], where);
  assert.equal(evict.stdout, "unloaded b.gguf\n");
  assert.equal((await runCli(["cache", "evict", "b.gguf"], where)).stdout, "b.gguf was not loaded\n");

  const save = await runCli(["cache", "save", "--json"], where);
  assert.equal(JSON.parse(save.stdout).ok, true);

  const clear = await runCli(["cache", "clear"], where);
  assert.equal(clear.stdout, "unloaded: a.gguf\n");
  assert.deepEqual(s.runtime.cache.loadedModels(), []);

  // A ranked warm-up: the strategy travels to the server, whose ranking decides (the default, hybrid, would load a.gguf).
  const none = await runCli(["cache", "warmup", "--strategy", "none"], where);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout, "nothing loaded\nskipped b.gguf: never used\n");
  assert.deepEqual(s.runtime.cache.loadedModels(), []);
  const byUsage = await runCli(["cache", "warmup", "--strategy", "usage"], where);
  assert.equal(byUsage.code, 0, byUsage.stderr);
  assert.match(byUsage.stderr, new RegExp(`using the running server at ${s.url}`));
  assert.equal(byUsage.stdout, "loaded: a.gguf\nskipped b.gguf: never used\n");
  assert.deepEqual(
    s.runtime.cache.loadedModels().map((m) => m.name),
    ["a.gguf"],
  );
  assert.equal(
    (await s.getJson<CacheStats>("/v1/cache/stats")).body.warmups,
    2,
    "b.gguf by name, then a.gguf by usage",
  );

  const unknown = await runCli(["cache", "evict", "nope.gguf"], where);
  assert.equal(unknown.code, 2, "the server's model_not_found maps back to a usage error");
  assert.match(unknown.stderr, /nope\.gguf/);

  const before = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
  await s.stop();
  const offline = await runCli(["cache", "stats", "--json"], where);
  assert.equal(offline.code, 0, offline.stderr);
  assert.match(
    offline.stderr,
    new RegExp(`no server running at ${s.url}; read ${before.state_file?.replace(/[.]/g, "\\.")}`),
  );
  const fromFile = JSON.parse(offline.stdout) as CacheStats;
  assert.equal(fromFile.state_file, before.state_file);
  assert.deepEqual([fromFile.hits, fromFile.misses, fromFile.loads], [before.hits, before.misses, before.loads]);
  assert.equal(fromFile.models_loaded, 0);
  assert.deepEqual(
    fromFile.models.map((m) => [m.name, m.requests]),
    before.models.map((m) => [m.name, m.requests]),
  );

  const psOffline = await runCli(["ps"], where);
  assert.equal(psOffline.code, 0);
  assert.match(psOffline.stderr, /no server running at .*: no model is loaded/);
});

it("the live CLI sends the configured API key, and maps the server's refusals to typed errors and exit codes", async (t) => {
  const s = await startTestServer(t, {
    config: { server: { api_key: "sesame" }, cache: { always_warm: ["tiny.gguf"], persist_cache: false } },
  });
  await s.server.app.warmedUp;
  const where = { cwd: s.cwd, env: { ...s.env, INFERNO_SERVER__PORT: String(s.server.port) } };

  const pinned = await runCli(["cache", "clear", "--model", "tiny.gguf"], where);
  assert.equal(pinned.code, 2, pinned.stderr);
  assert.match(pinned.stderr, /pinned/);

  const forced = await runCli(["cache", "clear", "--model", "tiny.gguf", "--force"], where);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(forced.stdout, "unloaded: tiny.gguf\n");

  const wrongKey = await runCli(["cache", "stats"], {
    ...where,
    env: { ...where.env, INFERNO_SERVER__API_KEY: "wrong" },
  });
  assert.equal(wrongKey.code, 1);
  assert.match(wrongKey.stderr, /error: invalid API key/);
});
