/**
 * Where a model loads in the fleet: one pure function over the nodes' published records (ModelMesh's placement order).
 *
 * 1. Only a node that has the model's file (same name, same size, same sha256 when both sides know it), is not
 *    draining, is not excluded (it failed this request or this model's load), and could hold the model at all
 *    (its estimate fits the node's memory capacity and it may hold at least one model).
 * 2. A node with room (free memory for the model and a free model slot) before a full one.
 * 3. Between nodes with room, one where the model's file is warm (unloaded there minutes ago: a faster load from the
 *    page cache).
 * 4. Between full nodes, one holding a spare copy (copies.ts: the fleet holds that model elsewhere, so evicting it
 *    loses nothing), then the least expected cost: the reload time making room loses over `LOSS_HORIZON_MS` (the
 *    nodes' eviction ladders, in reload time per hour), less what the load saves where the file is warm once the fleet
 *    has measured that saving (`warmSavingMsPerByte`); then a warm file, then the one whose least recently used model
 *    is oldest (it evicts the fleet's coldest model). Without the saving, a warm file ranked after any loss: at 64
 *    nodes most reloads of a model another node had just unloaded went to some other node, cold (the fleet
 *    simulator's Zipf trace: 470 of 3,550 loads, 7 % of its load time); ranked before any loss whatever it saves, it
 *    cost the bench's small Zipf replay, whose files never leave the page cache, 105 loads against 91.
 * 5. Fewest models, then most free memory.
 * 6. Among near-equals of the best (same rank on 2–5, free memory within 10 %, LRU times within a minute — or, given
 *    `now`, within a tenth of the older model's idle time, at least a second), the node that received the request, so
 *    the load costs no extra hop; otherwise the best, ties by id (a stable choice). An extra hop costs a millisecond;
 *    evicting a model used 5 s ago where another node holds one idle for 50 s costs a load soon: with models used
 *    seconds apart, a minute would make every full node "near-equal" and each would evict its own.
 */
import type { Bytes, EpochMilliseconds } from "../models/types.js";
import type { FleetNodeState, ServedModel } from "./types.js";

/** One node as placement sees it. */
export interface PlacementCandidate {
  id: string;
  draining: boolean;
  memoryCapacity: Bytes;
  memoryUsed: Bytes;
  modelCapacity: number;
  modelCount: number;
  /** Last use of its least recently used resident model; null when nothing is resident. */
  lruTime: EpochMilliseconds | null;
  /** Its file of the model (with its memory estimate there), or undefined when it has none. */
  serves: ServedModel | undefined;
  /** Copies it holds that the fleet does not need (absent: none). */
  spareCopies?: number;
  /**
   * Its evictable models in the order its policy evicts them (spare copies first), each with its memory and the
   * reload time evicting it is expected to cost (decayed frequency × measured load time; 0 for a spare copy). Absent:
   * placement ranks full nodes by their least recently used model instead.
   */
  evictable?: ReadonlyArray<{ bytes: Bytes; loss: number }>;
  /** The model's file was unloaded here a few minutes ago, so the page cache likely still holds it (a faster load). */
  warm?: boolean;
}

export interface PlacementRequest {
  /** The model's file as the deciding node knows it; a node with another file of that name is not a candidate. */
  file?: { size: Bytes; sha256?: string };
  /** The node that received the request: preferred among near-equals. */
  receivedBy: string;
  /** Nodes not to choose: they failed this request, or failed to load this model recently. */
  exclude?: ReadonlySet<string>;
  /** Wall-clock now (ms): LRU times are then near-equal relative to their age (rule 5). */
  now?: EpochMilliseconds;
  /**
   * What a warm file saves per byte of the load, as the fleet measured it (`fleetWarmSaving`), or null while unknown:
   * with it, a full node where the model's file is warm counts that saving against the reload time making room loses.
   * Absent: a warm file only breaks ties between full nodes.
   */
  warmSavingMsPerByte?: number | null;
}

