import { join } from "node:path";
import { HostedBackend } from "./src/backends/hosted.js";
import { processMemory } from "./src/backends/host/memory.js";
const entry = join(process.cwd(), "dist/backends/host/main.js");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
for (let i = 0; i < 3; i++) {
  const hosted = new HostedBackend("gguf", { entry, spare: false });
  await hosted.ready({ gpu: false } as any);
  const pid = hosted.sparePid as number;
  const out = [];
  for (const t of [0, 1000, 3000, 6000, 10000]) { await sleep(t === 0 ? 0 : t - (out.length ? [0,1000,3000,6000,10000][out.length-1] : 0)); out.push(((await processMemory(pid)) ?? 0) / 2 ** 20); }
  console.log(out.map((x) => x.toFixed(1)).join(" "));
  await hosted.dispose();
}
