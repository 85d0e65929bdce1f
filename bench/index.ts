/**
 * `npm run bench`: every benchmark section, each figure a ratio against a baseline measured in the same run
 * (interleaved rounds, median and spread; never asserted in tests — the machine is shared). Prints ONE table
 * (bench/report.ts) and merges the figures into `bench/results/latest.json`.
 *
 * `-- --quick`: fewer rounds and shorter traces (under a minute); `-- --only SECTION[,SECTION]`: those sections only
 * (the others' figures stay in latest.json as they were).
 */
import { backendThreadsBench } from "./backends.js";
import { cacheCoreBench } from "./cache-core.js";
import { coldLoadBench, coldLoadFigures } from "./cold-load.js";
import { evictionBench, evictionFigures } from "./eviction.js";
import { isolationBench, isolationFigures } from "./isolation.js";
import { loadsBench } from "./loads.js";
import { type Figure, loadAverage, machine, mergeResults, RESULTS_FILE, renderTable, type Results } from "./report.js";
import { writeGenerated } from "../scripts/docs.js";
import { SECTION_ORDER } from "./readme.js";
import { serverOverheadBench } from "./server.js";
import { startupBench } from "./startup.js";

interface Section {
  name: string;
  run(options: { quick: boolean }): Promise<{ figures: Figure[]; details?: unknown }>;
}

const SECTIONS: Section[] = [
  { name: "cache", run: async (o) => ({ figures: await cacheCoreBench(o) }) },
  { name: "loads", run: async (o) => ({ figures: await loadsBench(o) }) },
  { name: "server", run: async (o) => ({ figures: await serverOverheadBench(o) }) },
  {
    name: "isolation",
    run: async (o) => {
      const report = await isolationBench(o);
      return { figures: isolationFigures(report), details: report };
    },
  },
  {
    name: "coldload",
    run: async (o) => {
      const report = await coldLoadBench(o);
      return { figures: coldLoadFigures(report), details: report };
    },
  },
  { name: "startup", run: async (o) => ({ figures: await startupBench(o) }) },
  { name: "threads", run: async (o) => ({ figures: await backendThreadsBench(o) }) },
  {
    name: "eviction",
    run: async (o) => {
      const report = await evictionBench(o);
      return { figures: evictionFigures(report), details: report };
    },
  },
];
const NAMES = SECTIONS.map((s) => s.name);
if (NAMES.join() !== SECTION_ORDER.join())
  throw new Error("bench/readme.ts's SECTION_ORDER must list bench/index.ts's sections");

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt >= 0 ? (process.argv[onlyAt + 1] ?? "").split(",") : undefined;
const unknown = only?.filter((name) => !NAMES.includes(name)) ?? [];
if (only !== undefined && (only.length === 0 || unknown.length > 0)) {
  console.error(
    `--only takes one or more of ${NAMES.join(", ")} (comma-separated); got ${JSON.stringify(process.argv[onlyAt + 1] ?? "")}`,
  );
  process.exit(2);
}

const started = performance.now();
const startLoad = loadAverage();
const fresh: Results = { machine: machine(), sections: {}, figures: [], details: {} };
for (const section of SECTIONS) {
  if (only !== undefined && !only.includes(section.name)) continue;
  const before = loadAverage();
  const sectionStarted = performance.now();
  process.stderr.write(`bench: ${section.name}${quick ? " (quick)" : ""}, load average ${before} ... `);
  const { figures, details } = await section.run({ quick });
  const seconds = Math.round((performance.now() - sectionStarted) / 100) / 10;
  process.stderr.write(`${seconds} s\n`);
  fresh.sections[section.name] = {
    date: new Date().toISOString(),
    quick,
    seconds,
    loadavg: { before, after: loadAverage() },
  };
  fresh.figures.push(...figures);
  if (details !== undefined) fresh.details[section.name] = details;
  // Saved after each section: an interrupted run keeps what it finished.
  await mergeResults(fresh);
}

const { cpu, cores, memory_gib, node } = fresh.machine;
const seconds = Math.round((performance.now() - started) / 100) / 10;
const run = {
  date: new Date().toISOString(),
  quick,
  sections: Object.keys(fresh.sections),
  seconds,
  loadavg: { before: startLoad, after: loadAverage() },
};
fresh.runs = { last: run, ...(only === undefined ? { complete: run } : {}) };
console.log(
  `\n${cores} × ${cpu}, ${memory_gib} GiB, Node ${node}; ${quick ? "quick run" : "full run"} of ` +
    `${Object.keys(fresh.sections).join(", ")} in ${seconds.toFixed(0)} s; ` +
    `values are medians over interleaved rounds, ratios against a baseline measured in the same run\n`,
);
console.log(renderTable(fresh.figures, "text", NAMES));
const missed = fresh.figures.filter((f) => f.met === false).length;
const targeted = fresh.figures.filter((f) => f.met !== null).length;
await mergeResults(fresh);
await writeGenerated(["bench-table"]);
console.log(
  `\n${targeted - missed} of ${targeted} targets met; wrote ${RESULTS_FILE.slice(process.cwd().length + 1) || RESULTS_FILE} and docs/benchmarks.md's table`,
);
console.log(
  `bench: ${quick ? "quick" : "full"} run of ${run.sections.length} section(s) took ${seconds} s in total (load average ${run.loadavg.before}→${run.loadavg.after})`,
);