/**
 * What a full node's room costs is weighed over this long: its ladder's loss is reload time per hour, a warm file's
 * saving is milliseconds now. About how long a victim would have stayed otherwise: a full node's cheapest models go at
 * its next loads, minutes apart in a busy fleet (64 nodes: one load per node every 3 min in the fleet simulation,
 * whose figures were the same for 2 to 10 minutes).
 */
export const LOSS_HORIZON_MS = 10 * 60_000;

export type Placement =
  | { node: string }
  | {
      node: null;
      /**
       * `no_file`: no node has the model's file; `too_large`: every node that has it is too small for it;
       * `unavailable`: the nodes that could hold it are draining or excluded.
       */
      reason: "no_file" | "too_large" | "unavailable";
    };

/** Free memory within this share of the best's counts as equal. */
const NEAR_MEMORY_SHARE = 0.1;
/** LRU times within this many ms count as equal (without `now`). */
const NEAR_LRU_MS = 60_000;
/** With `now`: LRU times within this share of the older one's idle time count as equal, and within `MIN_NEAR_LRU_MS`. */
const NEAR_LRU_SHARE = 0.1;
const MIN_NEAR_LRU_MS = 1000;

function sameFile(served: ServedModel, file: PlacementRequest["file"]): boolean {
  if (!file) return true;
  if (served.size !== file.size) return false;
  return served.sha256 === undefined || file.sha256 === undefined || served.sha256 === file.sha256;
}

interface Ranked {
  node: PlacementCandidate;
  room: boolean;
  free: Bytes;
  /**
   * What loading here costs a full node: its ladder's loss (over `LOSS_HORIZON_MS` less a warm file's saving, when the
   * load rate is known); undefined without a ladder, Infinity when it cannot make the room.
   */
  loss: number | undefined;
}

/** A full node's cost of the load: the loss making room, over the horizon less a warm file's saving when priced. */
function fullCost(node: PlacementCandidate, bytes: Bytes, saving: number | null | undefined): number | undefined {
  const loss = roomLoss(node, bytes);
  if (loss === undefined || saving === null || saving === undefined) return loss;
  return (loss * LOSS_HORIZON_MS) / 3600_000 - (node.warm ? saving * bytes : 0);
}

/** The expected reload time lost making room for `bytes` on a full node: its ladder taken in order until it covers. */
function roomLoss(node: PlacementCandidate, bytes: Bytes): number | undefined {
  if (!node.evictable) return undefined;
  let count = node.modelCount + 1 - node.modelCapacity;
  let over = node.memoryUsed + bytes - node.memoryCapacity;
  let loss = 0;
  for (const step of node.evictable) {
    if (count <= 0 && over <= 0) break;
    loss += step.loss;
    count--;
    over -= step.bytes;
  }
  return count <= 0 && over <= 0 ? loss : Number.POSITIVE_INFINITY;
}

/** Negative when `a` is the better place. */
function compare(a: Ranked, b: Ranked): number {
  if (a.room !== b.room) return a.room ? -1 : 1;
  const warm = (a.node.warm ?? false) !== (b.node.warm ?? false) ? (a.node.warm ? -1 : 1) : 0;
  if (a.room && warm !== 0) return warm;
  if (!a.room) {
    // Full: a spare copy goes at no loss; else the least expected cost (the loss making room, less a priced warm
    // file's saving); then a warm file.
    const spareA = (a.node.spareCopies ?? 0) > 0;
    const spareB = (b.node.spareCopies ?? 0) > 0;
    if (spareA !== spareB) return spareA ? -1 : 1;
    if (a.loss !== undefined && b.loss !== undefined && a.loss !== b.loss) return a.loss - b.loss;
    if (warm !== 0) return warm;
    // Then the node holding the oldest model evicts the fleet's coldest one. Nothing resident ranks last (nothing
    // to evict, so a full count of zero cannot take a model).
    const lruA = a.node.lruTime ?? Number.POSITIVE_INFINITY;
    const lruB = b.node.lruTime ?? Number.POSITIVE_INFINITY;
    if (lruA !== lruB) return lruA - lruB;
  }
  if (a.node.modelCount !== b.node.modelCount) return a.node.modelCount - b.node.modelCount;
  if (a.free !== b.free) return b.free - a.free;
  return a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0;
}

