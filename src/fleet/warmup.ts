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
 * 4. The share back (`planMoves`): a node that joined takes, within what is left of its budget, models from the nodes
 *    that hold more than their share and are pressed for it (full, or serving more than their share of the requests),
 *    up to about its fair share (the models on the planned nodes ÷ the nodes). Such an item names the node it comes
 *    `from`: that node keeps its copy, which becomes the spare one once the move is loaded (the copies rule evicts it
 *    first when the node needs room), so nothing is unloaded at once. Never more copies than the model's `max_copies`.
 */
import { planWarmup, type WarmupCandidate, type WarmupHistory } from "../cache/policy/warmup.js";
import type { Bytes, EpochMilliseconds } from "../models/types.js";
import { DEFAULT_MAX_COPIES } from "./copies.js";
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
  /** The nodes that joined (`replanReason`): they may take models from the others (step 4). Default none. */
  joined?: readonly string[];
  /** The live copies, for the share back: which node holds which model (a loading copy counts, but is never moved). */
  copies?: ReadonlyArray<{ model: string; node: string; ready: boolean }>;
  /** A model's `max_copies` (copies.ts `copiesRule`); default `DEFAULT_MAX_COPIES`. */
  maxCopies?: (model: string) => number;
}

export interface FleetPlanItem {
  model: string;
  node: string;
  /** The memory it is expected to take there. */
  bytes: Bytes;
  /**
   * A share-back move: the node whose copy this one relieves. That node keeps its copy, the spare one once this is
   * loaded; absent for a model nobody held.
   */
  from?: string;
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
  // Held models are ranked too: the share back moves the most valuable first.
  const candidates: WarmupCandidate[] = inputs.history.map((h) => ({
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
  }));
  const ranked = planWarmup(candidates, "hybrid", {
    now: inputs.now,
    maxModels: Number.POSITIVE_INFINITY,
    memoryLimitBytes: 0,
    restoreWindowMs: inputs.restoreWindowMs,
    residentCount: 0,
    residentBytes: 0,
  });
  for (const s of ranked.skipped) if (!held.has(s.name)) skipped.push({ model: s.name, reason: s.reason });

  const items: FleetPlanItem[] = [];
  for (const candidate of ranked.plan) {
    if (held.has(candidate.name)) continue;
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
    take(budget, bytes);
    // The node as placement sees it next: one more model, that much more memory in use.
    node.record = withModel(record, bytes);
    items.push({ model: candidate.name, node: node.id, bytes });
  }
  const byValue = ranked.plan.filter((c) => held.has(c.name));
  items.push(...planMoves(inputs, nodes, budgets, byValue));
  return { items, skipped };
}

function take(budget: Budget, bytes: Bytes): void {
  budget.slots -= 1;
  budget.bytes -= bytes;
}

/** A node as the share back weighs it: its record as the plan leaves it, and its requests per minute. */
interface Weighed {
  node: FleetNodeState & { record: NodeRecord };
  /** What it may give: its ready copies, the models moved off it removed. */
  givable: Set<string>;
  /** What it holds or will: its copies (ready or loading), an earlier plan's items still to load, the moves to it. */
  holds: Set<string>;
  rpm: number;
}

/**
 * Step 4, the share back: moves onto each node that joined, while it holds less than about its fair share, from the
 * most loaded node that holds more than its share and is pressed for it, that node's most valuable model it can take
 * (`byValue`: the held models used within the restore window, most valuable first). `nodes` and `budgets` are the
 * plan's so far, changed as moves are planned.
 */
