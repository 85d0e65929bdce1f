import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HostedBackend } from "./src/backends/hosted.js";
import { processMemory } from "./src/backends/host/memory.js";
import { LlamaBackend } from "./src/backends/llama.js";
import type { TextModel } from "./src/backends/types.js";
import { backendSchema } from "./src/config/schema.js";
import { writeTinyLlamaGguf } from "./src/models/gguf-writer.js";
import { ModelManager } from "./src/models/manager.js";
const M = 2 ** 20;
const entry = join(process.cwd(), "dist/backends/host/main.js");
async function fields(pid: number) {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const f = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { priv: f("Private_Clean") + f("Private_Dirty"), anon: f("Anonymous"), pdirty: f("Private_Dirty") };
}
async function fileRss(pid: number, path: string) {
  const text = await readFile(`/proc/${pid}/smaps`, "utf8");
  let total = 0; let inFile = false;
  for (const line of text.split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inFile = line.endsWith(path);
    else if (inFile && line.startsWith("Rss:")) total += Number(/(\d+) kB/.exec(line)?.[1]) * 1024;
  }
  return total;
}
const dir = await mkdtemp(join(tmpdir(), "h3-mem-"));
const types = ["f32", "f16", "q8_0", "q4_0"] as const;
for (const type of types) await writeTinyLlamaGguf(join(dir, `medium-${type}.gguf`), { preset: "medium", type });
const manager = new ModelManager(dir);
const base = backendSchema.parse({ gpu: false, threads: 1, context_size: 256 });
const longPrompt = "the cat sat on the mat and ".repeat(Math.floor(base.context_size / 8));
const local = new LlamaBackend();
for (const type of types) for (const mmap of [false, true]) {
  const d = await manager.resolve(`medium-${type}.gguf`);
  const config = { ...base, mmap };
  const hosted = new HostedBackend("gguf", { entry, spare: false });
  await hosted.ready(config);
  const pid = hosted.sparePid as number;
  const idlePss = (await processMemory(pid)) ?? NaN;
  const idle = await fields(pid);
  const model = (await hosted.load(d, { backend: config })) as TextModel;
  await model.complete(longPrompt, { maxTokens: 8, temperature: 0, truncatePromptTokens: -1 });
  const pss = (await processMemory(model.pid as number)) ?? NaN;
  const after = await fields(model.pid as number);
  const frss = await fileRss(model.pid as number, d.path);
  await model.dispose(); await hosted.dispose();
  const inp = await local.load(d, { backend: { ...config, isolation: "in-process" } });
  const acc = inp.memoryBytes; await inp.dispose();
  const core = (await manager.estimateMemory(d, { ...config, isolation: "in-process" })) - 8 * M;
  const r = (x: number) => (x / M).toFixed(2).padStart(7);
  console.log(type.padEnd(5), String(mmap).padEnd(5), "idlePss", r(idlePss), "pss", r(pss), "| core", r(core), "acc", r(acc), "privΔ", r(after.priv - idle.priv), "anonΔ", r(after.anon - idle.anon), "fileRss", r(frss), "anonΔ+file", r(after.anon - idle.anon + frss), "pss-core", r(pss - core));
}
await local.dispose();
