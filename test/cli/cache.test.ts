/** `inferno cache …` in file mode (no server): on a real state file and a real models directory. */
import { replacingDelta } from "../../src/cache/persistence/merge.js";
import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { decompressState, FileStateStore } from "../../src/cache/persistence/file-store.js";
import type { CacheState, PersistedModel } from "../../src/cache/persistence/types.js";
import { zstdCompress, zstdDecompress } from "../../src/cache/persistence/zstd.js";
import { EVICTION_REASONS } from "../../src/cache/types.js";
import { persistedLogOf, requestsOf } from "../../src/cache/persistence/merge.js";
import { cliSandbox } from "../../testkit/cli.js";
import { tinyModelsDir } from "../../testkit/models.js";
import { validDocument } from "../../testkit/out-of-range.js";
import { spawnInferno } from "../../testkit/process.js";

const HOUR = 3600_000;

async function setup(t: TestContext) {
  const sandbox = await cliSandbox(t);
  const { dir } = await tinyModelsDir(t, { gguf: { "a.gguf": {}, "b.gguf": {}, "c.gguf": {} } });
  const cacheDir = join(sandbox.root, "cache");
  const env = { INFERNO_MODELS_DIR: dir, INFERNO_CACHE__CACHE_DIR: cacheDir, INFERNO_SERVER__PORT: "1" };
  const now = Date.now();
  const entry = async (name: string, requests: number, hoursAgo: number): Promise<PersistedModel> => {
    const info = await stat(join(dir, name));
    const at = now - hoursAgo * HOUR;
    return {
      key: join(dir, name),
      name,
      format: "gguf",
      fingerprint: { size: info.size, mtimeMs: info.mtimeMs },
      metadata: { memory_bytes: 4 * 1024 * 1024 },
      usage: {
        requests,
        hits: requests - 1,
        misses: 1,
        loads: 1,
        last_used_at: at,
        frequency: { value: requests, at },
        load_ms_total: 120,
        load_ms_samples: [120],
      },
      priority: 1,
      pinned: false,
    };
  };
  const evictions = Object.fromEntries(EVICTION_REASONS.map((r) => [r, 0])) as CacheState["counters"]["evictions"];
  const state: CacheState = {
    saved_at: now - HOUR,
    counters: {
      hits: 12,
      misses: 3,
      loads: 3,
      load_failures: 0,
      evictions: { ...evictions, ttl: 2 },
      warmups: 1,
      unknown_model_requests: 0,
      coalesced: 0,
    },
    models: [await entry("a.gguf", 10, 1), await entry("b.gguf", 4, 0.1), await entry("c.gguf", 1, 2)],
    // a b a c a b, ten minutes apart over the last hour: each model's first request missed.
    request_log: persistedLogOf(
      ["a", "b", "a", "c", "a", "b"].map((m, i, all) => ({
        key: join(dir, `${m}.gguf`),
        at: now - HOUR + i * 600_000,
        outcome: all.indexOf(m) === i ? "miss" : "hit",
        loadMs: all.indexOf(m) === i ? 120 : null,
      })),
    ),
  };
  const store = new FileStateStore(cacheDir);
  await store.save(replacingDelta(state));
  const run = (args: string[], extra: Record<string, string> = {}) => sandbox.run(args, { ...env, ...extra });
  return { run, store, dir, cacheDir, env, sandbox };
}