function planMoves(
  inputs: FleetWarmupInputs,
  nodes: Array<FleetNodeState & { record: NodeRecord | null }>,
  budgets: Map<string, Budget>,
  byValue: readonly WarmupCandidate[],
): FleetPlanItem[] {
  const joined = new Set(inputs.joined ?? []);
  const weighed: Weighed[] = nodes.map((n) => ({
    node: n as Weighed["node"],
    givable: new Set((inputs.copies ?? []).filter((c) => c.node === n.id && c.ready).map((c) => c.model)),
    holds: new Set((inputs.copies ?? []).filter((c) => c.node === n.id).map((c) => c.model)),
    rpm: n.record!.rpm,
  }));
  const targets = weighed.filter((w) => joined.has(w.node.id));
  const sources = weighed.filter((w) => !joined.has(w.node.id));
  if (targets.length === 0 || sources.length === 0) return [];
  const copies = new Map<string, number>();
  for (const c of inputs.copies ?? []) copies.set(c.model, (copies.get(c.model) ?? 0) + 1);
  // An earlier plan's items still to load are copies to come (one not claimed yet is in no copy), and a move among
  // them has left its node's share already.
  for (const item of inputs.pending ?? []) {
    const claimed = (inputs.copies ?? []).some((c) => c.model === item.model && c.node === item.node);
    if (!claimed) copies.set(item.model, (copies.get(item.model) ?? 0) + 1);
    weighed.find((w) => w.node.id === item.node)?.holds.add(item.model);
    if (item.from !== undefined) weighed.find((w) => w.node.id === item.from)?.givable.delete(item.model);
  }
  const maxCopies = inputs.maxCopies ?? (() => DEFAULT_MAX_COPIES);
  // The fair share of a node: the planned nodes' models, memory and requests, evenly spread. Moves change none of them.
  const sum = (of: (w: Weighed) => number) => weighed.reduce((total, w) => total + of(w), 0) / weighed.length;
  const fair = {
    models: sum((w) => w.node.record.model_count),
    memory: sum((w) => w.node.record.memory_used),
    rpm: sum((w) => w.rpm),
  };
  const overShare = (w: Weighed) =>
    w.givable.size > 0 && (w.node.record.model_count > fair.models || w.node.record.memory_used > fair.memory);
  const pressed = (w: Weighed) => isFull(w.node.record) || w.rpm > fair.rpm;

  const items: FleetPlanItem[] = [];
  for (const target of targets) {
    const budget = budgets.get(target.node.id)!;
    while (target.node.record.model_count < Math.round(fair.models) && budget.slots >= 1) {
      let move: { source: Weighed; pick: { model: string; bytes: Bytes } } | null = null;
      for (const source of sources.filter((s) => overShare(s) && pressed(s)).sort(moreLoaded)) {
        const pick = pickMove(source, target, budget, byValue, copies, maxCopies);
        if (pick) {
          move = { source, pick };
          break;
        }
      }
      if (!move) break;
      const { source, pick } = move;
      take(budget, pick.bytes);
      target.node.record = withModel(target.node.record, pick.bytes);
      target.holds.add(pick.model);
      const given = source.node.record;
      source.node.record = {
        ...given,
        model_count: given.model_count - 1,
        memory_used: given.memory_used - pick.bytes,
      };
      source.rpm -= given.traffic?.[pick.model]?.rpm ?? 0;
      source.givable.delete(pick.model);
      copies.set(pick.model, (copies.get(pick.model) ?? 0) + 1);
      items.push({ model: pick.model, node: target.node.id, bytes: pick.bytes, from: source.node.id });
    }
  }
  return items;
}

/** No free slot, or less free memory than the node's models take on average: its next load evicts. */
function isFull(record: NodeRecord): boolean {
  if (record.model_count >= record.model_capacity) return true;
  if (record.memory_capacity <= 0 || record.model_count === 0) return false;
  return record.memory_capacity - record.memory_used < record.memory_used / record.model_count;
}

/** The most loaded first: the most requests, then the fullest (slots or memory), then by id. */
function moreLoaded(a: Weighed, b: Weighed): number {
  const used = (r: NodeRecord) =>
    Math.max(
      r.model_count / Math.max(1, r.model_capacity),
      r.memory_capacity > 0 ? r.memory_used / r.memory_capacity : 0,
    );
  return b.rpm - a.rpm || used(b.node.record) - used(a.node.record) || (a.node.id < b.node.id ? -1 : 1);
}

/**
 * The most valuable of `source`'s models `target` can take: it has the same file and room within its budget, holds no
 * copy, and one copy more stays within the model's `max_copies`. Null when none.
 */
function pickMove(
  source: Weighed,
  target: Weighed,
  budget: Budget,
  byValue: readonly WarmupCandidate[],
  copies: ReadonlyMap<string, number>,
  maxCopies: (model: string) => number,
): { model: string; bytes: Bytes } | null {
  for (const candidate of byValue) {
    const model = candidate.name;
    if (!source.givable.has(model) || target.holds.has(model)) continue;
    if ((copies.get(model) ?? 0) + 1 > maxCopies(model)) continue;
    const file = source.node.record.serves[model];
    const fits = placeModel(candidatesFor(model, [target.node]), { receivedBy: "", ...(file ? { file } : {}) });
    if (fits.node === null) continue;
    const bytes = Math.max(candidate.memoryBytes, target.node.record.serves[model]?.bytes ?? 0);
    if (budget.bytes >= bytes) return { model, bytes };
  }
  return null;
}
