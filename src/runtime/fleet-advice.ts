/**
 * `inferno cache advise` on a node in a fleet: the fleet's recorded traffic — its merged request log, every node's
 * requests merged by time in Redis with the usage (persistence/merge.ts), the newest `request_log_size` kept — replayed
 * through the fleet simulator (fleet/sim.ts: the real placement, routing, copies and eviction rules) at other node
 * counts and other memory per node, each node sized as this one; the answer is the fewest nodes, and the least memory
 * per node at the current count, whose replay reaches the target hit rate.
 *
 * Pure: the merged state, the live node count and the configuration are passed in. The rows do not depend on the
 * target (`retarget` answers another target from the same rows).
 */
import type { CacheState } from "../cache/persistence/types.js";
import { type FleetAdvice, type FleetAdviceRow, replayOf } from "../cache/sim/advise.js";
import type { SimSettings, Trace } from "../cache/sim/types.js";
import { iso, memoryLimitBytes } from "../cache/state-view.js";
import type { CacheConfig } from "../config/schema.js";
import type { CopiesOverride } from "../fleet/copies.js";
import { simulateFleet, type FleetSimSettings } from "../fleet/sim.js";
import type { Bytes } from "../models/types.js";
import { MIB } from "../units.js";

/** The hit rate asked for when none is given. */
export const DEFAULT_TARGET_HIT_RATE = 0.9;
/** The fleet sizes replayed stop here (the replay's cost grows with the node count). */
export const MAX_REPLAYED_NODES = 64;
/** Every node count up to this many is replayed; beyond it, a spread of counts. */
const ALL_NODES_UP_TO = 8;
/** How long a request keeps its copy busy in the replay (the log has no durations): routing over copies reads it. */
const SERVICE_MS = 1000;

export interface FleetAdviceInput {
  /** The fleet's merged usage (`GET /v1/fleet`'s source); null before any node saved. */
  state: CacheState | null;
  /** Live nodes now. */
  nodes: number;
  config: Pick<
    CacheConfig,
    | "eviction_policy"
    | "max_cached_models"
    | "max_memory_mb"
    | "usage_half_life_hours"
    | "request_log_size"
    | "persist_interval_seconds"
    | "models"
  >;
  systemMemoryBytes?: Bytes;
  /** `fleet.scale_up_rpm` and `fleet.heartbeat_seconds` (ms). */
  scaleUpRpm: number;
  heartbeatMs: number;
  targetHitRate: number;
}

/** Node counts to replay: every one up to 8, then a spread up to `enough`, with `current` among them. */
export function nodeRange(current: number, enough: number): number[] {
  const top = Math.min(MAX_REPLAYED_NODES, Math.max(current, enough));
  const values = new Set<number>([current]);
  for (let n = 1; n <= Math.min(top, ALL_NODES_UP_TO); n++) values.add(n);
  for (let n = ALL_NODES_UP_TO; n < top; n = Math.ceil(n * 1.5)) values.add(n);
  values.add(top);
  return [...values].sort((a, b) => a - b);
}

/** Memory per node to replay (MiB): a half to four times the current, and room for every model spread over the nodes. */
export function memoryPerNodeRange(currentMiB: number, largestMiB: number, allMiB: number, nodes: number): number[] {
  if (currentMiB === 0) return [];
  const values = new Set<number>();
  for (const v of [0.5, 0.75, 1.5, 2, 3, 4].map((f) => currentMiB * f).concat(allMiB / nodes)) {
    const mib = Math.ceil(v);
    if (mib >= largestMiB && mib !== currentMiB) values.add(mib);
  }
  return [...values].sort((a, b) => a - b);
}

/** The fewest nodes (current memory) and the least memory (current nodes) whose replay reaches `target`. */
export function meetTarget(
  rows: readonly FleetAdviceRow[],
  current: FleetAdviceRow,
  target: number,
): Pick<FleetAdvice, "nodes_needed" | "max_memory_mb_needed"> {
  const reaches = (r: FleetAdviceRow) => r.hit_rate >= target - 1e-9;
  const byNodes = rows
    .filter((r) => r.max_memory_mb === current.max_memory_mb && reaches(r))
    .sort((a, b) => a.nodes - b.nodes)[0];
  const byMemory = rows
    .filter((r) => r.nodes === current.nodes && reaches(r))
    .sort((a, b) => a.max_memory_mb - b.max_memory_mb)[0];
  return { nodes_needed: byNodes?.nodes ?? null, max_memory_mb_needed: byMemory?.max_memory_mb ?? null };
}

/** The same rows answered for another target hit rate. */
export function retarget(advice: FleetAdvice, target: number): FleetAdvice {
  return { ...advice, target_hit_rate: target, ...meetTarget(advice.rows, advice.current, target) };
}

