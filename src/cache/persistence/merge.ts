/**
 * "Merge my delta": how one process's changes since its last save join the stored state, whatever other processes
 * saved in between. Pure: the file store calls it under its lock; any other store applies the same function.
 *
 * Counts and load-time totals add; `last_used_at` takes the latest; decayed frequencies combine by their timestamps
 * (both brought to the later time, then added); load-time samples append, newest kept; facts about the file (name,
 * fingerprint, metadata, pinned, missing) take the delta's, which is the newest look at them. Request logs merge by
 * time, the newest `request_log_size` kept (`mergeRequestLogs`, with the log's saved form: `requestsOf`,
 * `persistedLogOf`).
 */
import { decayedValue, type DecayedCount } from "../policy/frequency.js";
import { priorityOf } from "../state-view.js";
import { EVICTION_REASONS } from "../types.js";
import type {
  CacheState,
  PersistedCounters,
  PersistedModel,
  PersistedRequestLog,
  PersistedUsage,
  StateDelta,
} from "./types.js";
import type { EpochMilliseconds } from "../../models/types.js";

/** Load times kept per model for the p95 (the cache keeps as many). */
export const LOAD_SAMPLES = 32;

function addCounters(a: PersistedCounters, b: PersistedCounters): PersistedCounters {
  const evictions = { ...a.evictions };
  for (const reason of EVICTION_REASONS) evictions[reason] = (a.evictions[reason] ?? 0) + (b.evictions[reason] ?? 0);
  return {
    hits: a.hits + b.hits,
    misses: a.misses + b.misses,
    loads: a.loads + b.loads,
    load_failures: a.load_failures + b.load_failures,
    evictions,
    warmups: a.warmups + b.warmups,
    unknown_model_requests: a.unknown_model_requests + b.unknown_model_requests,
    coalesced: a.coalesced + b.coalesced,
  };
}

/** Two decayed counts as one, as of the later of their times. */
export function combineFrequencies(
  a: DecayedCount | null,
  b: DecayedCount | null,
  halfLifeHours: number,
): DecayedCount | null {
  if (!a) return b && { ...b };
  if (!b) return { ...a };
  const at = Math.max(a.at, b.at);
  return { value: decayedValue(a, at, halfLifeHours) + decayedValue(b, at, halfLifeHours), at };
}

function latest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

function addUsage(stored: PersistedUsage, added: PersistedUsage, halfLifeHours: number): PersistedUsage {
  return {
    requests: stored.requests + added.requests,
    hits: stored.hits + added.hits,
    misses: stored.misses + added.misses,
    loads: stored.loads + added.loads,
    last_used_at: latest(stored.last_used_at, added.last_used_at),
    frequency: combineFrequencies(stored.frequency, added.frequency, halfLifeHours),
    load_ms_total: stored.load_ms_total + added.load_ms_total,
    load_ms_samples: [...stored.load_ms_samples, ...added.load_ms_samples].slice(-LOAD_SAMPLES),
  };
}

function mergeModel(stored: PersistedModel, added: PersistedModel, at: number, halfLifeHours: number): PersistedModel {
  const sameFile =
    stored.fingerprint.size === added.fingerprint.size && stored.fingerprint.mtimeMs === added.fingerprint.mtimeMs;
  const metadata = { ...added.metadata };
  // A process that never loaded the model knows no measured memory; another one's measurement of the same file stands.
  if (metadata.memory_bytes === null && sameFile) metadata.memory_bytes = stored.metadata.memory_bytes;
  if (metadata.gguf === undefined && sameFile && stored.metadata.gguf) metadata.gguf = stored.metadata.gguf;
  const model: PersistedModel = { ...added, metadata, usage: addUsage(stored.usage, added.usage, halfLifeHours) };
  model.priority = priorityOf(model, at, halfLifeHours);
  return model;
}

