/** Shared pieces of the fleet tests: engines as nodes in one process, node records, usage deltas, a steady stream. */
import type { TestContext } from "node:test";
import type { PersistedModel, StateDelta } from "../../src/cache/persistence/types.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { FleetEngine, type FleetEngineOptions } from "../../src/fleet/engine.js";
import type { PlacementCandidate } from "../../src/fleet/placement.js";
import type { NodeRecord } from "../../src/fleet/types.js";
import { complete } from "../../testkit/fleet.js";

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

/** A steady stream of requests through a fleet (what a rolling restart must not fail). */
export interface SteadyStream {
  /** Every failed request: node, model, status or error. */
  readonly failures: string[];
  /** Requests sent so far. */
  readonly sent: number;
  /** Ends the stream once each client's request in flight is answered. */
  stop(): Promise<void>;
}

/**
 * Three clients sending greedy 2-token completions for `models` in turn, each through the next node of `rotation` (a
 * load balancer's view: take a node out before its SIGTERM, put it back once ready), until `stop()`.
 */
export function steadyStream(
  rotation: ReadonlySet<{ id: string; url: string }>,
  models: readonly string[],
): SteadyStream {
  const failures: string[] = [];
  let sent = 0;
  let stopped = false;
  const client = async (offset: number) => {
    for (let i = offset; !stopped; i += 3) {
      const live = [...rotation];
      const node = live[i % live.length]!;
      const model = models[i % models.length]!;
      sent++;
      try {
        const response = await complete(node, model);
        const text = await response.text();
        if (response.status !== 200) failures.push(`${node.id} ${model}: ${response.status} ${text.slice(0, 200)}`);
      } catch (error) {
        failures.push(`${node.id} ${model}: ${(error as Error).message}`);
      }
    }
  };
  const clients = [0, 1, 2].map(client);
  return {
    failures,
    get sent() {
      return sent;
    },
    async stop() {
      stopped = true;
      await Promise.all(clients);
    },
  };
}
