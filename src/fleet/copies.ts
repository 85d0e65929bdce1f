/**
 * How many copies of a model the fleet keeps, which copy a request goes to, and which copies are extra: pure functions
 * over plain facts (ModelMesh's rules, `kserve/modelmesh` `ModelMesh.java`, with Inferno's per-model settings).
 *
 * - **One copy by default.** A model nobody asks for keeps the copy it has until the fleet needs the room.
 * - **A second copy for regular use, when the fleet has room.** "Regular" is a use streak: the model is used now (within
 *   `RECENT_USE_MS`) and has been used without a pause longer than `REGULAR_GAP_MS` (40 min) since at least
 *   `REGULAR_AFTER_MS` (7 min) ago — ModelMesh's window of 7–40 min. A model asked once an hour is not regular; one asked
 *   every few minutes for a quarter of an hour is. "Room": over a tenth of the fleet's memory is free and some node
 *   that does not hold the model has a free slot and the memory for it, so the copy evicts nothing.
 * - **More copies while each copy's requests per minute stay above `scale_up_rpm`**, up to `max_copies` and the nodes
 *   that can hold the model. When the fleet is full, only while requests wait for the copies (`contended`): a model
 *   that busy is worth more than the coldest model somewhere else, but fast requests one at a time reach a high rate
 *   with no request ever waiting, and a copy for them would only evict models the fleet loads again.
 * - **`min_copies` and `pinned`**: the fleet keeps at least `min_copies` (pinned: at least one) whatever the traffic.
 * - **Extra copies go first.** When a node must evict, copies beyond what the rule wants now go before any model of
 *   which the fleet holds one copy; the oldest copy of a model is never the extra one, so two holders never drop the
 *   last two copies at once.
 * - **Routing over copies** follows the holders' queues (requests in flight), not chance.
 */
import { DEFAULT_SCALE_UP_RPM } from "../config/schema.js";
import type { PlacementCandidate } from "./placement.js";

/** `fleet.scale_up_rpm`'s default, and how it is derived: config/schema.ts. */
export { DEFAULT_SCALE_UP_RPM };

const MINUTE_MS = 60_000;
/** A use within this long counts as "used now". */
export const RECENT_USE_MS = MINUTE_MS;
/** A streak of use this long (or longer) makes a model "used regularly". */
export const REGULAR_AFTER_MS = 7 * MINUTE_MS;
/** A pause longer than this ends a streak of use. */
export const REGULAR_GAP_MS = 40 * MINUTE_MS;
/** Copies of one model at most when `max_copies` is not set. */
export const DEFAULT_MAX_COPIES = 4;

/**
 * A model's requests per minute are measured over this window and scaled to a minute, so a copy added for a burst turns
 * spare soon after the burst ends.
 */
export const RATE_WINDOW_MS = 20_000;

/**
 * Requests per minute at `now` from the request times `recent` (oldest first), measured over `RATE_WINDOW_MS`. Drops
 * the times before the window from `recent` (the one caller-owned list it changes).
 */
export function ratePerMinute(recent: number[], now: number): number {
  let drop = 0;
  while (drop < recent.length && (recent[drop] as number) <= now - RATE_WINDOW_MS) drop++;
  if (drop > 0) recent.splice(0, drop);
  return (recent.length * MINUTE_MS) / RATE_WINDOW_MS;
}

/** A model's current streak of use (wall-clock ms): when it began and the latest use. */
export interface UseStreak {
  since: number;
  last: number;
}

/** The streak after a use at `now`: a pause longer than `REGULAR_GAP_MS` starts a new one. */
export function recordUse(streak: UseStreak | null | undefined, now: number): UseStreak {
  if (!streak || now - streak.last > REGULAR_GAP_MS) return { since: now, last: now };
  return { since: streak.since, last: Math.max(streak.last, now) };
}

