/**
 * The benchmark block of docs/benchmarks.md, rendered from `bench/results/latest.json` (one home for the figures): the
 * machine, the one table of figures, the targets missed, and the eviction detail per trace and policy. When each
 * section ran and how busy the machine was stay in the results file. scripts/docs.ts splices it into the page (after
 * every `npm run bench`, and `npm run docs:check` fails when the page does not match the file).
 */
import { evictionTable, type EvictionReport } from "./eviction.js";
import { AA_BAND, formatFigureValue, formatTarget, renderTable, type Results } from "./report.js";

function markdownRows(rows: string[][]): string {
  const [header = [], ...body] = rows;
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...body.map(line)].join("\n");
}

export function renderBlock(results: Results, sections: readonly string[]): string {
  const { cpu, cores, memory_gib, node } = results.machine;
  const missed = results.figures.filter((f) => f.met === false);
  const complete = results.runs?.complete;
  const whole = complete
    ? ` The last run of every section (${complete.quick ? "quick" : "full"}) took ${complete.seconds} s in total.`
    : "";
  const noisy = results.figures.filter((f) => f.noisy).length;
  const lines = [
    `Machine: ${cores} × ${cpu}, ${memory_gib} GiB, Node ${node}.${whole}`,
    "",
    renderTable(results.figures, "markdown", sections),
    "",
    missed.length === 0
      ? "Every target met."
      : `Targets missed (${missed.length} of ${results.figures.filter((f) => f.met !== null).length}): ${missed
          .map((f) => `${f.name} ${formatFigureValue(f)} (target ${formatTarget(f.target, f.unit)})`)
          .join("; ")}.`,
    ...(noisy === 0
      ? []
      : [
          "",
          `Noisy (${noisy}): figures of sections whose A/A control lay outside ${formatTarget(AA_BAND, "×")} or that ran with a load average above the cores (a busy machine), neither met nor missed; run them again on a quiet machine.`,
        ]),
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

/** The sections in the order `npm run bench` runs them (bench/index.ts). */
export const SECTION_ORDER = [
  "cache",
  "loads",
  "server",
  "concurrency",
  "latency",
  "isolation",
  "coldload",
  "startup",
  "threads",
  "eviction",
  "prompt",
  "fleet",
  "fleet-sim",
] as const;
