/**
 * `npm run bench`: every benchmark section, each figure a ratio against a baseline measured in the same run
 * (interleaved rounds, median and spread; never asserted in tests — the machine is shared). Prints ONE table
 * (bench/report.ts) and merges the figures into `bench/results/latest.json`.
 *
 * `-- --quick`: fewer rounds and shorter traces (bench/NOTES.md says how long it takes); `-- --only SECTION[,SECTION]`:
 * those sections only (the others' figures stay in latest.json as they were). The command line, timing and merge are
 * testkit/runner.ts's, shared with `npm run stress`.
 */
import { backendThreadsBench } from "./backends.js";
import { cacheCoreBench } from "./cache-core.js";
import { coldLoadBench, coldLoadFigures } from "./cold-load.js";
import { concurrencyBench } from "./concurrency.js";
import { evictionBench, evictionFigures } from "./eviction.js";
import { fleetBench } from "./fleet.js";
import { fleetSimBench, fleetSimFigures } from "./fleet-sim.js";
import { isolationBench, isolationFigures } from "./isolation.js";
import { latencyBench } from "./latency.js";
import { loadsBench } from "./loads.js";
import { promptCacheBench } from "./prompt.js";
import { machine, parseSelection, type RunnerSection, runSections } from "../testkit/runner.js";
import { type Figure, markNoisy, mergeResults, RESULTS_FILE, renderTable, type Results, tooBusy } from "./report.js";
import { writeGenerated } from "../scripts/docs.js";
import { SECTION_ORDER } from "./readme.js";
import { serverOverheadBench } from "./server.js";
import { startupBench } from "./startup.js";

/**
 * What a section gives back: its figures, a report kept as its details, and the load average over its timed part when
 * that is narrower than the whole section (the runner's window otherwise).
 */
type Section = RunnerSection<{ figures: Figure[]; details?: unknown; loadavg?: { before: number; after: number } }>;

/** A section whose bench returns a report: the figures drawn from it, and the report kept as the section's details. */
function reported<R>(
  name: string,
  bench: (options: { quick: boolean }) => Promise<R>,
  figures: (report: R) => Figure[],
): Section {
  return {
    name,
    run: async (o) => {
      const report = await bench(o);
      return { figures: figures(report), details: report };
    },
  };
}

const SECTIONS: Section[] = [
  { name: "cache", run: async (o) => ({ figures: await cacheCoreBench(o) }) },
  { name: "loads", run: async (o) => ({ figures: await loadsBench(o) }) },
  { name: "server", run: async (o) => ({ figures: await serverOverheadBench(o) }) },
  { name: "concurrency", run: async (o) => ({ figures: await concurrencyBench(o) }) },
  { name: "latency", run: async (o) => ({ figures: await latencyBench(o) }) },
  reported("isolation", isolationBench, isolationFigures),
  reported("coldload", coldLoadBench, coldLoadFigures),
  { name: "startup", run: async (o) => ({ figures: await startupBench(o) }) },
  { name: "threads", run: async (o) => ({ figures: await backendThreadsBench(o) }) },
  reported("eviction", evictionBench, evictionFigures),
  { name: "prompt", run: async (o) => ({ figures: await promptCacheBench(o) }) },
  { name: "fleet", run: (o) => fleetBench(o) },
  reported("fleet-sim", fleetSimBench, fleetSimFigures),
];
const NAMES = SECTIONS.map((s) => s.name);
if (NAMES.join() !== SECTION_ORDER.join())
  throw new Error("bench/readme.ts's SECTION_ORDER must list bench/index.ts's sections");

const selection = parseSelection("bench", process.argv.slice(2), NAMES);
const { quick } = selection;
const fresh: Results = { machine: machine(), sections: {}, figures: [], details: {} };
const run = await runSections("bench", SECTIONS, selection, async (name, result, sectionRun) => {
  const { details } = result;
  const busy =
    result.figures.some((f) => f.controlled) && tooBusy(result.loadavg ?? sectionRun.loadavg, fresh.machine.cores);
  if (busy)
    console.error(`bench: ${name} ran with a load average above ${fresh.machine.cores}: its timed targets are noisy`);
  const figures = busy ? markNoisy(result.figures) : result.figures;
  fresh.sections[name] = sectionRun;
  fresh.figures.push(...figures);
  if (details !== undefined) fresh.details[name] = details;
  // Saved after each section: an interrupted run keeps what it finished.
  await mergeResults(fresh);
});
fresh.runs = { last: run, ...(selection.only === undefined ? { complete: run } : {}) };

const { cpu, cores, memory_gib, node } = fresh.machine;
console.log(
  `\n${cores} × ${cpu}, ${memory_gib} GiB, Node ${node}; ${quick ? "quick run" : "full run"} of ` +
    `${run.sections.join(", ")} in ${run.seconds.toFixed(0)} s; ` +
    `values are medians over interleaved rounds, ratios against a baseline measured in the same run\n`,
);
console.log(renderTable(fresh.figures, "text", NAMES));
const missed = fresh.figures.filter((f) => f.met === false).length;
const targeted = fresh.figures.filter((f) => f.met !== null).length;
const noisy = fresh.figures.filter((f) => f.noisy).length;
await mergeResults(fresh);
await writeGenerated(["bench-table"]);
console.log(
  `\n${targeted - missed} of ${targeted} targets met${noisy > 0 ? ` (${noisy} noisy: A/A control outside 0.95–1.05× or a load average above the cores)` : ""}; wrote ${RESULTS_FILE.slice(process.cwd().length + 1) || RESULTS_FILE} and docs/benchmarks.md's table`,
);
for (const { section, error } of run.failed ?? [])
  console.error(`bench: ${section} failed and has no figures: ${error}`);
if (run.failed) process.exitCode = 1;
console.log(
  `bench: ${quick ? "quick" : "full"} run of ${run.sections.length} section(s), variant order seed ${run.seed} (\`--seed ${run.seed}\` replays it), took ${run.seconds} s in total (load average ${run.loadavg.before}→${run.loadavg.after})`,
);