/** The `[cache.models."NAME"]` copies rules by model key (the trace's names), for the models the log has. */
function rulesByKey(state: CacheState, models: FleetAdviceInput["config"]["models"]): Record<string, CopiesOverride> {
  const rules: Record<string, CopiesOverride> = {};
  for (const m of state.models) {
    const rule = Object.hasOwn(models, m.name) ? models[m.name] : undefined;
    if (rule) rules[m.key] = rule;
  }
  return rules;
}

/** Replays the fleet's merged log; throws `NoRequestLog` when it holds too little. */
export function fleetAdvice(input: FleetAdviceInput): FleetAdvice {
  const { config } = input;
  const limitBytes = memoryLimitBytes(config, input.systemMemoryBytes);
  const currentMiB = Math.floor(limitBytes / MIB);
  const replay = replayOf(input.state, config, limitBytes);
  const { trace, replayed } = replay;
  const node: SimSettings = {
    maxModels: config.max_cached_models,
    maxMemoryBytes: limitBytes,
    warmWindowMs: 0,
    usageHalfLifeHours: config.usage_half_life_hours,
    ttlMs: 0,
  };
  const settings: FleetSimSettings = {
    nodes: input.nodes,
    node,
    policy: config.eviction_policy,
    scaleUpRpm: input.scaleUpRpm,
    rules: rulesByKey(input.state as CacheState, config.models),
    serviceMs: SERVICE_MS,
    heartbeatMs: input.heartbeatMs,
    saveIntervalMs: config.persist_interval_seconds * 1000,
    loadLeaseMs: 30_000,
    feedBlockMs: 1000,
  };
  const row = (varies: FleetAdviceRow["varies"], nodes: number, memoryMiB: number): FleetAdviceRow =>
    replayRow(
      trace,
      {
        ...settings,
        nodes,
        node: { ...node, maxMemoryBytes: memoryMiB === currentMiB ? limitBytes : memoryMiB * MIB },
      },
      varies,
      memoryMiB,
    );

  const current = row("current", input.nodes, currentMiB);
  const rows = [current];
  const allBytes = replayed.reduce((sum, m) => sum + m.memory_bytes, 0);
  const enough = Math.max(
    Math.ceil(replayed.length / Math.max(1, config.max_cached_models)),
    limitBytes > 0 ? Math.ceil(allBytes / limitBytes) : 1,
  );
  for (const n of nodeRange(input.nodes, enough)) if (n !== input.nodes) rows.push(row("nodes", n, currentMiB));
  const largestMiB = Math.ceil(Math.max(...replayed.map((m) => m.memory_bytes)) / MIB);
  for (const mib of memoryPerNodeRange(currentMiB, largestMiB, Math.ceil(allBytes / MIB), input.nodes)) {
    rows.push(row("max_memory_mb", input.nodes, mib));
  }
  rows.sort((a, b) => a.nodes - b.nodes || a.max_memory_mb - b.max_memory_mb);
  const notes = [
    ...replay.notes,
    `each node replayed as this one (max_cached_models = ${config.max_cached_models}, ${currentMiB} MiB); requests reach the nodes in turn, as behind a round-robin balancer`,
    "not replayed: model_ttl_seconds, keep_alive, pins, the warm-up plan and drains; each request keeps its copy busy for 1 s (the log has no durations)",
  ];
  const best = Math.max(...rows.map((r) => r.hit_rate));
  const memoryRows = rows.filter((r) => r.varies === "max_memory_mb");
  if (memoryRows.length > 0 && memoryRows.every((r) => r.hits === current.hits)) {
    notes.push(
      `memory per node changes nothing here: max_cached_models (${config.max_cached_models}) binds first; more nodes, or a higher max_cached_models, would`,
    );
  }
  if (rows.some((r) => r.nodes > ALL_NODES_UP_TO)) {
    notes.push(
      `node counts above ${ALL_NODES_UP_TO} are replayed in steps of about 1.5x: a count between two rows may be enough`,
    );
  }
  return {
    log: {
      requests: replay.allRequests.length,
      models: replay.models.length,
      first: iso(replay.first.at) as string,
      last: iso(replay.last.at) as string,
      span_seconds: replay.spanMs / 1000,
      source:
        "the fleet's request log in Redis: every node's logged requests merged by time with its usage saves (the newest cache.request_log_size kept)",
    },
    current,
    target_hit_rate: input.targetHitRate,
    best_hit_rate: best,
    ...meetTarget(rows, current, input.targetHitRate),
    rows,
    notes,
  };
}

function replayRow(
  trace: Trace,
  settings: FleetSimSettings,
  varies: FleetAdviceRow["varies"],
  memoryMiB: number,
): FleetAdviceRow {
  const result = simulateFleet(trace, settings);
  return {
    varies,
    nodes: settings.nodes,
    max_cached_models: settings.node.maxModels,
    max_memory_mb: memoryMiB,
    hits: result.hits,
    loads: result.loads,
    hit_rate: result.hits / result.requests,
    load_seconds: result.loadMsTotal / 1000,
    forwards: result.forwards,
  };
}
