/** Keeps the eviction benchmark honest: every policy replays every request, and the optimum is below them all. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { DEFAULT_POLICY, POLICIES, recordInfernoTrace, serverTrace } from "./eviction.js";
import { SETTINGS, syntheticTraces } from "./eviction-traces.js";
import { offlineOptimum } from "../src/cache/sim/optimum.js";
import { simulate } from "../src/cache/sim/simulate.js";
import { cacheSchema } from "../src/config/schema.js";
import { highsSolver } from "../src/runtime/lp-solver.js";

it("the benchmark's default policy is the configuration's default, and it is compared with every other rule", () => {
  assert.equal(DEFAULT_POLICY, cacheSchema.parse({}).eviction_policy);
  assert.equal(POLICIES[0], DEFAULT_POLICY);
  assert.deepEqual([...POLICIES].sort(), ["cost-aware", "largest-first", "lru", "lru-count", "ollama", "reload-cost"]);
});

it("every trace replays every request under every policy, none below the LP bound", async () => {
  const solver = await highsSolver();
  const settings = { ...SETTINGS, usageHalfLifeHours: 24 };
  const synthetic = syntheticTraces(150);
  for (const trace of synthetic)
    assert.ok(trace.models.length >= 20 && trace.models.length <= 50, `${trace.name}: 20–50 models`);
  const recorded = await recordInfernoTrace(120);
  assert.equal(recorded.requests.length, 120, "the recorded trace holds every request the cache served");
  for (const trace of [...synthetic, recorded, await serverTrace()]) {
    const keys = new Set(trace.models.map((m) => m.key));
    assert.ok(trace.requests.every((r, i) => keys.has(r.key) && (i === 0 || r.at >= (trace.requests[i - 1]?.at ?? 0))));
    const limits = { ...settings, ...trace.settings };
    const bound = offlineOptimum(trace, limits, solver, { integer: false }).loadMsTotal;
    for (const policy of POLICIES) {
      const r = simulate(trace, limits, policy);
      assert.equal(r.hits + r.misses, trace.requests.length);
      assert.ok(r.loadMsTotal >= bound - 1e-6, `${trace.name}: ${policy} below the bound`);
    }
  }
});
