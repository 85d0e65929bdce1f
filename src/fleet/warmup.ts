/**
 * The fleet's warm-up plan: one pure function over the fleet's usage and the live nodes' records (ModelMesh's
 * proactive loading). The leader (leader.ts) runs it after a fleet start or when a node joins, and each node loads its
 * part.
 *
 * 1. The models used within the restore window, ranked as the single-node warm-up ranks them (cache/policy/warmup.ts:
 *    decayed frequency × measured load time, then the never-measured ones, most recent first).
 * 2. A model that has a live copy anywhere is left out: no model twice.
 * 3. Each goes where placement (placement.ts) puts it, within the warm-up budget: about half of each node's free
 *    memory and half its free model slots (rounded up), so a plan never fills the fleet and leaves room for traffic.
 *    A model with no node within budget is skipped, and smaller ones after it may still be planned.
 */
import { planWarmup, type WarmupCandidate, type WarmupHistory } from "../cache/policy/warmup.js";
import type { Bytes, EpochMilliseconds } from "../models/types.js";
import { candidatesFor, placeModel } from "./placement.js";
import type { FleetNodeState, NodeRecord } from "./types.js";

/** The share of each node's free memory (and free slots) a warm-up plan may fill. */
export const WARMUP_SHARE = 0.5;

export interface FleetWarmupInputs {
  /** Wall-clock now (the usage's `last_used_at` are wall-clock times). */
  now: EpochMilliseconds;
  /** Only models used this recently (ms); 0 = no limit. */
  restoreWindowMs: number;
  /** The fleet's usage, one entry per model name (`key` is ignored: the fleet names models by name). */
  history: readonly WarmupHistory[];
  /** The live nodes with their records (draining ones and ones without a record are never planned on). */
  nodes: readonly FleetNodeState[];
  /** Models with a live copy on some node. */
  held: ReadonlySet<string>;
  /**
   * Items of an earlier plan their node has still to load: held as well, and counted in their node's use (its record
   * does not show them yet).
   */
  pending?: readonly FleetPlanItem[];
  /** Default `WARMUP_SHARE`. */
  share?: number;
}

export interface FleetPlanItem {
  model: string;
  node: string;
  /** The memory it is expected to take there. */
  bytes: Bytes;
}

export interface FleetWarmupPlan {
  /** In loading order: the most valuable first. */
  items: FleetPlanItem[];
  skipped: Array<{ model: string; reason: string }>;
}

/** The plan as the leader stores it in Redis (`plan`), and as `/v1/fleet` shows it. */
export interface FleetPlan {
  /** `<epoch>:<Redis ms>`: a new plan has a new id. */
  id: string;
  /** The leader's fencing epoch when it planned, and the leader. */
  epoch: number;
  leader: string;
  created_at: number;
  /** The live nodes planned over: node id → its `started_at` (a node that restarted is a new one). */
  nodes: Record<string, number>;
  items: FleetPlanItem[];
  skipped: FleetWarmupPlan["skipped"];
}

/** An item's state on its node; absent: not started. */
export type FleetPlanItemState = "loading" | "loaded" | "failed";

/**
 * Why the leader plans again over `nodes` (the live nodes a plan may use: id → `started_at`), or null when the stored
 * `plan` stands:
 * - `joined`: there is no plan yet, or a live node it does not name (a fleet start, a node that joined or restarted);
 * - `lost`: a node it names is gone (dead, draining or restarted) with items of its part not settled (`progress` says
 *   neither loaded nor failed). Nobody loads them any more, so the plan would never settle: the models go to a new
 *   plan over the nodes left (the gone node's copies are no longer live, so they are not held).
 */
export function replanReason(
  plan: FleetPlan | null,
  progress: Readonly<Record<string, FleetPlanItemState>>,
  nodes: Readonly<Record<string, number>>,
): { kind: "joined"; nodes: string[] } | { kind: "lost"; items: FleetPlanItem[] } | null {
  const live = Object.keys(nodes);
  if (plan === null) return live.length > 0 ? { kind: "joined", nodes: live } : null;
  const joined = live.filter((id) => plan.nodes[id] !== nodes[id]);
  if (joined.length > 0) return { kind: "joined", nodes: joined };
  const lost = plan.items.filter((item) => {
    const state = progress[`${item.model}@${item.node}`];
    return nodes[item.node] !== plan.nodes[item.node] && state !== "loaded" && state !== "failed";
  });
  return lost.length > 0 ? { kind: "lost", items: lost } : null;
}

