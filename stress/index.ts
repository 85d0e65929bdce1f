/**
 * `npm run stress` (`-- --only NAME[,NAME]` for some scenarios, `-- --quick` or `-- --bounded` for the sizes the test
 * suite runs; the command line, timing and merge are testkit/runner.ts's, shared with `npm run bench`): tries hard to
 * break Inferno and prints what happened. Each scenario runs in a process of its own (a crash or a leak of one cannot
 * hide in another's figures); full-size results, with the machine, when each ran and the load average, are merged
 * into `stress/results/latest.json` (a scenario run alone replaces only its own), whose figures docs/reliability.md's
 * table is regenerated from (scripts/docs.ts). Exits 1 when any scenario had a violation.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MIB } from "../src/units.js";
import {
  keepOthers,
  loadAverage,
  machine as baseMachine,
  mergeResultsFile,
  parseSelection,
  runSections,
} from "../testkit/runner.js";
import type { StressMachine, StressOutcome } from "./report.js";
import type { ScenarioResult } from "../testkit/scenario.js";
import { SCENARIOS } from "./scenarios/index.js";

const RESULT_MARK = "STRESS-RESULT ";
const args = process.argv.slice(2);
const flag = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const selection = parseSelection(
  "stress",
  args,
  SCENARIOS.map((s) => s.name),
  ["--bounded"],
);
const bounded = selection.quick;
const child = flag("--child");

if (child !== undefined) {
  // One scenario in this process: the figures go back to the parent as one marked line.
  const scenario = SCENARIOS.find((s) => s.name === child);
  if (!scenario) throw new Error(`no scenario ${child}`);
  const result = await scenario.run((bounded ? scenario.bounded : scenario.full) as never);
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(RESULT_MARK + JSON.stringify({ ...result, process_peak_rss_mib: Math.round(peak / MIB) }));
  process.exit(0);
}

type ChildOutcome = Omit<StressOutcome, "seconds" | "ran_at" | "load_average_at_start" | "load_average_at_end"> & {
  exit?: string;
};

/** Runs one scenario in a child process; a child that dies is a crash, reported as a violation. */
function runChild(name: string): Promise<ChildOutcome> {
  const proc = spawn(
    process.execPath,
    [
      "--import",
      import.meta.resolve("tsx"),
      fileURLToPath(import.meta.url),
      "--child",
      name,
      ...(bounded ? ["--bounded"] : []),
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  return new Promise((resolve) => {
    proc.on("exit", (code, signal) => {
      const line = out.split("\n").find((l) => l.startsWith(RESULT_MARK));
      if (line !== undefined && code === 0) {
        resolve(JSON.parse(line.slice(RESULT_MARK.length)) as ScenarioResult);
        return;
      }
      const exit = signal ?? `exit code ${code}`;
      process.stdout.write(out);
      resolve({
        figures: {},
        violations: [`the scenario's process ended (${exit}) without a result`],
        skipped: null,
        exit,
      });
    });
  });
}

const machine: StressMachine = {
  ...baseMachine(),
  platform: `${process.platform} ${process.arch}`,
  root: process.getuid?.() === 0,
};
console.log(
  `inferno stress (${bounded ? "bounded sizes" : "full sizes"}) on ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB, ` +
    `node ${machine.node}, load average ${loadAverage()}\n`,
);

const titles = Object.fromEntries(SCENARIOS.map((s) => [s.name, s.title]));
const sections = SCENARIOS.map((s) => ({ name: s.name, run: () => runChild(s.name) }));
const results: Record<string, StressOutcome> = {};
const summary = await runSections("stress", sections, selection, (name, child, run) => {
  const outcome: StressOutcome = {
    ...child,
    seconds: run.seconds,
    ran_at: run.date,
    load_average_at_start: [run.loadavg.before],
    load_average_at_end: [run.loadavg.after],
  };
  results[name] = outcome;
  console.log(`${name}: ${titles[name]}`);
  const width = Math.max(...Object.keys(outcome.figures).map((k) => k.length), 0);
  for (const [key, value] of Object.entries(outcome.figures)) console.log(`  ${key.padEnd(width)}  ${value}`);
  if (outcome.skipped) console.log(`  skipped: ${outcome.skipped}`);
  for (const v of outcome.violations) console.log(`  VIOLATION: ${v}`);
  console.log(
    `  ${outcome.violations.length === 0 ? "held" : `${outcome.violations.length} violation(s)`} in ${outcome.seconds.toFixed(1)} s\n`,
  );
});

const failed = Object.entries(results)
  .filter(([, r]) => r.violations.length > 0)
  .map(([n]) => n)
  .concat((summary.failed ?? []).map((f) => f.section));
if (!bounded) {
  // Full-size figures join those of earlier runs (a scenario run alone replaces only its own), then the docs' table
  // (imported here, not above: a scenario's child process needs none of it).
  const file = join(import.meta.dirname, "results", "latest.json");
  await mergeResultsFile(file, (previous) => {
    const merged = keepOthers((previous as { results?: Record<string, StressOutcome> } | null)?.results, results);
    const ordered = Object.fromEntries(
      SCENARIOS.filter((s) => s.name in merged).map((s) => [s.name, merged[s.name] as StressOutcome]),
    );
    return { machine, results: ordered };
  });
  console.log(`wrote ${join("stress", "results", "latest.json")}`);
  const { writeGenerated } = await import("../scripts/docs.js");
  await writeGenerated(["stress-table"]);
  console.log("wrote docs/reliability.md's table");
}
console.log(failed.length === 0 ? "every scenario held" : `violations in: ${failed.join(", ")}`);
process.exit(failed.length === 0 ? 0 : 1);
