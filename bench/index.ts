/**
 * `npm run bench` (`-- --quick` for a short run, `-- --only eviction` for one section): benchmarks reported as ratios
 * measured in the same run, never asserted in tests (the machine is shared). Prints the tables and writes
 * `bench/results/latest.json`.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { backendThreadsBench } from "./backends.js";
import { cacheCoreBench } from "./cache-core.js";
import { coldLoadBench } from "./cold-load.js";
import { evictionBench, evictionTable } from "./eviction.js";
import { isolationBench } from "./isolation.js";
import { serverOverheadBench } from "./server.js";
import { startupBench } from "./startup.js";

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
const SECTIONS = ["eviction", "cache", "server", "threads", "isolation", "coldload", "startup"];
if (only !== undefined && !SECTIONS.includes(only)) {
  console.error(`--only takes one of ${SECTIONS.join(", ")}; got ${JSON.stringify(only)}`);
  process.exit(2);
}
const runs = (section: string) => only === undefined || only === section;

function printTable(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
}

const machine = {
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memory_gib: Math.round(totalmem() / 1024 ** 3),
  node: process.version,
  date: new Date().toISOString(),
};

if (runs("eviction")) {
  const started = performance.now();
  const eviction = await evictionBench({ quick });
  const s = eviction.settings;
  console.log(
    `eviction quality: total load time as a multiple of the offline optimum (exact ILP on the small traces, LP lower bound ` +
      `on the others); ${s.maxModels} models / ${s.maxMemoryBytes / 1024 ** 3} GiB at most, warm reload window ` +
      `${s.warmWindowMs / 60_000} min\n`,
  );
  printTable(evictionTable(eviction));
  const { worstZipf, targets, defaultPolicy } = eviction;
  console.log(
    `\ndefault (${defaultPolicy}) on the Zipf traces: at worst ${worstZipf.defaultVsBound.toFixed(3)}x the bound ` +
      `(target ≤ ${targets.defaultVsBound}x: ${worstZipf.defaultVsBound <= targets.defaultVsBound ? "met" : "missed"}), ` +
      `${worstZipf.defaultVsLru.toFixed(3)}x LRU's load time (target ≤ ${targets.defaultVsLru}x: ` +
      `${worstZipf.defaultVsLru <= targets.defaultVsLru ? "met" : "missed"}); ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );

  const results = { machine, quick, eviction };
  const dir = join(import.meta.dirname, "results");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${join("bench", "results", "latest.json")}`);
}

if (runs("cache")) await cacheCoreBench();
if (runs("server")) await serverOverheadBench();
if (runs("threads")) {
  console.log("\nllama.cpp thread count: auto vs 1 thread vs every core, quiet and with a busy process\n");
  await backendThreadsBench();
}
if (runs("isolation")) {
  console.log("\nmodel hosts (backend.isolation = process) against in-process llama.cpp\n");
  await isolationBench({ quick });
}
if (runs("coldload")) {
  console.log("\ncold load through the cache vs node-llama-cpp's own load of the same file, page cache warm and dropped\n");
  await coldLoadBench({ quick });
}
if (runs("startup")) {
  console.log("\nCLI start-up: commands that load no model, against node -e 0\n");
  await startupBench();
}
