/**
 * `advise` (cache/sim/advise.ts) on a hand-made request log, against a table computed by hand below; and its typed
 * refusals when there is nothing to replay.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CacheState, PersistedModel } from "../../src/cache/persistence/types.js";
import { persistedLogOf } from "../../src/cache/persistence/merge.js";
import { advise, countRange, MAX_OPTIMUM_REQUESTS, memoryRange } from "../../src/cache/sim/advise.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { cacheSchema } from "../../src/config/schema.js";
import { singleFlight } from "../../src/runtime/advice.js";
import { highsSolver } from "../../src/runtime/lp-solver.js";
import { GIB } from "../../src/units.js";

const T0 = Date.UTC(2026, 0, 1);

function model(key: string, loads: number, loadMsTotal: number, memoryBytes: number | null): PersistedModel {
  return {
    key,
    name: `${key}.gguf`,
    format: "gguf",
    fingerprint: { size: 2 * GIB, mtimeMs: T0 },
    metadata: { memory_bytes: memoryBytes },
    usage: {
      requests: 0,
      hits: 0,
      misses: 0,
      loads,
      last_used_at: null,
      frequency: null,
      load_ms_total: loadMsTotal,
      load_ms_samples: [],
    },
    priority: 0,
    pinned: false,
  };
}

/** A request log of misses for `keys` in order, one every `stepMs` from T0, with the load times `loadMs` measured. */
function missLog(keys: readonly string[], stepMs: number, loadMs: Record<string, number> = {}) {
  return persistedLogOf(
    keys.map((key, i) => ({ key, at: T0 + i * stepMs, outcome: "miss" as const, loadMs: loadMs[key] ?? null })),
  );
}

/**
 * Three models of 1 GiB: `a` loads in 6 s, `b` and `c` in 1 s (their measured averages). Requests a b c a b c a, one a
 * minute (a span of 360 s), each a miss as the cache saw it with max_cached_models = 2 under lru.
 */
function handMadeState(): CacheState {
  return {
    saved_at: T0,
    counters: emptyCounters(),
    models: [model("a", 3, 18_000, GIB), model("b", 2, 2000, GIB), model("c", 2, 2000, GIB)],
    request_log: missLog(["a", "b", "c", "a", "b", "c", "a"], 60_000, { a: 6000, b: 1000, c: 1000 }),
  };
}

const config = cacheSchema.parse({
  eviction_policy: "lru",
  max_cached_models: 2,
  max_memory_mb: 8192,
  model_ttl_seconds: 0,
});

