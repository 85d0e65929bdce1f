/**
 * Replays the recorded server trace (bench/traces/inferno-server.json) decision by decision under two policies and
 * prints where they evict differently: what each saw (every idle model's frequency, load time as weighed, and value),
 * what it evicted, and when the victim was asked for next. Then draws `--family N` traces the way
 * bench/record-trace.ts drew the recorded one (the same nine models and their measured load times, a popularity order
 * shuffled per draw, Zipf 1.0 sessions of 1–6 requests, 300 requests, 2 places) and prints how the two policies' load
 * times compare over them, to tell a cause from the luck of one recording (bench/NOTES.md, issue 25).
 *
 *   node --import tsx bench/eviction-replay.ts [--a reload-cost] [--b cost-aware] [--family 200]
 */
import { parseArgs } from "node:util";
import { gdsfPriority, reloadCostValue } from "../src/cache/policy/eviction.js";
import { type SimMiss, type SimPolicy, simulate } from "../src/cache/sim/simulate.js";
import type { SimRequest, SimSettings, Trace } from "../src/cache/sim/types.js";
import { cacheSchema } from "../src/config/schema.js";
import { serverLikeTrace, serverTrace } from "./eviction.js";

const { values } = parseArgs({
  options: {
    a: { type: "string", default: "reload-cost" },
    b: { type: "string", default: "cost-aware" },
    family: { type: "string", default: "200" },
  },
});
const [a, b] = [values.a, values.b] as [SimPolicy, SimPolicy];

const recorded = await serverTrace();
const settings: SimSettings = {
  ...(recorded.settings as Omit<SimSettings, "usageHalfLifeHours">),
  usageHalfLifeHours: cacheSchema.parse({}).usage_half_life_hours,
};
const limits = { maxModels: settings.maxModels, maxMemoryBytes: settings.maxMemoryBytes };

function misses(trace: Trace, policy: SimPolicy): { total: number; byIndex: Map<number, SimMiss> } {
  const byIndex = new Map<number, SimMiss>();
  const { loadMsTotal } = simulate(trace, settings, policy, { onMiss: (miss) => byIndex.set(miss.index, miss) });
  return { total: loadMsTotal, byIndex };
}

const short = (key: string) => key.replace(/\.gguf$/, "");

function describe(policy: SimPolicy, miss: SimMiss, trace: Trace, index: number): string {
  const value = (c: SimMiss["candidates"][number]) =>
    policy === "cost-aware" ? gdsfPriority(c) : policy === "reload-cost" ? reloadCostValue(c, limits) : NaN;
  const seen = miss.candidates
    .map(
      (c) => `${short(c.key)} f=${c.frequency.toFixed(1)} ${(c.loadMs ?? NaN).toFixed(0)} ms v=${value(c).toFixed(0)}`,
    )
    .join(", ");
  const next = miss.victims.map((v) => {
    const at = trace.requests.findIndex((r, i) => i > index && r.key === v);
    return `${short(v)} next asked at #${at < 0 ? "never" : at}`;
  });
  return `${policy}: loads ${short(miss.key)} (${miss.cost.toFixed(0)} ms), evicts ${next.join(", ") || "nothing"}; saw ${seen}`;
}

const ra = misses(recorded, a);
const rb = misses(recorded, b);
console.log(
  `${recorded.name}: ${a} ${ra.total.toFixed(1)} ms, ${b} ${rb.total.toFixed(1)} ms (${(ra.total / rb.total).toFixed(3)}×)`,
);
const indices = [...new Set([...ra.byIndex.keys(), ...rb.byIndex.keys()])].sort((x, y) => x - y);
for (const i of indices) {
  const [ma, mb] = [ra.byIndex.get(i), rb.byIndex.get(i)];
  if (ma && mb && ma.victims.join() === mb.victims.join()) continue;
  console.log(`#${i} ${short((recorded.requests[i] as SimRequest).key)}`);
  console.log(`  ${ma ? describe(a, ma, recorded, i) : `${a}: hit`}`);
  console.log(`  ${mb ? describe(b, mb, recorded, i) : `${b}: hit`}`);
}

const draws = Number(values.family);
if (draws > 0) {
  const ratios = Array.from({ length: draws }, (_, i) => {
    const trace = serverLikeTrace(recorded, 1000 + i);
    return simulate(trace, settings, a).loadMsTotal / simulate(trace, settings, b).loadMsTotal;
  }).sort((x, y) => x - y);
  const at = (q: number) => (ratios[Math.floor(q * (ratios.length - 1))] as number).toFixed(3);
  const geomean = Math.exp(ratios.reduce((sum, r) => sum + Math.log(r), 0) / ratios.length);
  const recordedRatio = ra.total / rb.total;
  console.log(
    `${draws} redrawn traces, ${a} / ${b}: geometric mean ${geomean.toFixed(3)}, p10 ${at(0.1)}, median ${at(0.5)}, ` +
      `p90 ${at(0.9)}; ${a} ≤ ${b} in ${ratios.filter((r) => r <= 1).length}; ` +
      `the recorded trace's ${recordedRatio.toFixed(3)} exceeded by ${ratios.filter((r) => r > recordedRatio).length}`,
  );
}
