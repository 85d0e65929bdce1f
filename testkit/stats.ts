/**
 * The statistics the benchmarks report, in one place: one `median` (bench/ had four, three of them the upper middle
 * element, one the mean of the two middle ones). Two ways of comparing a subject with a baseline are in use, and they
 * differ, so each has its own name:
 *
 * - the median of per-round ratios, `median(ratios(subject, baseline))`: rounds are paired (round i of each ran side
 *   by side, `interleaved`), each round gives one ratio and the figure is their median. A burst of other work on the
 *   shared machine lands on one round of both and cancels out; every "×" figure of `npm run bench` is this
 *   (`figure({ samples: ratios(...) })` takes the median).
 * - `ratioOfPercentiles(subject, baseline, p)`: a tail of each distribution (p99 of each), then one division: a tail
 *   is a property of all the rounds, not of one.
 */
import { seededRandom } from "../src/models/gguf-writer.js";

/** The median: the middle value, or the mean of the two middle values when the count is even; NaN for no values. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function nearestRank(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

/** The p-th percentile (0–100) by nearest rank: always one of the values; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  return nearestRank(
    [...values].sort((a, b) => a - b),
    p / 100,
  );
}

/** The spread of a figure's rounds around its median. */
export interface Spread {
  min: number;
  /** 25th and 75th percentiles (nearest rank). */
  p25: number;
  p75: number;
  max: number;
}

export function spreadOf(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? NaN,
    p25: nearestRank(sorted, 0.25),
    p75: nearestRank(sorted, 0.75),
    max: sorted.at(-1) ?? NaN,
  };
}

/** Per-round ratios subject/baseline of paired rounds (round i of each ran next to each other). */
export function ratios(subject: readonly number[], baseline: readonly number[]): number[] {
  if (subject.length !== baseline.length)
    throw new Error(`ratios: ${subject.length} subject rounds vs ${baseline.length} baseline rounds`);
  return subject.map((s, i) => s / (baseline[i] as number));
}

/** The subject's p-th percentile over the baseline's (e.g. p99 against p99). */
export function ratioOfPercentiles(subject: readonly number[], baseline: readonly number[], p: number): number {
  return percentile(subject, p) / percentile(baseline, p);
}

/**
 * The order of `count` variants in each of `rounds` rounds: a fresh shuffle per round (Fisher–Yates on a generator
 * seeded with `seed`, so a run can be replayed). A fixed rotation biased rounds: with the same variant measured twice
 * as two variants (an A/A control) it read 0.81× under rotation and 0.98–0.99× shuffled (issue 25), as whichever
 * variant follows a given one always pays for its aftermath.
 */
export function roundOrders(count: number, rounds: number, seed: number): number[][] {
  const random = seededRandom(seed);
  return Array.from({ length: rounds }, () => {
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    return order;
  });
}

/** A seed for `roundOrders` when the command line gives none: printed with the run, so the run can be replayed. */
export function freshSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

/**
 * Runs `variants` in `rounds` interleaved rounds, in an order shuffled anew each round (`roundOrders` with `seed`), so
 * a burst of other work on a shared machine does not land on one variant only and no variant always follows the same
 * one; `warmup` untimed calls of each first. Returns milliseconds per variant per round (paired: index i of each is one
 * round).
 */
export async function interleaved(
  variants: Array<() => Promise<unknown>>,
  rounds: number,
  options: { seed: number; warmup?: number },
): Promise<number[][]> {
  const { seed, warmup = 1 } = options;
  for (let i = 0; i < warmup; i++) for (const run of variants) await run();
  const times: number[][] = variants.map(() => []);
  for (const order of roundOrders(variants.length, rounds, seed)) {
    for (const index of order) {
      const started = performance.now();
      await variants[index]?.();
      times[index]?.push(performance.now() - started);
    }
  }
  return times;
}
