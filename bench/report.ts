/**
 * The one shape every benchmark figure has, and the one printer. A section measures its subject and its baseline in
 * the same run, in interleaved rounds, and returns `Figure`s; `npm run bench` prints them as ONE table and merges them
 * into `bench/results/latest.json`, from which the README's table is generated (`renderTable(..., "markdown")`).
 */
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../src/fs/atomic-write.js";
import { GIB } from "../src/units.js";

/**
 * Where a figure must land. A ratio "≤ 1.15×" is `{ max: 1.15 }`; "≥ 1 M/s" is `{ min: 1e6 }`; "within 10 %" of the
 * baseline is `{ min: 0.9, max: 1.1 }`.
 */
export interface Target {
  min?: number;
  max?: number;
}

/** Median and spread over the rounds a figure was measured in (one sample per round). */
export interface Spread {
  min: number;
  /** 25th and 75th percentiles (nearest rank). */
  p25: number;
  p75: number;
  max: number;
}

export interface Figure {
  /** The `--only` section that measured it. */
  section: string;
  /** Issue 13's figure number it answers (e.g. "1.6"), when it answers one. */
  item?: string;
  name: string;
  /** The median over the rounds (or the one value, when the figure is not timed, e.g. a count). */
  value: number;
  /** "×" for ratios, else the unit of `value` ("ms", "M/s", "%", "loads", ...). */
  unit: string;
  /** What a ratio is a ratio against, measured in the same run; null when the value stands alone. */
  baseline: string | null;
  target: Target | null;
  /** Whether `value` is inside `target`; null without a target. */
  met: boolean | null;
  spread: Spread | null;
  /** Rounds the median is over (1 for a single measurement). */
  rounds: number;
  /** Context for a reader: absolute times on this machine, what dominates, ... */
  note?: string;
}

export type FigureInput = Omit<Figure, "met" | "spread" | "rounds" | "value" | "target" | "baseline"> & {
  /** One value per round (the median becomes `value`), or one value. */
  samples: number[] | number;
  baseline?: string | null;
  target?: Target | null;
};

function nearestRank(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** The p-th percentile (0–100, nearest rank). */
export function percentile(values: number[], p: number): number {
  return nearestRank(
    [...values].sort((a, b) => a - b),
    p / 100,
  );
}

export function spreadOf(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? NaN,
    p25: nearestRank(sorted, 0.25),
    p75: nearestRank(sorted, 0.75),
    max: sorted.at(-1) ?? NaN,
  };
}

export function meets(value: number, target: Target | null): boolean | null {
  if (target === null) return null;
  if (!Number.isFinite(value)) return false;
  return (target.min === undefined || value >= target.min) && (target.max === undefined || value <= target.max);
}

/** A figure from its samples: the median is the value, the spread is over the rounds, `met` follows the target. */
export function figure(input: FigureInput): Figure {
  const { samples, baseline = null, target = null, ...rest } = input;
  const values = typeof samples === "number" ? [samples] : samples;
  const value = median(values);
  return {
    ...rest,
    value,
    baseline,
    target,
    met: meets(value, target),
    spread: values.length > 1 ? spreadOf(values) : null,
    rounds: values.length,
  };
}

/** Per-round ratios subject/baseline (rounds are paired: round i of each ran next to each other). */
export function ratios(subject: number[], baseline: number[]): number[] {
  if (subject.length !== baseline.length)
    throw new Error(`ratios: ${subject.length} subject rounds vs ${baseline.length} baseline rounds`);
  return subject.map((s, i) => s / (baseline[i] as number));
}

/**
 * Runs `variants` in `rounds` interleaved rounds, rotating their order each round so a burst of other work on a shared
 * machine does not land on one variant only; `warmup` untimed calls of each first. Returns milliseconds per variant per
 * round.
 */
export async function interleaved(
  variants: Array<() => Promise<unknown>>,
  rounds: number,
  warmup = 1,
): Promise<number[][]> {
  for (let i = 0; i < warmup; i++) for (const run of variants) await run();
  const times: number[][] = variants.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < variants.length; k++) {
      const index = (round + k) % variants.length;
      const started = performance.now();
      await variants[index]?.();
      times[index]?.push(performance.now() - started);
    }
  }
  return times;
}

// ---------------------------------------------------------------------------------------------------------------------
// Printing

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs === 0 || (Number.isInteger(value) && abs < 1e6)) return String(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 0.01) return value.toFixed(2);
  return value.toPrecision(2);
}

export function formatValue(value: number, unit: string): string {
  return unit === "×" ? `${formatNumber(value)}×` : `${formatNumber(value)} ${unit}`;
}

export function formatTarget(target: Target | null, unit: string): string {
  if (target === null) return "";
  const v = (x: number) => formatValue(x, unit);
  if (target.min !== undefined && target.min === target.max) return `= ${v(target.min)}`;
  if (target.min !== undefined && target.max !== undefined) return `${v(target.min)}–${v(target.max)}`;
  if (target.max !== undefined) return `≤ ${v(target.max)}`;
  if (target.min !== undefined) return `≥ ${v(target.min)}`;
  return "";
}