describe("inferno cache (file mode)", () => {
  it("stats --json prints SPEC's fields from the state file and says it read the file", async (t) => {
    const { run, store } = await setup(t);
    const result = await run(["cache", "stats", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`no server running at http://127\\.0\\.0\\.1:1; read ${store.path.replace(/[.]/g, "\\.")}`),
    );
    const stats = JSON.parse(result.stdout);
    assert.deepEqual(
      [stats.hits, stats.misses, stats.hit_rate, stats.models_loaded, stats.state_file],
      [12, 3, 0.8, 0, store.path],
    );
    assert.equal(stats.evictions.ttl, 2);
    assert.deepEqual(
      stats.models.map((m: { name: string; requests: number }) => [m.name, m.requests]),
      [
        ["a.gguf", 10],
        ["b.gguf", 4],
        ["c.gguf", 1],
      ],
    );
    assert.equal(stats.models[0].avg_load_ms, 120);
  });

  it("stats prints a readable table; with no state file, zeros", async (t) => {
    const { run, cacheDir } = await setup(t);
    const table = await run(["cache", "stats"]);
    assert.match(table.stdout, /hits 12, misses 3, hit rate 80\.0%/);
    assert.match(table.stdout, /model\s+loaded\s+pinned\s+requests/);
    assert.match(table.stdout, /a\.gguf\s+no\s+no\s+10/);
    const empty = await run(["cache", "stats", "--json"], { INFERNO_CACHE__CACHE_DIR: join(cacheDir, "not-there") });
    assert.equal(JSON.parse(empty.stdout).hits, 0);
  });

  it("inspect prints the decoded state", async (t) => {
    const { run, dir } = await setup(t);
    const json = await run(["cache", "inspect", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const decoded = JSON.parse(json.stdout);
    assert.equal(decoded.state.models[0].key, join(dir, "a.gguf"));
    const human = await run(["cache", "inspect"]);
    assert.match(human.stdout, /counters: hits 12, misses 3/);
    assert.match(human.stdout, /^request log: 6 requests, \S+ to \S+ \(inferno cache advise replays them\)$/m);
  });

  it("clear keeps pinned entries unless --force, refuses a pinned --model, and --stats resets counters", async (t) => {
    const { run, store } = await setup(t);
    const pin = { INFERNO_CACHE__ALWAYS_WARM: "a.gguf" };
    const refused = await run(["cache", "clear", "--model", "a.gguf"], pin);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /a\.gguf is pinned .* use --force/);
    const cleared = await run(["cache", "clear"], pin);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.match(cleared.stdout, /removed: b\.gguf, c\.gguf/);
    assert.deepEqual(
      (await store.read())?.state.models.map((m) => m.name),
      ["a.gguf"],
    );
    assert.equal((await store.read())?.state.counters.hits, 12);
    const forced = await run(["cache", "clear", "--force", "--stats"], pin);
    assert.match(forced.stdout, /removed: a\.gguf\nstatistics reset/);
    const after = (await store.read())?.state;
    assert.deepEqual([after?.models.length, after?.counters.hits, after?.counters.evictions.ttl], [0, 0, 0]);
    assert.equal(after?.request_log, undefined, "resetting the statistics empties the request log");
  });

  it("advise replays the saved request log: a table with the current setting marked and one recommended change, or --json", async (t) => {
    const { run, cacheDir } = await setup(t);
    const json = await run(["cache", "advise", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    assert.match(json.stderr, /no server running at .*; read /);
    const report = JSON.parse(json.stdout);
    assert.deepEqual([report.log.requests, report.log.models, report.log.span_seconds], [6, 3, 3000]);
    assert.equal(report.rows[0].current, true);
    assert.equal(report.rows[0].loads, 3, "five places hold all three models: each loads once");
    assert.equal(report.recommendation, null);
    const keep = await run(["cache", "advise"]);
    assert.match(keep.stdout, /^recommended: keep the current settings/m);
    // One place: every switch reloads (6 loads of 120 ms); three places load each model once (3 loads), two places 4.
    // Three places save 0.36 s over the log's 3000 s: 0.36 x 86400 / 3000 = 10.4 s a day.
    const one = await run(["cache", "advise"], { INFERNO_CACHE__MAX_CACHED_MODELS: "1" });
    assert.equal(one.code, 0, one.stderr);
    assert.match(
      one.stdout,
      /^\* current: reload-cost, max_cached_models = 1, max_memory_mb = \d+\s+0\.0%\s+6\s+0\.7 s/m,
    );
    assert.match(one.stdout, /^ {2}max_cached_models = 3\s+50\.0%\s+3\s+0\.4 s\s+10\.4 s$/m);
    assert.match(
      one.stdout,
      /^recommended: set cache\.max_cached_models = 3 \(now 1\): 0\.4 s less loading over the log, about 10\.4 s a day/m,
    );
    const off = await run(["cache", "advise"], {
      INFERNO_CACHE__CACHE_DIR: join(cacheDir, "none"),
      INFERNO_CACHE__REQUEST_LOG_SIZE: "0",
    });
    assert.equal(off.code, 1);
    assert.match(off.stderr, /the request log is off \(cache\.request_log_size = 0\)/);
  });

  it("evict removes one model's entry; an unknown name is an error naming the file", async (t) => {
    const { run, store } = await setup(t);
    const evicted = await run(["cache", "evict", "b.gguf"]);
    assert.equal(evicted.code, 0, evicted.stderr);
    assert.deepEqual(
      (await store.read())?.state.models.map((m) => m.name),
      ["a.gguf", "c.gguf"],
    );
    const logged = requestsOf((await store.read())?.state.request_log).map((r) => r.key.replace(/^.*\//, ""));
    assert.deepEqual(logged, ["a.gguf", "a.gguf", "c.gguf", "a.gguf"], "b's requests went with its entry");
    const unknown = await run(["cache", "evict", "zzz.gguf"]);
    assert.equal(unknown.code, 2, "a name the user got wrong is a usage error");
    assert.match(unknown.stderr, /has no entry for "zzz\.gguf"/);
  });

  it("warmup prints the plan a starting server would follow, honest that nothing was loaded", async (t) => {
    const { run } = await setup(t);
    const usage = await run(["cache", "warmup", "--strategy", "usage"]);
    assert.equal(usage.code, 0, usage.stderr);
    assert.match(usage.stdout, /nothing was loaded/);
    assert.match(usage.stdout, /1\. a\.gguf\n {2}2\. b\.gguf\n {2}3\. c\.gguf/);
    const recent = JSON.parse((await run(["cache", "warmup", "--strategy", "recent", "--json"])).stdout);
    assert.deepEqual(recent.plan, ["b.gguf", "a.gguf", "c.gguf"]);
    const limited = JSON.parse(
      (
        await run(["cache", "warmup", "--json"], {
          INFERNO_CACHE__MAX_CACHED_MODELS: "1",
          INFERNO_CACHE__WARMUP_STRATEGY: "recent",
        })
      ).stdout,
    );
    assert.deepEqual(limited.plan, ["b.gguf"]);
    const given = JSON.parse((await run(["cache", "warmup", "c.gguf", "nope", "--json"])).stdout);
    assert.deepEqual(given.plan, ["c.gguf"]);
    assert.equal(given.skipped[0].name, "nope");
    const bad = await run(["cache", "warmup", "--strategy", "fastest"]);
    assert.equal(bad.code, 2);
  });

  it("save rewrites an older-version file in the current version", async (t) => {
    const { run, store } = await setup(t);
    const v1 = {
      format: "inferno-cache-state",
      schema_version: 1,
      saved_at: "2025-01-01T00:00:00.000Z",
      counters: { hits: 1, misses: 1, loads: 1, evictions: 0 },
      models: [],
    };
    await writeFile(store.path, await zstdCompress(Buffer.from(JSON.stringify(v1)), 3));
    const saved = await run(["cache", "save"]);
    assert.equal(saved.code, 0, saved.stderr);
    assert.match(saved.stdout, /saved 0 model entries/);
    const text = JSON.parse(new TextDecoder().decode(await zstdDecompress(await readFile(store.path))));
    assert.equal(text.schema_version, 2);
    assert.equal((await decompressState(await readFile(store.path))).counters.hits, 1);
  });

  it("a corrupt state file is reported (not silently replaced) by stats", async (t) => {
    const { run, store } = await setup(t);
    await writeFile(store.path, "garbage");
    const result = await run(["cache", "stats"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot be decoded/);
    assert.equal(await readFile(store.path, "utf8"), "garbage");
  });

  it("out-of-range state files: stats and inspect fail clearly (no crash); `inferno serve` quarantines them and starts; then both work", async (t) => {
    const { run, store, env, sandbox } = await setup(t);
    const now = Date.now();
    const bad: Array<[string, (d: ReturnType<typeof validDocument>) => void]> = [
      [
        "last_used_at 1e308",
        (d) => ((d.models as Array<{ usage: Record<string, unknown> }>)[0]!.usage.last_used_at = 1e308),
      ],
      ["saved_at -1e308", (d) => (d.saved_at = -1e308)],
      [
        "mtime 8.64e15 + 1",
        (d) => ((d.models as Array<{ fingerprint: Record<string, unknown> }>)[0]!.fingerprint.mtimeMs = 8.64e15 + 1),
      ],
    ];
    for (const [what, edit] of bad) {
      const document = validDocument(now);
      edit(document);
      await writeFile(store.path, await zstdCompress(Buffer.from(JSON.stringify(document)), 3));
      for (const args of [
        ["cache", "stats"],
        ["cache", "stats", "--json"],
        ["cache", "inspect"],
        ["cache", "inspect", "--json"],
      ]) {
        const result = await run(args);
        assert.equal(result.code, 1, `${what}: ${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, /cannot be decoded: .*malformed at /, `${what}: ${args.join(" ")}`);
      }
    }
    const server = spawnInferno(t, ["serve"], {
      cwd: sandbox.cwd,
      env: {
        ...sandbox.env,
        ...env,
        INFERNO_SERVER__PORT: "0",
        INFERNO_BACKEND__THREADS: "1",
        INFERNO_BACKEND__GPU: "false",
      },
    });
    await server.waitForLine(/^Inferno is serving/);
    assert.match(server.stderr(), /could not be decoded .*malformed at .* moved to .*\.corrupt-/);
    assert.equal(await server.stop("SIGTERM"), 0);
    const stats = await run(["cache", "stats", "--json"]);
    assert.equal(stats.code, 0, stats.stderr);
    const inspect = await run(["cache", "inspect", "--json"]);
    assert.equal(inspect.code, 0, inspect.stderr);
  });
});