interface Budget {
  bytes: number;
  slots: number;
}

function budgetOf(node: FleetNodeState, share: number): Budget {
  const record = node.record!;
  // A memory capacity of 0 means no memory limit: slots bound the plan alone.
  const freeBytes =
    record.memory_capacity > 0 ? Math.max(0, record.memory_capacity - record.memory_used) : Number.MAX_SAFE_INTEGER;
  const freeSlots = Math.max(0, record.model_capacity - record.model_count);
  return { bytes: Math.floor(freeBytes * share), slots: Math.ceil(freeSlots * share) };
}

/** The record with one more model of `bytes` in use. */
function withModel(record: NodeRecord, bytes: Bytes): NodeRecord {
  return { ...record, model_count: record.model_count + 1, memory_used: record.memory_used + bytes };
}

/** What to load where after a fleet start or a join. */
export function planFleetWarmup(inputs: FleetWarmupInputs): FleetWarmupPlan {
  const share = inputs.share ?? WARMUP_SHARE;
  // Copies: the plan so far changes the records placement sees, never the caller's.
  const nodes = inputs.nodes.filter((n) => n.record !== null).map((n) => ({ ...n }));
  const held = new Set(inputs.held);
  for (const item of inputs.pending ?? []) {
    held.add(item.model);
    const node = nodes.find((n) => n.id === item.node);
    if (node) node.record = withModel(node.record!, item.bytes);
  }
  const budgets = new Map(nodes.map((n) => [n.id, budgetOf(n, share)]));
  const skipped: FleetWarmupPlan["skipped"] = [];
  const candidates: WarmupCandidate[] = [];
  for (const h of inputs.history) {
    if (held.has(h.name)) continue;
    candidates.push({
      key: h.name,
      name: h.name,
      pinned: false,
      alwaysWarmIndex: null,
      lastUsedAt: h.lastUsedAt,
      frequency: h.frequency,
      avgLoadMs: h.avgLoadMs,
      memoryBytes: h.memoryBytes ?? 0,
      fileChanged: false,
      loaded: false,
    });
  }
  const ranked = planWarmup(candidates, "hybrid", {
    now: inputs.now,
    maxModels: Number.POSITIVE_INFINITY,
    memoryLimitBytes: 0,
    restoreWindowMs: inputs.restoreWindowMs,
    residentCount: 0,
    residentBytes: 0,
  });
  for (const s of ranked.skipped) skipped.push({ model: s.name, reason: s.reason });

  const items: FleetPlanItem[] = [];
  for (const candidate of ranked.plan) {
    // Placement over the nodes as they would be with the plan so far, each node's room cut to its remaining budget.
    const placed = placeModel(
      candidatesFor(candidate.name, nodes).map((c) => {
        const budget = budgets.get(c.id)!;
        return { ...c, memoryCapacity: c.memoryUsed + budget.bytes, modelCapacity: c.modelCount + budget.slots };
      }),
      { receivedBy: "" },
    );
    if (placed.node === null) {
      skipped.push({
        model: candidate.name,
        reason: placed.reason === "no_file" ? "no live node has its file" : "no room within the warm-up budget",
      });
      continue;
    }
    const node = nodes.find((n) => n.id === placed.node)!;
    const record = node.record!;
    const bytes = Math.max(candidate.memoryBytes, record.serves[candidate.name]?.bytes ?? 0);
    const budget = budgets.get(node.id)!;
    if (budget.slots < 1 || budget.bytes < bytes) {
      skipped.push({ model: candidate.name, reason: "no room within the warm-up budget" });
      continue;
    }
    budget.slots -= 1;
    budget.bytes -= bytes;
    // The node as placement sees it next: one more model, that much more memory in use.
    node.record = withModel(record, bytes);
    items.push({ model: candidate.name, node: node.id, bytes });
  }
  return { items, skipped };
}
