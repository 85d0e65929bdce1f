/**
 * Usage frequency as an exponentially decayed count: each use adds 1, and the count halves every half-life. A model
 * used steadily at r uses/hour settles at r * halfLifeHours / ln 2, so the rate is recovered as count * ln 2 / halfLife.
 */
import type { EpochMilliseconds } from "../../models/types.js";

/** A decayed count and the wall-clock time it was last brought up to date. */
export interface DecayedCount {
  value: number;
  at: EpochMilliseconds;
}

const HOUR_MS = 3600_000;

/** The count as of `now` (times before `at` count as `at`: clocks that step back never inflate the count). */
export function decayedValue(count: DecayedCount | null, now: EpochMilliseconds, halfLifeHours: number): number {
  if (!count) return 0;
  const elapsed = Math.max(0, now - count.at);
  return count.value * 2 ** (-elapsed / (halfLifeHours * HOUR_MS));
}

/** The count after one more use at `now`. */
export function addUse(count: DecayedCount | null, now: EpochMilliseconds, halfLifeHours: number): DecayedCount {
  const next = count ? { ...count } : { value: 0, at: now };
  addUsesInPlace(next, now, 1, halfLifeHours);
  return next;
}

/**
 * `uses` uses at `now`, added to the count itself (the cache's hit path: no allocation). Uses in the millisecond of the
 * last one (or earlier) decay nothing, so a burst of uses costs no exponentiation.
 */
export function addUsesInPlace(count: DecayedCount, now: EpochMilliseconds, uses: number, halfLifeHours: number): void {
  if (now > count.at) {
    count.value = decayedValue(count, now, halfLifeHours);
    count.at = now;
  }
  count.value += uses;
}

/** The decayed count as a rate in uses per hour. */
export function perHour(count: DecayedCount | null, now: EpochMilliseconds, halfLifeHours: number): number {
  return countAsRate(decayedValue(count, now, halfLifeHours), halfLifeHours);
}

/** A decayed count's value as the rate it settles at, in uses per hour (`countOfRate`'s inverse). */
export function countAsRate(value: number, halfLifeHours: number): number {
  return (value * Math.LN2) / halfLifeHours;
}

/** A rate in uses per hour as the decayed count that settles at it (`perHour`'s inverse). */
export function countOfRate(usesPerHour: number, halfLifeHours: number): number {
  return (usesPerHour * halfLifeHours) / Math.LN2;
}

/**
 * The frequency a fleet node weighs a model it holds by: the fleet's usage of it (this node's `local` and the other
 * nodes' `elsewhere`, in one unit) shared over its `copies`, or this node's own when higher (a copy that serves more
 * than its share). A model's requests go to its copies wherever they came in, so its uses on the nodes that held it
 * before tell as much of its future here as the uses this copy served: a hot model that moved starts with one use on
 * its new node, and by its own count would be the first to go there (the bench's Zipf replay on real nodes: the 3rd
 * most used model, whose uses were split over two nodes, went again and again from the one holding it while the 8th,
 * all of whose uses were on its node, kept its slot). On a single node `elsewhere` is 0 and `copies` 1: the local
 * count.
 */
export function fleetFrequency(local: number, elsewhere: number, copies: number): number {
  return Math.max(local, (local + elsewhere) / Math.max(1, copies));
}
