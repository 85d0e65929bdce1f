/** Shared pieces of the fleet tests: engines as nodes in one process, node records, usage deltas. */
import type { TestContext } from "node:test";
import type { PersistedModel, StateDelta } from "../../src/cache/persistence/types.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { FleetEngine, type FleetEngineOptions } from "../../src/fleet/engine.js";
import type { PlacementCandidate } from "../../src/fleet/placement.js";
import type { NodeRecord } from "../../src/fleet/types.js";

/** A connected engine for node `nodeId`, closed when the test ends. */
export async function engineFor(
  t: TestContext,
  redisUrl: string,
  nodeId: string,
  options: Partial<FleetEngineOptions> = {},
): Promise<FleetEngine> {
  const engine = new FleetEngine({ redisUrl, name: "test", nodeId, ...options });
  t.after(() => engine.close());
  await engine.connect();
  return engine;
}

export function nodeRecord(id: string, overrides: Partial<NodeRecord> = {}): NodeRecord {
  return {
    url: `http://${id}`,
    version: "0.1.0",
    started_at: 0,
    memory_capacity: 8 * 2 ** 30,
    memory_used: 0,
    model_capacity: 2,
    model_count: 0,
    lru_time: null,
    loading: 0,
    load_slots: 1,
    rpm: 0,
    draining: false,
    serves: {},
    ...overrides,
  };
}

/** A delta of `requests` requests (all hits) on model `key`, and as many hits in the counters. */
export function usageDelta(key: string, requests: number, at = Date.UTC(2026, 0, 1)): StateDelta {
  const model: PersistedModel = {
    key,
    name: key,
    format: "gguf",
    fingerprint: { size: 1000, mtimeMs: 1 },
    metadata: { memory_bytes: null },
    usage: {
      requests,
      hits: requests,
      misses: 0,
      loads: 0,
      last_used_at: at,
      frequency: null,
      load_ms_total: 0,
      load_ms_samples: [],
    },
    priority: 0,
    pinned: false,
  };
  return {
    at,
    half_life_hours: 24,
    reset_all: false,
    removed: [],
    counters: { ...emptyCounters(), hits: requests },
    models: [model],
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A node as placement sees it: 8 GiB and 2 slots, empty, serving a 1 GiB model of size 100. */
export function placementNode(id: string, overrides: Partial<PlacementCandidate> = {}): PlacementCandidate {
  return {
    id,
    draining: false,
    memoryCapacity: 8 * 2 ** 30,
    memoryUsed: 0,
    modelCapacity: 2,
    modelCount: 0,
    lruTime: null,
    serves: { size: 100, bytes: 2 ** 30 },
    ...overrides,
  };
}