/** The stored state (null: none yet) with `delta` added. */
export function mergeDelta(current: CacheState | null, delta: StateDelta): CacheState {
  const base = delta.reset_all ? null : current;
  const models = new Map((base?.models ?? []).map((m) => [m.key, m]));
  const removed = new Set(delta.removed);
  for (const key of removed) models.delete(key);
  for (const added of delta.models) {
    const stored = models.get(added.key);
    models.set(
      added.key,
      stored
        ? mergeModel(stored, added, delta.at, delta.half_life_hours)
        : { ...added, priority: priorityOf(added, delta.at, delta.half_life_hours) },
    );
  }
  const state: CacheState = {
    saved_at: base ? Math.max(delta.at, base.saved_at) : delta.at,
    counters: base ? addCounters(base.counters, delta.counters) : structuredClone(delta.counters),
    models: [...models.values()],
  };
  // A process that logs nothing (size 0) leaves the stored log as other processes wrote it.
  const size = delta.request_log_size ?? 0;
  const log =
    size > 0
      ? mergeRequestLogs(base?.request_log, delta.request_log, size, removed)
      : mergeRequestLogs(base?.request_log, null, Infinity, removed);
  if (log) state.request_log = log;
  return state;
}

/** A delta that replaces whatever is stored with `state` (a full rewrite: migration, tests, file-mode tools). */
export function replacingDelta(state: CacheState, halfLifeHours = 24): StateDelta {
  return {
    at: state.saved_at,
    half_life_hours: halfLifeHours,
    reset_all: true,
    removed: [],
    counters: state.counters,
    models: state.models,
    ...(state.request_log ? { request_log: state.request_log, request_log_size: state.request_log.at.length } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The request log's saved form (the ring itself is in usage.ts): columns, each model key written once, outcomes one
// letter a request.

export type RequestOutcome = "hit" | "miss" | "coalesced";

/** One logged request. */
export interface LoggedRequest {
  key: string;
  at: EpochMilliseconds;
  outcome: RequestOutcome;
  /** For a miss: how long the load it started took (ms); null when it failed, was cancelled or is not over yet. */
  loadMs: number | null;
}

/** Outcomes as the saved log spells them: one letter per request. */
const LETTER: Record<RequestOutcome, string> = { hit: "h", miss: "m", coalesced: "c" };
const OUTCOME_OF_LETTER: Record<string, RequestOutcome> = { h: "hit", m: "miss", c: "coalesced" };

/** The requests of a saved log, oldest first. */
export function requestsOf(log: PersistedRequestLog | undefined | null): LoggedRequest[] {
  if (!log) return [];
  return log.at.map((at, i) => ({
    key: log.keys[log.model[i] as number] as string,
    at,
    outcome: OUTCOME_OF_LETTER[log.outcome[i] as string] as RequestOutcome,
    loadMs: log.load_ms[i] ?? null,
  }));
}

/** Requests (oldest first) in the saved form: columns, each model key written once. */
export function persistedLogOf(requests: readonly LoggedRequest[]): PersistedRequestLog {
  const index = new Map<string, number>();
  const log: PersistedRequestLog = { keys: [], at: [], model: [], outcome: "", load_ms: [] };
  const letters: string[] = [];
  for (const r of requests) {
    let i = index.get(r.key);
    if (i === undefined) {
      i = log.keys.length;
      index.set(r.key, i);
      log.keys.push(r.key);
    }
    log.at.push(r.at);
    log.model.push(i);
    letters.push(LETTER[r.outcome]);
    log.load_ms.push(r.loadMs);
  }
  log.outcome = letters.join("");
  return log;
}

/**
 * Two logs as one: every request of both by time (the stored ones first at equal times), less the models in `removed`,
 * the newest `capacity` kept.
 */
export function mergeRequestLogs(
  stored: PersistedRequestLog | undefined | null,
  added: PersistedRequestLog | undefined | null,
  capacity: number,
  removed: ReadonlySet<string> = new Set(),
): PersistedRequestLog | undefined {
  const all = [...requestsOf(stored), ...requestsOf(added)].filter((r) => !removed.has(r.key));
  if (all.length === 0) return undefined;
  // Array.prototype.sort is stable: at equal times the stored request stays first.
  all.sort((a, b) => a.at - b.at);
  return persistedLogOf(all.slice(Math.max(0, all.length - capacity)));
}