function nearEqual(best: Ranked, other: Ranked, now: EpochMilliseconds | undefined): boolean {
  if (best.room !== other.room || best.node.modelCount !== other.node.modelCount) return false;
  if ((best.node.warm ?? false) !== (other.node.warm ?? false)) return false;
  if (!best.room) {
    if (best.loss !== other.loss) return false;
    if ((best.node.spareCopies ?? 0) > 0 !== (other.node.spareCopies ?? 0) > 0) return false;
    const a = best.node.lruTime;
    const b = other.node.lruTime;
    if (a === null || b === null) {
      if (a !== b) return false;
    } else {
      const window =
        now === undefined ? NEAR_LRU_MS : Math.max(MIN_NEAR_LRU_MS, NEAR_LRU_SHARE * (now - Math.min(a, b)));
      if (Math.abs(a - b) > window) return false;
    }
  }
  return other.free >= best.free * (1 - NEAR_MEMORY_SHARE);
}

/** The node that should load the model, or why none can. */
export function placeModel(nodes: readonly PlacementCandidate[], request: PlacementRequest): Placement {
  const withFile = nodes.filter((n) => n.serves !== undefined && sameFile(n.serves, request.file));
  if (withFile.length === 0) return { node: null, reason: "no_file" };
  const fitting = withFile.filter((n) => n.modelCapacity >= 1 && (n.serves as ServedModel).bytes <= n.memoryCapacity);
  if (fitting.length === 0) return { node: null, reason: "too_large" };
  const ranked = fitting
    .filter((n) => !n.draining && !request.exclude?.has(n.id))
    .map((node): Ranked => {
      const free = Math.max(0, node.memoryCapacity - node.memoryUsed);
      const bytes = (node.serves as ServedModel).bytes;
      const room = free >= bytes && node.modelCount < node.modelCapacity;
      return { node, room, free, loss: room ? 0 : fullCost(node, bytes, request.warmSavingMsPerByte) };
    })
    .sort(compare);
  const best = ranked[0];
  if (!best) return { node: null, reason: "unavailable" };
  const local = ranked.find((r) => r.node.id === request.receivedBy);
  return { node: local && nearEqual(best, local, request.now) ? local.node.id : best.node.id };
}

/**
 * The placement candidates for `model` among live nodes' records (a node without a record yet is left out).
 * `copiesOn`: how many other models the copies table shows on a node, ready or loading. It is current to the last feed
 * entry, while a record is as old as the node's last heartbeat: a node that claimed two loads a moment ago is full
 * although its record still says empty, so the larger of the two counts.
 */
export function candidatesFor(
  model: string,
  nodes: readonly FleetNodeState[],
  copiesOn: (node: string) => number = () => 0,
): PlacementCandidate[] {
  return nodes.flatMap((n) =>
    n.record
      ? [
          {
            id: n.id,
            draining: n.record.draining,
            memoryCapacity: n.record.memory_capacity,
            memoryUsed: n.record.memory_used,
            modelCapacity: n.record.model_capacity,
            modelCount: Math.max(n.record.model_count, copiesOn(n.id)),
            lruTime: n.record.lru_time,
            serves: Object.hasOwn(n.record.serves, model) ? n.record.serves[model] : undefined,
            ...(n.record.spare_copies ? { spareCopies: n.record.spare_copies } : {}),
            ...(n.record.evictable ? { evictable: n.record.evictable } : {}),
            ...(n.record.warm?.includes(model) ? { warm: true } : {}),
          },
        ]
      : [],
  );
}
