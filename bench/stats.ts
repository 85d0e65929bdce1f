/** The figures benchmarks report: the median of interleaved runs with their spread, and ratios against a target. */
import { loadavg } from "node:os";

/** Runs of one measurement: the median, the fastest and slowest, and how many. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] ?? NaN, min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN, runs: sorted.length };
}

/** A ratio of two medians measured in the same run, against its target (`at_most` or `at_least`). */
export interface Ratio {
  value: number;
  target: number;
  direction: "at_most" | "at_least";
  met: boolean;
}

export function ratio(numerator: Spread, denominator: Spread, target: number, direction: Ratio["direction"]): Ratio {
  const value = numerator.median / denominator.median;
  return { value, target, direction, met: direction === "at_most" ? value <= target : value >= target };
}

/** "×1.04 (target ≤ 1.10: met)". */
export function formatRatio(r: Ratio): string {
  return `×${r.value.toFixed(2)} (target ${r.direction === "at_most" ? "≤" : "≥"} ${r.target.toFixed(2)}: ${r.met ? "met" : "missed"})`;
}

/** "139 ms (126–160)". */
export function formatSpread(s: Spread, unit: string, digits = 0): string {
  return `${s.median.toFixed(digits)} ${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** The 1-minute load average, which says how busy the machine was. */
export function load1(): number {
  return Number((loadavg()[0] ?? 0).toFixed(2));
}

export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await work();
  return { ms: performance.now() - start, value };
}