describe("cache advise", () => {
  it("on a hand-made log gives the hand-computed table and recommends the one change that saves most", async () => {
    const report = advise(handMadeState(), { config, systemMemoryBytes: 16 * GIB, solver: await highsSolver() });
    const table = report.rows.map((r) => [
      r.varies,
      r.eviction_policy,
      r.max_cached_models,
      r.max_memory_mb,
      r.hits,
      r.loads,
      r.load_seconds,
    ]);
    // By hand, two places (max_cached_models = 2; 8 GiB never binds for 1 GiB models):
    // - lru: every request finds its model gone (each evicts the one used two requests ago): 7 loads, 6+1+1+6+1+1+6 = 22 s.
    // - cost-aware and reload-cost keep `a` (6x the load time of b and c at the same size) while no model has been
    //   reloaded: c evicts b, a hits, b evicts c. Then b has two loads and `a` one, so a's load time counts at most b's
    //   time per byte (`settledLoadTimes`: a first load may have been a cold read), 1 s: c evicts a (used before b),
    //   a evicts b (used before c): 6 loads, 6+1+1+1+1+6 = 16 s, 1 hit.
    // - lru-count: llama.cpp's router with the count whose largest models fit 8 GiB (2): as lru, 22 s.
    // - ollama evicts by name, so `a` goes first: c evicts a, a evicts b, b evicts a, c hits, a evicts b:
    //   6 loads, 6+1+1+6+1+6 = 21 s, 1 hit.
    // - largest-first: equal sizes, so least recently used: as lru, 22 s.
    // - max_cached_models 1: every request switches models, 22 s; 3: each model loads once, 6+1+1 = 8 s, 4 hits.
    // - max_memory_mb from half to twice 8192, and 3072 (all three models), at most the machine's 16 GiB: lru with two
    //   places regardless, 22 s.
    assert.deepEqual(table, [
      ["current", "lru", 2, 8192, 0, 7, 22],
      ["eviction_policy", "cost-aware", 2, 8192, 1, 6, 16],
      ["eviction_policy", "reload-cost", 2, 8192, 1, 6, 16],
      ["eviction_policy", "lru-count", 2, 8192, 0, 7, 22],
      ["eviction_policy", "ollama", 2, 8192, 1, 6, 21],
      ["eviction_policy", "largest-first", 2, 8192, 0, 7, 22],
      ["max_cached_models", "lru", 1, 8192, 0, 7, 22],
      ["max_cached_models", "lru", 3, 8192, 4, 3, 8],
      ["max_memory_mb", "lru", 2, 3072, 0, 7, 22],
      ["max_memory_mb", "lru", 2, 4096, 0, 7, 22],
      ["max_memory_mb", "lru", 2, 6144, 0, 7, 22],
      ["max_memory_mb", "lru", 2, 12288, 0, 7, 22],
      ["max_memory_mb", "lru", 2, 16384, 0, 7, 22],
    ]);
    assert.deepEqual(
      report.rows.filter((r) => !r.settable).map((r) => r.eviction_policy),
      ["lru-count", "ollama", "largest-first"],
    );
    // The optimum with two places keeps `a` throughout; b and c then each reload once: 8 + 1 + 1 = 10 s (exact: 7 requests).
    assert.deepEqual(report.optimum, { load_seconds: 10, exact: true });
    // Three places save 14 s over the log's 360 s, 3360 s a day at that pace; cost-aware saves 6 s.
    assert.deepEqual(report.recommendation, {
      key: "cache.max_cached_models",
      from: 2,
      to: 3,
      load_seconds_saved: 14,
      seconds_saved_per_day: 3360,
      hit_rate: 4 / 7,
    });
    assert.deepEqual(report.log, {
      requests: 7,
      models: 3,
      first: "2026-01-01T00:00:00.000Z",
      last: "2026-01-01T00:06:00.000Z",
      span_seconds: 360,
      observed: { hits: 0, misses: 7, coalesced: 0, hit_rate: 0, load_seconds: 22 },
    });
    assert.deepEqual(report.current, { eviction_policy: "lru", max_cached_models: 2, max_memory_mb: 8192 });
  });

  it("with three places already, no change saves anything: the advice is to keep the settings", async () => {
    const report = advise(handMadeState(), {
      config: { ...config, max_cached_models: 3 },
      solver: await highsSolver(),
    });
    assert.equal(report.rows[0]?.load_seconds, 8);
    assert.equal(report.recommendation, null);
  });

  it("a policy change that saves as much as a bigger limit is preferred (it costs no memory)", async () => {
    // a b c a with two places: lru evicts a for c and reloads it (6+1+1+6 = 14 s); cost-aware evicts b and hits a
    // (8 s), as three places would (8 s): the same saving, and the policy is the smaller change.
    const state = handMadeState();
    state.request_log = missLog(["a", "b", "c", "a"], 60_000);
    const report = advise(state, { config, solver: await highsSolver() });
    assert.equal(report.rows.find((r) => r.max_cached_models === 3)?.load_seconds, 8);
    assert.deepEqual(report.recommendation, {
      key: "cache.eviction_policy",
      from: "lru",
      to: "cost-aware",
      load_seconds_saved: 6,
      seconds_saved_per_day: (6 * 86_400) / 180,
      hit_rate: 1 / 4,
    });
  });

  it("sizes and load times not measured fall back to the file size and the default load time, and are noted", async () => {
    const state = handMadeState();
    state.models = [model("a", 0, 0, null), ...state.models.slice(1)];
    state.request_log = missLog(["a", "b"], 1000);
    const report = advise(state, { config, solver: await highsSolver() });
    const a = report.models.find((m) => m.key === "a");
    assert.deepEqual(
      [a?.memory_bytes, a?.memory_measured, a?.load_ms, a?.load_ms_measured],
      [2 * GIB, false, 1000, false],
    );
    assert.ok(report.notes.some((n) => /no load time measured for a\.gguf: 1000 ms assumed/.test(n)));
  });

  it("an empty log, a log that is off, and a log spanning no time are refused with a typed error saying which", async () => {
    const solver = await highsSolver();
    const empty: CacheState = { saved_at: T0, counters: emptyCounters(), models: [] };
    assert.throws(() => advise(empty, { config, solver }), {
      code: "request_log_empty",
      message: /the request log is empty/,
    });
    assert.throws(() => advise(null, { config: { ...config, request_log_size: 0 }, solver }), {
      code: "request_log_empty",
      message: /the request log is off \(cache\.request_log_size = 0\)/,
    });
    const one = { ...handMadeState(), request_log: missLog(["a"], 0, { a: 5 }) };
    assert.throws(
      () => advise(one, { config, solver }),
      (error: Error & { code?: string; details?: { reason?: string } }) => {
        assert.equal(error.code, "request_log_empty");
        assert.equal(error.details?.reason, "too_short");
        return true;
      },
    );
  });

  it("a log longer than the optimum's limit gets every row, no optimum, and a note saying why", async () => {
    const state = handMadeState();
    const n = MAX_OPTIMUM_REQUESTS + 1;
    state.request_log = missLog(
      Array.from({ length: n }, (_, i) => (i % 2 ? "a" : "b")),
      1000,
    );
    const report = advise(state, { config, solver: { solve: () => assert.fail("the solver is not asked") } });
    assert.equal(report.optimum, null);
    assert.equal(report.rows[0]?.loads, 2, "two places hold a and b");
    assert.ok(report.notes.some((note) => note.includes(`up to ${MAX_OPTIMUM_REQUESTS} requests, this one has ${n}`)));
  });

  it("one replay at a time: a call while one runs gets its answer", async () => {
    let calls = 0;
    const once = singleFlight(async () => ++calls);
    assert.deepEqual(await Promise.all([once(), once()]), [1, 1]);
    assert.equal(await once(), 2, "a call after the last one ended starts a new one");
  });

  it("the ranges tried: every count up to 16 then a spread; memory around the current limit within the machine", () => {
    assert.deepEqual(countRange(3), [1, 2, 3]);
    assert.deepEqual(countRange(40), [...Array.from({ length: 16 }, (_, i) => i + 1), 24, 36, 40]);
    assert.deepEqual(memoryRange(8192, 1024, 3072, 16_384), [3072, 4096, 6144, 12_288, 16_384]);
    assert.deepEqual(
      memoryRange(8192, 5000, 30_000, 10_000),
      [6144],
      "never below the largest model nor above the machine",
    );
    assert.deepEqual(memoryRange(0, 1024, 3072, null), [], "no memory limit: nothing to vary");
  });
});
