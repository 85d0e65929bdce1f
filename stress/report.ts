/**
 * The table of docs/reliability.md, rendered from a full `npm run stress` run (the one home of those figures is
 * `stress/results/latest.json`, which also keeps when each scenario ran and how busy the machine was); scripts/docs.ts
 * splices it into the page after every full run, so it cannot drift from the last run.
 */
import type { ScenarioResult } from "./scenario.js";

export interface StressMachine {
  cpu: string;
  cores: number;
  memory_gib: number;
  node: string;
  platform: string;
  root: boolean;
}

export type StressOutcome = ScenarioResult & {
  seconds: number;
  process_peak_rss_mib?: number;
  ran_at: string;
  load_average_at_start: number[];
  load_average_at_end: number[];
};

function figures(outcome: StressOutcome): string {
  return Object.entries(outcome.figures)
    .map(
      ([name, value]) =>
        `${name.replaceAll("_", " ")} ${typeof value === "string" ? `“${value.replaceAll("|", "\\|")}”` : value}`,
    )
    .join("; ");
}

export function reliabilitySection(
  machine: StressMachine,
  results: Record<string, StressOutcome>,
  titles: Record<string, string>,
): string {
  const rows = Object.entries(results).map(([name, r]) => {
    const verdict =
      r.violations.length === 0
        ? "held"
        : `**${r.violations.length} violation(s)**: ${r.violations.slice(0, 3).join(" / ").replaceAll("|", "\\|")}`;
    const skipped = r.skipped ? ` (skipped in part: ${r.skipped})` : "";
    return `| \`${name}\` | ${titles[name] ?? ""} | ${verdict}${skipped} | ${figures(r)}; ${r.seconds.toFixed(0)} s |`;
  });
  return [
    `Last full-size runs on ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB, ${machine.platform}, Node ${machine.node}` +
      `${machine.root ? ", as root" : ""} — a machine shared with other work: times are long, the counts are what matter.`,
    "",
    "| scenario | what | result | figures |",
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
