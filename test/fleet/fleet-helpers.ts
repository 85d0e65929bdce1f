/** Shared pieces of the fleet tests: engines as nodes in one process, node records, usage deltas, a steady stream. */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import type { PersistedModel, StateDelta } from "../../src/cache/persistence/types.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { FleetEngine, type FleetEngineOptions } from "../../src/fleet/engine.js";
import type { PlacementCandidate } from "../../src/fleet/placement.js";
import type { NodeRecord } from "../../src/fleet/types.js";
import { complete } from "../../testkit/fleet.js";
import { waitFor } from "../../testkit/server.js";

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

/** A node that holds the fleet's warm-up leader lease until the real nodes are in (`leaseStandIn`). */
export interface LeaseStandIn {
  /** Its engine (node `stand-in`): to merge the fleet's usage before the nodes start, say. */
  engine: FleetEngine;
  /** Waits until every node of `ids` is live in Redis (a record, a running lease), then leaves: the lease is free. */
  release(ids: readonly string[]): Promise<void>;
}

/**
 * A stand-in node (no models) that takes the leader lease of fleet `name` and holds it until `release`, so that the
 * first plan is over all the nodes a test starts. Real nodes started together here come up seconds apart (each
 * compiles its TypeScript on 2 shared cores), more than the tests' settle window of two 0.5 s heartbeats, and a
 * leader would plan over the first ones alone, then once more per later node (a join); a real fleet started by systemd
 * comes up well within its settle window (two 5 s heartbeats by default). Take it before the nodes start, or after
 * they all stopped (a node that stops hands the lease on).
 */
export async function leaseStandIn(t: TestContext, redisUrl: string, name: string): Promise<LeaseStandIn> {
  const engine = await engineFor(t, redisUrl, "stand-in", { name });
  const lease = 60_000;
  await engine.heartbeat("stand-in", nodeRecord("stand-in"), lease);
  // A node that stopped without leaving holds the lease until it runs out.
  const leadBy = Date.now() + 30_000;
  await waitFor(async () => {
    const holder = (await engine.lead(lease)).node;
    if (Date.now() > leadBy) throw new Error(`the stand-in could not take the leader lease from ${holder}`);
    return holder === "stand-in";
  }, 100);
  return {
    engine,
    async release(ids) {
      const deadline = Date.now() + 60_000;
      await waitFor(async () => {
        const { now, nodes } = await engine.snapshot();
        const live = nodes.filter((n) => n.lease >= now && n.record !== null).map((n) => n.id);
        if (Date.now() > deadline) throw new Error(`not all of ${ids.join(", ")} in the fleet: ${live.join(", ")}`);
        return ids.every((id) => live.includes(id));
      }, 100);
      assert.equal(await engine.leave("stand-in"), true, "the stand-in leaves, the lease with it");
    },
  };
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
