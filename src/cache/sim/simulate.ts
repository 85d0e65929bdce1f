/**
 * Replays a trace through an eviction policy on a virtual clock: the same policy functions and the same bookkeeping
 * as `ModelCache` (use counted before room is made, victims chosen from the idle resident models, GDSF inflation raised
 * by each eviction, a model's load cost the average of its measured loads, settled by `settledLoadTimes` while it has
 * been loaded once), without a backend or timers. Pure: no I/O,
 * no clock; a trace of thousands of requests replays in milliseconds.
 *
 * What it leaves out: requests are served one after another and each is over at once (no leases, no concurrent
 * loads). The idle TTL (`ttlMs`, off by default) unloads a model that long after its last request (after the end of
 * the load, when that request loaded it), as the cache does. The test `sim.test.ts` checks it against a real `ModelCache` on the fake backend.
 */
import {
  chooseVictims,
  type EvictionCandidate,
  type EvictionPolicy,
  nextInflation,
  settledLoadTimes,
  takeVictims,
} from "../policy/eviction.js";
import { addUse, type DecayedCount, decayedValue } from "../policy/frequency.js";
import { PEER_POLICIES, type PeerPolicy, peerOrder, safeCountLimit } from "./peers.js";
import { phaseAt, type RatePhase, type SimModel, type SimResult, type SimSettings, type Trace } from "./types.js";

/** Our policies (`cache.eviction_policy`) and the other runners' rules. */
export type SimPolicy = EvictionPolicy | PeerPolicy;

interface ModelState extends SimUsage {
  model: SimModel;
  resident: boolean;
  /** When its idle time started: its last request, or the end of the load that request started (as the cache counts it). */
  idleFrom: number;
}

function isPeer(policy: SimPolicy): policy is PeerPolicy {
  return (PEER_POLICIES as readonly string[]).includes(policy);
}

/** The limits a policy runs under: a count-only runner gets the count that keeps it within memory. */
export function effectiveSettings(trace: Trace, settings: SimSettings, policy: SimPolicy): SimSettings {
  if (policy !== "lru-count") return settings;
  const sizes = trace.models.map((m) => m.memoryBytes);
  return {
    ...settings,
    maxModels: safeCountLimit(sizes, settings.maxModels, settings.maxMemoryBytes),
    maxMemoryBytes: 0,
  };
}

/** Whether a model unloaded at `unloadedAt` (null: never loaded) and needed again at `now` still has a warm page cache. */
export function isWarm(unloadedAt: number | null, now: number, warmWindowMs: number): boolean {
  return warmWindowMs > 0 && unloadedAt !== null && now - unloadedAt <= warmWindowMs;
}

/**
 * One model's usage as a simulated cache keeps it, as `ModelCache` does: its last use, decayed frequency and the GDSF
 * inflation at that use, its loads and their cost, its last unload. The fleet simulator keeps one per node and model.
 */
export interface SimUsage {
  lastUsedAt: number | null;
  frequency: DecayedCount | null;
  inflation: number;
  loads: number;
  loadMsTotal: number;
  unloadedAt: number | null;
}

export function newUsage(): SimUsage {
  return { lastUsedAt: null, frequency: null, inflation: 0, loads: 0, loadMsTotal: 0, unloadedAt: null };
}

/** Counts a request at `now`, when the cache's inflation is `inflation`. */
export function countRequest(usage: SimUsage, now: number, inflation: number, limits: SimSettings): void {
  usage.lastUsedAt = now;
  usage.frequency = addUse(usage.frequency, now, limits.usageHalfLifeHours);
  usage.inflation = inflation;
}

/** A resident model as the eviction policy sees it at `now` (`frequency`: a known one instead of the decayed count). */
export function evictionCandidate(
  model: SimModel,
  usage: SimUsage,
  now: number,
  limits: SimSettings,
  frequency = decayedValue(usage.frequency, now, limits.usageHalfLifeHours),
): EvictionCandidate {
  return {
    key: model.key,
    lastUsedAt: usage.lastUsedAt,
    memoryBytes: model.memoryBytes,
    loadMs: usage.loads > 0 ? usage.loadMsTotal / usage.loads : null,
    loads: usage.loads,
    frequency,
    inflation: usage.inflation,
  };
}

/** Counts a load of `model` at `now`: warm when its file is still in the page cache. Returns what it cost. */
export function countLoad(
  usage: SimUsage,
  model: SimModel,
  now: number,
  limits: SimSettings,
): { cost: number; warm: boolean } {
  const warm = isWarm(usage.unloadedAt, now, limits.warmWindowMs);
  const cost = warm ? model.warmLoadMs : model.loadMs;
  usage.loads++;
  usage.loadMsTotal += cost;
  return { cost, warm };
}

