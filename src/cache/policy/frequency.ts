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
  return (decayedValue(count, now, halfLifeHours) * Math.LN2) / halfLifeHours;
}
