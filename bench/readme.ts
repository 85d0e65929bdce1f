/**
 * The README's benchmark table, generated from `bench/results/latest.json` (one home for the figures): the machine,
 * when and how busy each section ran, the one table of figures, the targets missed, and the eviction detail per trace
 * and policy. `npm run bench` rewrites it after each run; `tsx bench/readme.ts --check` (part of `npm run docs:check`)
 * fails when the README does not match the file.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { evictionTable, type EvictionReport } from "./eviction.js";
import { formatTarget, formatValue, readResults, renderTable, type Results } from "./report.js";

const START = "<!-- bench-table:start (generated from bench/results/latest.json by npm run bench; do not edit) -->";
const END = "<!-- bench-table:end -->";
const README = new URL("../README.md", import.meta.url);

function markdownRows(rows: string[][]): string {
  const [header = [], ...body] = rows;
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...body.map(line)].join("\n");
}

export function renderBlock(results: Results, sections: readonly string[]): string {
  const { cpu, cores, memory_gib, node } = results.machine;
  const runs = Object.entries(results.sections)
    .sort(([a], [b]) => sections.indexOf(a) - sections.indexOf(b))
    .map(
      ([name, run]) =>
        `\`${name}\` ${run.date.slice(0, 16).replace("T", " ")} UTC${run.quick ? " (quick)" : ""}, ${run.seconds} s, load average ${run.loadavg.before}→${run.loadavg.after}`,
    );
  const missed = results.figures.filter((f) => f.met === false);
  const complete = results.runs?.complete;
  const whole = complete
    ? ` The last run of every section (${complete.quick ? "quick" : "full"}, ${complete.date.slice(0, 16).replace("T", " ")} UTC) took ${complete.seconds} s in total, load average ${complete.loadavg.before}→${complete.loadavg.after}.`
    : "";
  const lines = [
    `Machine: ${cores} × ${cpu}, ${memory_gib} GiB, Node ${node}. Sections ran: ${runs.join("; ")}.${whole}`,
    "",
    renderTable(results.figures, "markdown", sections),
    "",
    missed.length === 0
      ? "Every target met."
      : `Targets missed (${missed.length} of ${results.figures.filter((f) => f.met !== null).length}): ${missed
          .map((f) => `${f.name} ${formatValue(f.value, f.unit)} (target ${formatTarget(f.target, f.unit)})`)
          .join("; ")}.`,
  ];
  const eviction = results.details.eviction as EvictionReport | undefined;
  if (eviction) {
    const rows = evictionTable(eviction);
    lines.push(
      "",
      "Eviction, every policy's total load time as a multiple of the optimum (or its LP bound), per trace:",
      "",
      markdownRows(rows),
    );
  }
  return lines.join("\n");
}

/** Writes the block into README.md (or, with `check`, tells whether it is current). */
export function updateReadme(results: Results, sections: readonly string[], check = false): boolean {
  const readme = readFileSync(README, "utf8");
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error("README.md has no bench-table markers");
  const updated = `${readme.slice(0, start + START.length)}\n\n${renderBlock(results, sections)}\n\n${readme.slice(end)}`;
  if (updated === readme) return true;
  if (!check) writeFileSync(README, updated);
  return false;
}

/** The sections in the order `npm run bench` runs them (bench/index.ts). */
export const SECTION_ORDER = [
  "cache",
  "loads",
  "server",
  "isolation",
  "coldload",
  "startup",
  "threads",
  "eviction",
] as const;

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await readResults();
  if (!results) throw new Error("bench/results/latest.json is missing or not in the figure shape: run npm run bench");
  const check = process.argv.includes("--check");
  const current = updateReadme(results, SECTION_ORDER, check);
  if (check && !current) {
    console.error("README.md's benchmark table does not match bench/results/latest.json: run `tsx bench/readme.ts`.");
    process.exit(1);
  }
  console.log(check ? "benchmark table is current" : "README.md benchmark table regenerated");
}
