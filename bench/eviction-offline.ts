/**
 * Real offline schedules for the eviction benchmark (issue 25): eviction rules that know every future request, replayed
 * on the same cost model as the simulator (src/cache/sim/simulate.ts: requests served one after another, a miss loads
 * at its cold or page-cache-warm cost, victims chosen among the resident models until the newcomer fits). Each is a
 * schedule someone could have run, so its total is an upper bound on the offline optimum, where the LP relaxation is a
 * lower bound: the optimum lies between the two.
 *
 * - `belady`: evict the model whose next request is farthest away (never again first);
 * - `belady-cost`: evict the model with the least reload cost per millisecond until its next request (the cost it will
 *   pay then, warm when that request falls in the page cache window after now).
 *
 * `offlineSchedule` replays both and keeps the cheaper.
 */
import { isWarm } from "../src/cache/sim/simulate.js";
import type { SimModel, SimSettings, Trace } from "../src/cache/sim/types.js";

export type OfflineRule = "belady" | "belady-cost";

/** For each request, the index of the next request of the same model (Infinity when there is none). */
function nextUses(trace: Trace): number[] {
  const next = new Array<number>(trace.requests.length).fill(Infinity);
  const seen = new Map<string, number>();
  for (let i = trace.requests.length - 1; i >= 0; i--) {
    const { key } = trace.requests[i] as { key: string };
    next[i] = seen.get(key) ?? Infinity;
    seen.set(key, i);
  }
  return next;
}

/** Total load time (ms) of `rule`'s schedule on `trace` under `settings`' limits. */
export function replayOffline(trace: Trace, settings: SimSettings, rule: OfflineRule): number {
  const models = new Map<string, SimModel>(trace.models.map((m) => [m.key, m]));
  const next = nextUses(trace);
  /** Resident models and the index of their next request. */
  const resident = new Map<string, number>();
  const unloadedAt = new Map<string, number>();
  let usedBytes = 0;
  let total = 0;
  const atOf = (index: number) => trace.requests[index]?.at ?? Infinity;
  for (const [i, { at: now, key }] of trace.requests.entries()) {
    const model = models.get(key) as SimModel;
    if (resident.has(key)) {
      resident.set(key, next[i] as number);
      continue;
    }
    const fits = () =>
      resident.size + 1 <= settings.maxModels &&
      (settings.maxMemoryBytes <= 0 || usedBytes + model.memoryBytes <= settings.maxMemoryBytes);
    if (!fits()) {
      const score = ([victim, nextIndex]: [string, number]) => {
        if (nextIndex === Infinity) return Infinity;
        const distance = atOf(nextIndex) - now;
        if (rule === "belady") return distance;
        const m = models.get(victim) as SimModel;
        const reload = distance <= settings.warmWindowMs ? m.warmLoadMs : m.loadMs;
        return distance / Math.max(reload, 1e-9);
      };
      const victims = [...resident.entries()].sort((a, b) => score(b) - score(a));
      for (const [victim] of victims) {
        if (fits()) break;
        resident.delete(victim);
        unloadedAt.set(victim, now);
        usedBytes -= (models.get(victim) as SimModel).memoryBytes;
      }
      if (!fits()) throw new Error(`${key} can never fit the limits`);
    }
    total += isWarm(unloadedAt.get(key) ?? null, now, settings.warmWindowMs) ? model.warmLoadMs : model.loadMs;
    resident.set(key, next[i] as number);
    usedBytes += model.memoryBytes;
  }
  return total;
}

/** The cheaper of the offline rules' schedules: its total load time (ms) and which rule made it. */
export function offlineSchedule(trace: Trace, settings: SimSettings): { loadMsTotal: number; rule: OfflineRule } {
  const rules: OfflineRule[] = ["belady", "belady-cost"];
  return rules
    .map((rule) => ({ rule, loadMsTotal: replayOffline(trace, settings, rule) }))
    .reduce((best, r) => (r.loadMsTotal < best.loadMsTotal ? r : best));
}
