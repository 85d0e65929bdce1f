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
import { evictionBench, evictionFigures } from "./eviction.js";
import { isolationBench } from "./isolation.js";
import { type Figure, loadAverage, machine, mergeResults, RESULTS_FILE, renderTable, type Results } from "./report.js";
import { serverOverheadBench } from "./server.js";
import { startupBench } from "./startup.js";

interface Section {
  name: string;
  run(options: { quick: boolean }): Promise<{ figures: Figure[]; details?: unknown }>;
}

const SECTIONS: Section[] = [
  { name: "cache", run: async (o) => ({ figures: await cacheCoreBench(o) }) },
  { name: "server", run: async (o) => ({ figures: await serverOverheadBench(o) }) },
  { name: "isolation", run: async (o) => ({ figures: await isolationBench(o) }) },
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

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt >= 0 ? (process.argv[onlyAt + 1] ?? "").split(",") : undefined;
const unknown = only?.filter((name) => !NAMES.includes(name)) ?? [];
if (only !== undefined && (only.length === 0 || unknown.length > 0)) {
  console.error(`--only takes one or more of ${NAMES.join(", ")} (comma-separated); got ${JSON.stringify(process.argv[onlyAt + 1] ?? "")}`);
  process.exit(2);
}

const started = performance.now();
const fresh: Results = { machine: machine(), sections: {}, figures: [], details: {} };
for (const section of SECTIONS) {
  if (only !== undefined && !only.includes(section.name)) continue;
  const before = loadAverage();
  const sectionStarted = performance.now();
  process.stderr.write(`bench: ${section.name}${quick ? " (quick)" : ""}, load average ${before} ... `);
  const { figures, details } = await section.run({ quick });
  const seconds = Math.round((performance.now() - sectionStarted) / 100) / 10;
  process.stderr.write(`${seconds} s\n`);
  fresh.sections[section.name] = { date: new Date().toISOString(), quick, seconds, loadavg: { before, after: loadAverage() } };
  fresh.figures.push(...figures);
  if (details !== undefined) fresh.details[section.name] = details;
}

const { cpu, cores, memory_gib, node } = fresh.machine;
console.log(
  `\n${cores} × ${cpu}, ${memory_gib} GiB, Node ${node}; ${quick ? "quick run" : "full run"} of ` +
    `${Object.keys(fresh.sections).join(", ")} in ${((performance.now() - started) / 1000).toFixed(0)} s; ` +
    `values are medians over interleaved rounds, ratios against a baseline measured in the same run\n`,
);
console.log(renderTable(fresh.figures, "text", NAMES));
const missed = fresh.figures.filter((f) => f.met === false).length;
const targeted = fresh.figures.filter((f) => f.met !== null).length;
await mergeResults(fresh);
console.log(`\n${targeted - missed} of ${targeted} targets met; wrote ${RESULTS_FILE.slice(process.cwd().length + 1) || RESULTS_FILE}`);
