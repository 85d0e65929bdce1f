/**
 * Saved-state pieces the tests, the stress scenarios and their child processes share. Types only from `src/`, so a
 * small child process (testkit/fixtures/save-state.ts, stress/scenarios/save-loop.ts) loads nothing else through it.
 */
import type { CacheState, PersistedModel, PersistedUsage, StateDelta } from "../src/cache/persistence/types.js";

/** A model's usage as a save's delta carries it: used once, at `now`, since the last save. */
export function usedOnce(now: number, frequency: PersistedUsage["frequency"] = null): PersistedUsage {
  return {
    requests: 1,
    hits: 1,
    misses: 0,
    loads: 0,
    last_used_at: now,
    frequency,
    load_ms_total: 0,
    load_ms_samples: [],
  };
}

/** A GGUF model never loaded (no memory measured), used once at `now`, with the given key, name and size. */
export function usedOnceModel(now: number, key: string, name: string, size: number): PersistedModel {
  return {
    key,
    name,
    format: "gguf",
    fingerprint: { size, mtimeMs: now },
    metadata: { memory_bytes: null },
    usage: usedOnce(now),
    priority: 0,
    pinned: false,
  };
}

/** A save's delta at `now` that carries `models` and nothing else. */
export function deltaOf(now: number, models: PersistedModel[], counters: StateDelta["counters"]): StateDelta {
  return { at: now, half_life_hours: 24, reset_all: false, removed: [], counters, models };
}

/**
 * The sample state the codec tests round-trip (and the zstd-napi fixture holds): one model `/m/a.gguf` used five
 * times; `model` gives its fingerprint and metadata, which differ between the two.
 */
export function sampleState(model: Pick<PersistedModel, "fingerprint" | "metadata">): CacheState {
  return {
    saved_at: 1_700_000_000_000,
    counters: {
      hits: 3,
      misses: 2,
      loads: 2,
      load_failures: 1,
      warmups: 0,
      unknown_model_requests: 0,
      coalesced: 0,
      evictions: {
        capacity_count: 1,
        capacity_memory: 0,
        ttl: 0,
        manual: 0,
        file_changed: 0,
        clear: 0,
        shutdown: 1,
        crashed: 0,
      },
    },
    models: [
      {
        key: "/m/a.gguf",
        name: "a.gguf",
        format: "gguf",
        ...model,
        usage: {
          requests: 5,
          hits: 3,
          misses: 2,
          loads: 2,
          last_used_at: 1_699_000_000_000,
          frequency: { value: 2.5, at: 1_699_000_000_000 },
          load_ms_total: 300,
          load_ms_samples: [100, 200],
        },
        priority: 12.5,
        pinned: false,
      },
    ],
  };
}