/** Whether a model with this streak is used regularly at `now`: used now, and for `REGULAR_AFTER_MS` already. */
export function usedRegularly(streak: UseStreak | null | undefined, now: number): boolean {
  if (!streak) return false;
  return now - streak.last <= RECENT_USE_MS && streak.last - streak.since >= REGULAR_AFTER_MS;
}

/** A model's requests as a node counts them for the rule: the times within the rate window (oldest first), its streak. */
export interface ModelUse {
  recent: number[];
  streak: UseStreak | null;
}

/** Counts a request for the model at `now`. */
export function countUse(use: ModelUse, now: number): void {
  use.recent.push(now);
  use.streak = recordUse(use.streak, now);
}

/** One model's copies rule, from `[cache.models."NAME"]` and `fleet.scale_up_rpm`. */
export interface CopiesRule {
  minCopies: number;
  maxCopies: number;
  scaleUpRpm: number;
}

/** The per-model settings the rule reads (`[cache.models."NAME"]`). */
export interface CopiesOverride {
  min_copies?: number | undefined;
  max_copies?: number | undefined;
  pinned?: boolean | undefined;
}

/** The rule for a model: its `min_copies`/`max_copies`, `pinned` meaning at least one copy. */
export function copiesRule(override: CopiesOverride | undefined, scaleUpRpm = DEFAULT_SCALE_UP_RPM): CopiesRule {
  const minCopies = Math.max(override?.min_copies ?? 0, override?.pinned ? 1 : 0);
  const maxCopies = Math.max(override?.max_copies ?? DEFAULT_MAX_COPIES, minCopies, 1);
  return { minCopies, maxCopies, scaleUpRpm };
}

/** What the rule weighs for one model at one instant. */
export interface CopiesFacts {
  /** Requests per minute to the model over all its copies. */
  rpm: number;
  /** Its use streak makes it regular (`usedRegularly`). */
  regular: boolean;
  /** A node that does not hold it has room for it (a free slot and the memory: the copy evicts nothing). */
  room: boolean;
  /** Its copies have more requests in flight than there are copies (`contended`): some request waits for one. */
  contended: boolean;
  /** Nodes that could hold a copy (have its file, fit it, not draining): never more copies than these. */
  eligibleNodes: number;
}

/**
 * The rule's facts for a model at `now`: its requests per minute and streak over all its copies, whether requests wait
 * for its `copies` (`contended`), and the fleet beside its holders — `nodes` as placement sees them for the model;
 * `eligible` their `eligibleNodes` when already known.
 */
export function copiesFacts(
  use: { rpm: number; streak: UseStreak | null },
  copies: readonly CopyView[],
  nodes: readonly PlacementCandidate[],
  now: number,
  eligible = eligibleNodes(nodes),
): CopiesFacts {
  return {
    rpm: use.rpm,
    regular: usedRegularly(use.streak, now),
    room: fleetHasRoom(nodes, new Set(copies.map((c) => c.node))),
    contended: contended(copies),
    eligibleNodes: eligible,
  };
}

/** How many copies the fleet should hold of a model now (0 for a model nobody asks for and nothing pins). */
export function wantedCopies(facts: CopiesFacts, rule: CopiesRule): number {
  let want = facts.rpm > 0 || facts.regular ? 1 : 0;
  if (facts.regular && facts.room) want = 2;
  // A rate copy that takes a slot evicts a model the fleet will load again: only for copies that are busy.
  if (rule.scaleUpRpm > 0 && (facts.room || facts.contended))
    want = Math.max(want, Math.ceil(facts.rpm / rule.scaleUpRpm));
  want = Math.min(want, rule.maxCopies);
  return Math.max(0, Math.min(Math.max(want, rule.minCopies), facts.eligibleNodes));
}

/**
 * Whether the fleet should load one more copy of a model that has `copies` live copies (ready or loading): below what
 * the rule wants, and no copy is still loading (copies are added one at a time, each once the previous one is in).
 */