export interface SimOptions {
  /**
   * Each model's frequency as the policy sees it, instead of its decayed count: a reference run that knows each model's
   * true popularity (its request count over the whole trace, or its true rate in each phase of a trace whose popularity
   * changes: `RatePhase`s, switched at each phase's start), to tell how much better estimates could gain.
   */
  knownFrequency?: ReadonlyMap<string, number> | readonly RatePhase[];
  /** Called at every miss with what the policy saw and chose: a replay decision by decision (bench/eviction-replay.ts). */
  onMiss?: (miss: SimMiss) => void;
}

/** One miss as the simulator served it. */
export interface SimMiss {
  /** The request's index in the trace. */
  index: number;
  key: string;
  /** What its load cost (ms), and whether the file was still in the page cache. */
  cost: number;
  warm: boolean;
  /** The idle resident models as the policy weighed them (empty when the model fitted without an eviction). */
  candidates: EvictionCandidate[];
  /** The models evicted to make room, in order. */
  victims: string[];
}

/** The known frequencies in force at `now` (a phase list: its phase then), or undefined. */
function knownAt(known: SimOptions["knownFrequency"], now: number): ReadonlyMap<string, number> | undefined {
  return known === undefined || known instanceof Map ? known : phaseAt(known as readonly RatePhase[], now)?.perHour;
}

/** Replays `trace` under `policy` and `settings`. Throws when a model can never fit the limits. */
export function simulate(trace: Trace, settings: SimSettings, policy: SimPolicy, options: SimOptions = {}): SimResult {
  const limits = effectiveSettings(trace, settings, policy);
  const states = new Map<string, ModelState>(
    trace.models.map((model) => [model.key, { ...newUsage(), model, resident: false, idleFrom: 0 }]),
  );
  const resident = new Set<ModelState>();
  let usedBytes = 0;
  let inflation = 0;
  const result: SimResult = { requests: 0, hits: 0, misses: 0, loads: 0, warmLoads: 0, loadMsTotal: 0, evictions: 0 };

  const ttlMs = limits.ttlMs ?? 0;
  for (const { at: now, key } of trace.requests) {
    const state = states.get(key);
    if (!state) throw new Error(`trace request for unknown model ${key}`);
    if (ttlMs > 0) {
      for (const idle of resident) {
        const expiresAt = idle.idleFrom + ttlMs;
        if (expiresAt > now) continue;
        idle.resident = false;
        idle.unloadedAt = expiresAt;
        resident.delete(idle);
        usedBytes -= idle.model.memoryBytes;
      }
    }
    result.requests++;
    countRequest(state, now, inflation, limits);
    if (state.resident) {
      result.hits++;
      state.idleFrom = now;
      continue;
    }
    result.misses++;
    const shortfall = {
      count: resident.size + 1 - limits.maxModels,
      bytes: limits.maxMemoryBytes > 0 ? usedBytes + state.model.memoryBytes - limits.maxMemoryBytes : 0,
    };
    let candidates: EvictionCandidate[] = [];
    let victimKeys: string[] = [];
    if (shortfall.count > 0 || shortfall.bytes > 0) {
      const known = knownAt(options.knownFrequency, now);
      candidates = settledLoadTimes(
        [...resident].map((s) =>
          evictionCandidate(s.model, s, now, limits, known ? (known.get(s.model.key) ?? 0) : undefined),
        ),
      );
      const { victims, covers } = isPeer(policy)
        ? takeVictims(peerOrder(candidates, policy), shortfall, () => 0)
        : chooseVictims(candidates, shortfall, policy, limits);
      if (!covers) throw new Error(`${key} (${state.model.memoryBytes} bytes) can never fit the simulated limits`);
      for (const victim of victims) {
        const gone = states.get(victim.key) as ModelState;
        gone.resident = false;
        gone.unloadedAt = now;
        resident.delete(gone);
        usedBytes -= gone.model.memoryBytes;
        result.evictions++;
      }
      inflation = nextInflation(inflation, victims);
      victimKeys = victims.map((v) => v.key);
    }
    const { cost, warm } = countLoad(state, state.model, now, limits);
    options.onMiss?.({ index: result.requests - 1, key, cost, warm, candidates, victims: victimKeys });
    if (warm) result.warmLoads++;
    state.resident = true;
    state.idleFrom = now + cost;
    resident.add(state);
    usedBytes += state.model.memoryBytes;
    result.loads++;
    result.loadMsTotal += cost;
  }
  return result;
}
