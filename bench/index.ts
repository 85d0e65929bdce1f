/**
 * `npm run bench`: benchmarks reported as ratios (never asserted in tests: the machine is shared). Each result is
 * computed on simulated time, so it is the same on every machine.
 */
import { backendThreadsBench } from "./backends.js";
import { cacheCoreBench } from "./cache-core.js";
import { compare, WORKLOADS } from "./eviction.js";
import { serverOverheadBench } from "./server.js";
import { startupBench } from "./startup.js";

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

async function evictionBench(): Promise<void> {
  console.log("eviction policy: lru vs cost-aware (same requests, fake backend, simulated clock)\n");
  const rows: string[][] = [["workload", "policy", "hits", "misses", "hit rate", "total load time"]];
  const ratios: number[] = [];
  for (const workload of WORKLOADS()) {
    const result = await compare(workload);
    for (const r of [result.lru, result.costAware]) {
      rows.push([workload.name, r.policy, String(r.hits), String(r.misses), pct(r.hitRate), `${(r.loadMsTotal / 1000).toFixed(0)} s`]);
    }
    rows.push([workload.name, "ratio c/l", "", "", result.hitRateRatio.toFixed(3), result.loadTimeRatio.toFixed(3)]);
    ratios.push(result.loadTimeRatio);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
  const geo = Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length);
  console.log(`\ngeometric mean of load-time ratios (cost-aware / lru): ${geo.toFixed(3)}`);
  console.log(geo < 1 ? "cost-aware wins: users wait less for loads (the default is cost-aware)" : "lru wins on load time");
}

await evictionBench();
await cacheCoreBench();
await serverOverheadBench();
console.log("\nllama.cpp thread count: auto vs 1 thread vs every core, quiet and with a busy process\n");
await backendThreadsBench();
console.log("\nCLI start-up: commands that load no model, against node -e 0\n");
await startupBench();