function formatSpread(f: Figure): string {
  if (f.spread === null) return "";
  const n = (x: number) => formatNumber(x);
  return `${n(f.spread.min)} [${n(f.spread.p25)}–${n(f.spread.p75)}] ${n(f.spread.max)}`;
}

const HEADER = ["item", "figure", "value", "against", "target", "", "min [p25–p75] max", "rounds", "note"];

function row(f: Figure): string[] {
  return [
    f.item ?? "",
    f.name,
    formatValue(f.value, f.unit),
    f.baseline ?? "",
    formatTarget(f.target, f.unit),
    f.met === null ? "" : f.met ? "met" : "MISSED",
    formatSpread(f),
    String(f.rounds),
    f.note ?? "",
  ];
}

/**
 * The figures as one table, grouped by section in `sections`' order: aligned text for the terminal, or a Markdown
 * table for the README.
 */
export function renderTable(figures: Figure[], format: "text" | "markdown", sections: readonly string[] = []): string {
  const order = (s: string) => (sections.includes(s) ? sections.indexOf(s) : sections.length);
  const sorted = figures.map((f, i) => ({ f, i })).sort((a, b) => order(a.f.section) - order(b.f.section) || a.i - b.i);
  if (format === "markdown") {
    const escape = (cell: string) => cell.replaceAll("|", "\\|");
    const lines = [
      `| section | ${HEADER.map((h) => h || "status").join(" | ")} |`,
      `| --- | ${HEADER.map(() => "---").join(" | ")} |`,
    ];
    for (const { f } of sorted) lines.push(`| ${f.section} | ${row(f).map(escape).join(" | ")} |`);
    return lines.join("\n");
  }
  const rows = [["section", ...HEADER], ...sorted.map(({ f }) => [f.section, ...row(f)])];
  const last = rows[0]?.length ?? 0;
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const lines: string[] = [];
  let previous = "";
  for (const [index, cells] of rows.entries()) {
    if (index > 1 && cells[0] !== previous) lines.push("");
    previous = cells[0] ?? "";
    lines.push(
      cells
        .map((c, i) => (i === last - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    );
    if (index === 0) lines.push(widths.map((w) => "-".repeat(w)).join("  "));
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------------------------------
// bench/results/latest.json

export interface Machine {
  cpu: string;
  cores: number;
  memory_gib: number;
  node: string;
}

/** When and how one section last ran. */
export interface SectionRun {
  date: string;
  quick: boolean;
  seconds: number;
  /** 1-minute load average before and after: how busy the (shared) machine was. */
  loadavg: { before: number; after: number };
}

/** One `npm run bench` invocation: which sections it ran and how long it took in total. */
export interface BenchRun {
  date: string;
  quick: boolean;
  sections: string[];
  seconds: number;
  loadavg: { before: number; after: number };
}

export interface Results {
  machine: Machine;
  /** The last invocation that ran every section (a full or a quick run of all of them), and the last one of any kind. */
  runs?: { complete?: BenchRun; last?: BenchRun };
  /** Per section: its last run. `--only` reruns one section and keeps the others' figures. */
  sections: Record<string, SectionRun>;
  figures: Figure[];
  /** Per section: detail too large for the table (e.g. the eviction figures per trace and policy). */
  details: Record<string, unknown>;
}

export const RESULTS_FILE = join(import.meta.dirname, "results", "latest.json");

export function machine(): Machine {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / GIB),
    node: process.version,
  };
}

export function loadAverage(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

/** The stored results, or null when there are none (or the file predates this shape). */
export async function readResults(file = RESULTS_FILE): Promise<Results | null> {
  if (!existsSync(file)) return null;
  const parsed = JSON.parse(await readFile(file, "utf8")) as Partial<Results>;
  if (!Array.isArray(parsed.figures) || typeof parsed.sections !== "object" || parsed.sections === null) return null;
  return {
    machine: parsed.machine ?? machine(),
    ...(parsed.runs ? { runs: parsed.runs } : {}),
    sections: parsed.sections,
    figures: parsed.figures,
    details: parsed.details ?? {},
  };
}

/**
 * Replaces the figures, run and details of the sections in `fresh` and keeps those of sections that did not run;
 * writes the file whole (a temporary file renamed over it) so a crash leaves the previous results.
 */
export async function mergeResults(fresh: Results, file = RESULTS_FILE): Promise<Results> {
  const old = await readResults(file);
  const ran = new Set(Object.keys(fresh.sections));
  const keep = old && JSON.stringify(old.machine) === JSON.stringify(fresh.machine) ? old : null;
  const runs = { ...keep?.runs, ...fresh.runs };
  const merged: Results = {
    machine: fresh.machine,
    ...(Object.keys(runs).length > 0 ? { runs } : {}),
    sections: {
      ...Object.fromEntries(Object.entries(keep?.sections ?? {}).filter(([s]) => !ran.has(s))),
      ...fresh.sections,
    },
    figures: [...(keep?.figures ?? []).filter((f) => !ran.has(f.section)), ...fresh.figures],
    details: {
      ...Object.fromEntries(Object.entries(keep?.details ?? {}).filter(([s]) => !ran.has(s))),
      ...fresh.details,
    },
  };
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(merged, null, 2)}\n`);
  return merged;
}
