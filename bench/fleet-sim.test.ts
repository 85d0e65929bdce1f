/** The simulator's fleet mode: the fleet's real rules on a virtual clock, checked against the single-node simulator. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { simulate } from "../src/cache/sim/simulate.js";
import type { SimSettings, Trace } from "../src/cache/sim/types.js";
import { type FleetSimSettings, simulateFleet } from "../src/fleet/sim.js";
import { seededRandom } from "../src/models/gguf-writer.js";
import { zipfSampler, zipfTrace } from "./eviction-traces.js";

const GiB = 2 ** 30;
const node: SimSettings = { maxModels: 3, maxMemoryBytes: 16 * GiB, warmWindowMs: 10 * 60_000, usageHalfLifeHours: 24 };
const settings = (o: Partial<FleetSimSettings> = {}): FleetSimSettings => ({
  nodes: 1,
  node,
  policy: "reload-cost",
  scaleUpRpm: 60,
  serviceMs: 2000,
  heartbeatMs: 5000,
  saveIntervalMs: 300_000,
  loadLeaseMs: 30_000,
  feedBlockMs: 1000,
  ...o,
});
const trace = zipfTrace("zipf", { seed: 5, models: 12, requests: 600, zipf: 0.9, meanGapS: 20 });

test("a fleet of one node loads exactly as the single-node simulator", () => {
  // Loads at one rate per byte, warm or cold: the fleet's load-time cap (fleetLoadTimes) then changes nothing.
  const even = { ...trace, models: trace.models.map((m) => ({ ...m, warmLoadMs: m.loadMs })) };
  for (const policy of ["reload-cost", "lru", "cost-aware"] as const) {
    const fleet = simulateFleet(even, settings({ policy }));
    const alone = simulate(even, node, policy);
    assert.deepEqual(
      [fleet.loads, fleet.warmLoads, fleet.loadMsTotal, fleet.evictions, fleet.forwards, fleet.copiesAdded],
      [alone.loads, alone.warmLoads, alone.loadMsTotal, alone.evictions, 0, 0],
      policy,
    );
  }
});

test("told the true rates, a fleet of one node loads as the single-node simulator told them", () => {
  const even = { ...trace, models: trace.models.map((m) => ({ ...m, warmLoadMs: m.loadMs })) };
  const phases = trace.phases ?? [];
  assert.equal(phases.length, 1);
  const fleet = simulateFleet(even, settings({ knownRates: phases }));
  const alone = simulate(even, node, "reload-cost", { knownFrequency: phases });
  assert.deepEqual([fleet.loads, fleet.loadMsTotal], [alone.loads, alone.loadMsTotal]);
  assert.notEqual(fleet.loads, simulateFleet(even, settings()).loads, "the rates change the choices");
});

test("four nodes as one cache load less than four on their own behind round-robin", () => {
  const fleet = simulateFleet(trace, settings({ nodes: 4 }));
  let alone = 0;
  for (let n = 0; n < 4; n++) {
    alone += simulate(
      { models: trace.models, requests: trace.requests.filter((_, i) => i % 4 === n) },
      node,
      "reload-cost",
    ).loadMsTotal;
  }
  assert.ok(fleet.loadMsTotal < 0.6 * alone, `fleet ${fleet.loadMsTotal} ms, independent ${alone} ms`);
  assert.ok(fleet.forwards > 0);
  assert.ok(fleet.redis.byKind.claim >= fleet.misses, "a claim at every miss");
  assert.ok(fleet.redis.perSecond > 0 && fleet.redis.peakPerSecond >= fleet.redis.perSecond);
});

test("a model above scale_up_rpm gets copies, up to max_copies", () => {
  const models = trace.models.slice(0, 2);
  const hot = (models[0] as Trace["models"][number]).key;
  // 240 requests a minute to one model for 5 minutes: four copies at 60 rpm each.
  const requests = Array.from({ length: 1200 }, (_, i) => ({ at: Date.UTC(2026, 0, 1) + i * 250, key: hot }));
  const fleet = simulateFleet({ models, requests }, settings({ nodes: 6 }));
  assert.equal(fleet.copiesAdded, 3, "up to the default max_copies (4)");
  assert.equal(fleet.loads, 4);
  const capped = simulateFleet({ models, requests }, settings({ nodes: 6, rules: { [hot]: { max_copies: 2 } } }));
  assert.equal(capped.copiesAdded, 1);
});

test("fast requests one at a time over a full fleet: no copy for rate alone, about one cache of all the slots", () => {
  // The real-process bench's Zipf replay (bench/fleet.ts): 12 models at s = 1, 360 requests one at a time (~40 ms
  // apart, far above scale_up_rpm) round-robin over 3 nodes x 2 slots. No request ever waits for a copy, so a copy
  // for rate would only evict a model loaded again (before: 113 copies added, 237 loads against 222 for lone nodes).
  const draw = zipfSampler(12, 1, seededRandom(26));
  const models = Array.from({ length: 12 }, (_, i) => ({ key: `z${i}`, memoryBytes: GiB, loadMs: 30, warmLoadMs: 30 }));
  const requests = Array.from({ length: 360 }, (_, i) => ({ at: Date.UTC(2026, 0, 1) + i * 40, key: `z${draw()}` }));
  const two: SimSettings = { ...node, maxModels: 2 };
  const fleet = simulateFleet({ models, requests }, settings({ nodes: 3, node: two, serviceMs: 30 }));
  assert.equal(fleet.copiesAdded, 0);
  let alone = 0;
  for (let n = 0; n < 3; n++) {
    alone += simulate({ models, requests: requests.filter((_, i) => i % 3 === n) }, two, "reload-cost").loads;
  }
  const pooled = simulate({ models, requests }, { ...two, maxModels: 6 }, "reload-cost").loads;
  assert.ok(fleet.loads <= pooled, `fleet ${fleet.loads} loads, one cache of 6 slots ${pooled}`);
  assert.ok(fleet.loads < 0.45 * alone, `fleet ${fleet.loads} loads, lone nodes ${alone}`);
});

test("a reload goes where the model's file is warm once the fleet has measured what that saves", () => {
  // 2 nodes × 1 slot; a cold load takes 3 s, a warm one 1 s. A (used three times) on n0, B on n1; C takes B's place,
  // B comes back to its warm file there (the least loss too). 11 minutes later C comes back to n1, cold: n1 has now
  // measured a warm and a cold reload. C is used five more times; when B comes back, n1 (C, used more than n0's A)
  // loses more reload time per hour, but far less over 10 minutes than the 2 s B's warm file saves: B goes to n1.
  const models = ["A", "B", "C"].map((key) => ({ key, memoryBytes: GiB, loadMs: 3000, warmLoadMs: 1000 }));
  const t0 = Date.UTC(2026, 0, 1);
  const later = t0 + 5000 + 11 * 60_000;
  const requests = [
    ...["A", "B", "A", "A", "C", "B"].map((key, i) => ({ at: t0 + i * 1000, key })),
    ...["C", "C", "C", "C", "C", "C", "B"].map((key, i) => ({ at: later + i * 1000, key })),
  ];
  const one: SimSettings = { ...node, maxModels: 1 };
  const fleet = simulateFleet({ models, requests }, settings({ nodes: 2, node: one }));
  assert.equal(fleet.loads, 6);
  assert.equal(fleet.warmLoads, 2, "B reloaded warm twice");
  assert.equal(fleet.loadMsTotal, 4 * 3000 + 2 * 1000);
});