export function addCopy(copies: number, loading: number, wanted: number): boolean {
  return copies > 0 && loading === 0 && copies < wanted;
}

/**
 * The share of the fleet's memory that must be free for a copy added for regular use: below it the fleet is "full" and
 * keeps one copy per model (ModelMesh scales copies down at 5 % free; a second copy needs twice that). The fleet
 * simulator measured it: at 0 the copies, evicted first as spares and added again as soon as a node has a gap,
 * churned for 4 % more load time on a Zipf trace; at 10 % for under 1 %.
 */
export const ROOM_FREE_SHARE = 0.1;

/**
 * Whether the fleet has room for one more copy of a model: more than `ROOM_FREE_SHARE` of its memory is free (of the
 * nodes that are not draining), and some node outside `holders` has a free slot and memory for the model's estimate.
 */
export function fleetHasRoom(nodes: readonly PlacementCandidate[], holders: ReadonlySet<string>): boolean {
  let free = 0;
  let capacity = 0;
  for (const n of nodes) {
    if (n.draining) continue;
    free += Math.max(0, n.memoryCapacity - n.memoryUsed);
    capacity += n.memoryCapacity;
  }
  if (capacity > 0 && free <= ROOM_FREE_SHARE * capacity) return false;
  return nodes.some(
    (n) =>
      !holders.has(n.id) &&
      !n.draining &&
      n.serves !== undefined &&
      n.modelCount < n.modelCapacity &&
      n.memoryCapacity - n.memoryUsed >= n.serves.bytes,
  );
}

/** Nodes that could hold a copy of the model: they have its file, fit it, and are not draining. */
export function eligibleNodes(nodes: readonly PlacementCandidate[]): number {
  return nodes.filter(
    (n) => !n.draining && n.serves !== undefined && n.modelCapacity >= 1 && n.serves.bytes <= n.memoryCapacity,
  ).length;
}

/** A copy as routing and the extras rule see it. */
export interface CopyView {
  node: string;
  /**
   * When the copy was claimed, then when it became ready (Redis ms): the oldest copy is the one the fleet keeps. A
   * copy that gave way to a share-back move (warmup.ts) carries the time it did, so the moved copy is the older.
   */
  since: number;
  /** Requests in flight on that node for this model (0 when unknown). */
  queue: number;
}

/** Whether the copies have more requests in flight than there are copies: some request waits for a copy. */
export function contended(copies: readonly CopyView[]): boolean {
  return copies.reduce((sum, c) => sum + c.queue, 0) > copies.length;
}

/** Copies oldest first, ties by node id: a stable order every node computes alike. */
function oldestFirst(a: CopyView, b: CopyView): number {
  return a.since - b.since || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);
}

/**
 * Whether `node`'s copy is extra: the model has more copies than it wants, and `node`'s is not among the `wanted`
 * oldest. Every holder computes the same answer from the same copies, so the oldest copies stay.
 */
export function isExtraCopy(copies: readonly CopyView[], wanted: number, node: string): boolean {
  if (copies.length <= Math.max(1, wanted)) return false;
  const keep = [...copies].sort(oldestFirst).slice(0, Math.max(1, wanted));
  return copies.some((c) => c.node === node) && !keep.some((c) => c.node === node);
}

/**
 * The copy a request goes to: the shortest queue; among equal queues the receiving node's own copy (no hop), then the
 * oldest copy. Undefined when there is no copy.
 */
export function pickCopy(copies: readonly CopyView[], receivedBy: string): CopyView | undefined {
  let best: CopyView | undefined;
  for (const copy of copies) {
    if (!best || better(copy, best, receivedBy)) best = copy;
  }
  return best;
}

function better(a: CopyView, b: CopyView, receivedBy: string): boolean {
  if (a.queue !== b.queue) return a.queue < b.queue;
  if ((a.node === receivedBy) !== (b.node === receivedBy)) return a.node === receivedBy;
  return oldestFirst(a, b) < 0;
}
