/**
 * The one shape every benchmark figure has, and the one printer. A section measures its subject and its baseline in
 * the same run, in interleaved rounds, and returns `Figure`s; `npm run bench` prints them as ONE table and merges them
 * into `bench/results/latest.json`, from which the README's table is generated (`renderTable(..., "markdown")`).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  keepOthers,
  type Machine,
  machine,
  mergeResultsFile,
  type RunSummary,
  type SectionRun,
} from "../testkit/runner.js";
import { median, type Spread, spreadOf } from "../testkit/stats.js";

/**
 * Where a figure must land. A ratio "≤ 1.15×" is `{ max: 1.15 }`; "≥ 1 M/s" is `{ min: 1e6 }`; "within 10 %" of the
 * baseline is `{ min: 0.9, max: 1.1 }`.
 */
export interface Target {
  min?: number;
  max?: number;
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
  /**
   * Whether `value` is inside `target`; null without a target, and null when its section's A/A control fell outside
   * `AA_BAND` (then `noisy` is set): a figure from a run that cannot tell a variant from itself is neither met nor missed.
   */
  met: boolean | null;
  /** Measured while the section's A/A control lay outside `AA_BAND` (see `withControl`). */
  noisy?: true;
  /** Timed beside an A/A control (`withControl`): set aside as noisy when the control, or the machine, says so. */
  controlled?: true;
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

/** Where a section's A/A control (its baseline measured twice, as two variants) must lie for its figures to count. */
export const AA_BAND: Target = { min: 0.95, max: 1.05 };

/**
 * A section's figures with its A/A control put first: the per-round ratios of the baseline against itself (measured as
 * two variants in the same shuffled rounds). When their median lies outside `AA_BAND`, the run could not tell a variant
 * from itself, and every targeted figure of the section (the control too) is marked `noisy` instead of met or missed.
 */
export function withControl(section: string, control: number[], baseline: string, figures: Figure[]): Figure[] {
  const aa = figure({
    section,
    name: `A/A control: ${baseline} against itself`,
    samples: control,
    unit: "×",
    baseline,
    target: AA_BAND,
    note: "the baseline measured twice as two variants in the same shuffled rounds; outside the band the section is noisy",
  });
  const controlled = [aa, ...figures].map((f): Figure => ({ ...f, controlled: true }));
  return aa.met === false ? markNoisy(controlled) : controlled;
}

/** The figures with the targets of the controlled ones (`withControl`) set aside: neither met nor missed, `noisy`. */
export function markNoisy(figures: readonly Figure[]): Figure[] {
  return figures.map((f) => (f.target === null || !f.controlled ? f : { ...f, met: null, noisy: true }));
}

/**
 * Whether a section ran on a machine too busy to measure: its 1-minute load average, before or after, above the number
 * of cores (other work was waiting for a core the whole time). Its controlled figures are then marked noisy whatever
 * its A/A control read (a control can land inside the band by chance).
 */
export function tooBusy(loadavg: { before: number; after: number }, cores: number): boolean {
  return Math.max(loadavg.before, loadavg.after) > cores;
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

/**
 * A figure's value as `formatValue` prints it, with more decimals (up to 4) where it would print the same as a bound of
 * its target it is not equal to: 0.4015× against ≤ 0.40× reads 0.402×, not a "0.40×" marked missed.
 */
export function formatFigureValue(f: Pick<Figure, "value" | "unit" | "target">): string {
  const { value, unit, target } = f;
  const bounds = [target?.min, target?.max].filter((b): b is number => b !== undefined && b !== value);
  let text = formatNumber(value);
  const shown = text.includes(".") ? text.length - text.indexOf(".") - 1 : 0;
  if (Number.isFinite(value) && !text.includes("e") && bounds.some((b) => b.toFixed(shown) === text)) {
    for (let digits = shown + 1; digits <= 4; digits++) {
      text = value.toFixed(digits);
      if (bounds.every((b) => b.toFixed(digits) !== text)) break;
    }
  }
  return unit === "×" ? `${text}×` : `${text} ${unit}`;
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
    formatFigureValue(f),
    f.baseline ?? "",
    formatTarget(f.target, f.unit),
    f.noisy ? "noisy" : f.met === null ? "" : f.met ? "met" : "MISSED",
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

export type { Machine, SectionRun };
/** One `npm run bench` invocation: which sections it ran and how long it took in total. */
export type BenchRun = RunSummary;

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

/** Results as stored, or null when `parsed` is not (e.g. the file predates this shape). */
function asResults(parsed: unknown): Results | null {
  const r = (parsed ?? {}) as Partial<Results>;
  if (!Array.isArray(r.figures) || typeof r.sections !== "object" || r.sections === null) return null;
  return {
    machine: r.machine ?? machine(),
    ...(r.runs ? { runs: r.runs } : {}),
    sections: r.sections,
    figures: r.figures,
    details: r.details ?? {},
  };
}

/** The stored results, or null when there are none (or the file predates this shape). */
export async function readResults(file = RESULTS_FILE): Promise<Results | null> {
  if (!existsSync(file)) return null;
  return asResults(JSON.parse(await readFile(file, "utf8")));
}

/**
 * Replaces the figures, run and details of the sections in `fresh` and keeps those of sections that did not run (of
 * results from the same machine); written whole, so a crash leaves the previous results (testkit/runner.ts).
 */
export function mergeResults(fresh: Results, file = RESULTS_FILE): Promise<Results> {
  return mergeResultsFile(file, (previous) => {
    const old = asResults(previous);
    const ran = Object.keys(fresh.sections);
    const keep = old && JSON.stringify(old.machine) === JSON.stringify(fresh.machine) ? old : null;
    const runs = { ...keep?.runs, ...fresh.runs };
    return {
      machine: fresh.machine,
      ...(Object.keys(runs).length > 0 ? { runs } : {}),
      sections: keepOthers(keep?.sections, fresh.sections, ran),
      figures: [...(keep?.figures ?? []).filter((f) => !ran.includes(f.section)), ...fresh.figures],
      details: keepOthers(keep?.details, fresh.details, ran),
    };
  });
}
