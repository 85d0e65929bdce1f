import { evictionBench, evictionTable } from "./eviction.js";
const t = performance.now();
const r = await evictionBench({ quick: process.argv.includes("--quick") });
for (const row of evictionTable(r)) console.log(row.join(" | "));
console.log(r.worstZipf, (performance.now() - t) / 1000);
