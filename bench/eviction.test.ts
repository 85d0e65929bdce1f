/** Keeps the eviction benchmark honest: every policy replays every request, and the optimum is below them all. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { DEFAULT_POLICY, POLICIES, recordInfernoTrace, serverTrace } from "./eviction.js";
import { offlineSchedule, replayOffline } from "./eviction-offline.js";
import { dailyTrace, scanTrace, SETTINGS, shiftTrace, syntheticTraces, zipfTrace } from "./eviction-traces.js";
import { offlineOptimum } from "../src/cache/sim/optimum.js";
import { simulate } from "../src/cache/sim/simulate.js";
import { phaseAt, type RatePhase } from "../src/cache/sim/types.js";
import { cacheSchema } from "../src/config/schema.js";
import { highsSolver } from "../src/runtime/lp-solver.js";

it("the benchmark's default policy is the configuration's default, and it is compared with every other rule", () => {
  assert.equal(DEFAULT_POLICY, cacheSchema.parse({}).eviction_policy);
  assert.equal(POLICIES[0], DEFAULT_POLICY);
  assert.deepEqual([...POLICIES].sort(), ["cost-aware", "largest-first", "lru", "lru-count", "ollama", "reload-cost"]);
});

it("every trace replays every request under every policy and both offline schedules, none below the LP bound", async () => {
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
    // A real schedule: never below the bound, and the cheaper of the two rules is the one reported.
    const schedules = (["belady", "belady-cost"] as const).map((rule) => replayOffline(trace, limits, rule));
    for (const total of schedules)
      assert.ok(total >= bound - 1e-6, `${trace.name}: an offline schedule below the bound`);
    assert.equal(offlineSchedule(trace, limits).loadMsTotal, Math.min(...schedules));
  }
});

it("an offline schedule on a small trace costs at least the exact optimum and at most LRU's load time (+5 %)", async () => {
  const solver = await highsSolver();
  const settings = { ...SETTINGS, usageHalfLifeHours: 24 };
  const trace = zipfTrace("small", { seed: 31, models: 10, requests: 70, zipf: 0.9 });
  const exact = offlineOptimum(trace, settings, solver, { integer: true }).loadMsTotal;
  const schedule = offlineSchedule(trace, settings).loadMsTotal;
  assert.ok(schedule >= exact - 1e-6, `${schedule} below the exact optimum ${exact}`);
  assert.ok(schedule <= simulate(trace, settings, "lru").loadMsTotal * 1.05);
});

it("a synthetic trace's true rates, phase by phase: one order per phase, summing to the request rate", () => {
  const shape = { models: 40, requests: 4000, zipf: 0.9, meanGapS: 60 };
  const zipf = zipfTrace("zipf", { ...shape, seed: 1 });
  const shift = shiftTrace("shift", { ...shape, seed: 2, shifts: 3 });
  const daily = dailyTrace("daily", { ...shape, seed: 3 });
  const scan = scanTrace("scan", { ...shape, seed: 4, scanEvery: 500 });
  assert.equal(zipf.phases?.length, 1);
  assert.equal(shift.phases?.length, 4, "the first order and three shifts");
  assert.equal(scan.phases, undefined, "scans are no Zipf draw: no rates to know");
  const total = (p: RatePhase) => [...p.perHour.values()].reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total(zipf.phases?.[0] as RatePhase) - 60) < 1e-9, "a request a minute");
  // Working hours at twice the rate, the rest of the day at half: phases alternate at 8 h and 18 h.
  const phases = daily.phases ?? [];
  assert.ok(phases.length >= 4);
  for (const [i, p] of phases.entries()) {
    const hour = new Date(p.from).getUTCHours();
    const want = hour >= 8 && hour < 18 ? 120 : 30;
    assert.ok(Math.abs(total(p) - want) < 1e-9, `phase ${i} from ${new Date(p.from).toISOString()}: ${total(p)}/h`);
    if (i > 0) assert.notEqual(total(p), total(phases[i - 1] as RatePhase));
  }
  // Known rates switch at each phase: the simulator weighs the phase in force (phaseAt).
  const first = phases[0] as RatePhase;
  assert.equal(phaseAt(phases, first.from - 1), first);
  assert.equal(phaseAt(phases, (phases[1] as RatePhase).from), phases[1]);
  const settings = { ...SETTINGS, usageHalfLifeHours: 24 };
  const known = simulate(daily, settings, "reload-cost", { knownFrequency: phases });
  assert.equal(known.hits + known.misses, daily.requests.length);
});
