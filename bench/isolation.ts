/**
 * Model hosts (backend.isolation = "process") against in-process llama.cpp, on generated tiny llamas:
 * - cold load through a ready spare host vs an in-process load with llama.cpp already started (target ≤ 1.1×);
 * - tokens per second through a host vs in process, streaming as the server does (target ≥ 0.95×);
 * - memory: what the cache accounts for a hosted model (the host's Pss) against what the OS shows (Pss and RSS), and
 *   the in-process backend's own figure, with mmap on and off — the measurement behind `backend.mmap`'s default.
 * Runs alternate between the two modes so a busy machine slows both alike; medians are reported.
 *
 * Part of `npm run bench`; alone: `node --import tsx bench/isolation.ts`.
 */
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HostedBackend } from "../src/backends/hosted.js";
import { processMemory } from "../src/backends/host/memory.js";
import { LlamaBackend } from "../src/backends/llama.js";
import type { TextModel } from "../src/backends/types.js";
import { type BackendConfig, backendSchema } from "../src/config/schema.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import type { ModelDescriptor } from "../src/models/types.js";

const RUNS = 7;
const TOKENS = 64;
const MIB = 1024 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await work();
  return { ms: performance.now() - start, value };
}

async function tokensPerSecond(model: TextModel): Promise<number> {
  let pieces = 0;
  const { ms, value } = await timed(() =>
    model.complete("Once upon a time", { maxTokens: TOKENS, temperature: 0, onText: () => void pieces++ }),
  );
  return value.usage.completionTokens / (ms / 1000);
}

async function coldLoads(medium: ModelDescriptor, config: BackendConfig): Promise<void> {
  const local = new LlamaBackend();
  await local.ready(config);
  const hosted = new HostedBackend("gguf");
  const times = { local: [] as number[], hosted: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    const l = await timed(() => local.load(medium, { backend: config }));
    times.local.push(l.ms);
    await l.value.dispose();
    await hosted.ready(config);
    const h = await timed(() => hosted.load(medium, { backend: config }));
    times.hosted.push(h.ms);
    await h.value.dispose();
  }
  await hosted.dispose();
  await local.dispose();
  const [l, h] = [median(times.local), median(times.hosted)];
  console.log(`cold load of ${medium.name} (median of ${RUNS}): in-process ${l.toFixed(0)} ms, via spare host ${h.toFixed(0)} ms  ×${(h / l).toFixed(2)} (target ≤ 1.10)`);
}

async function throughput(nano: ModelDescriptor, config: BackendConfig): Promise<void> {
  const local = new LlamaBackend();
  const hosted = new HostedBackend("gguf", { spare: false });
  const a = (await local.load(nano, { backend: config })) as TextModel;
  const b = (await hosted.load(nano, { backend: config })) as TextModel;
  await a.complete("Once", { maxTokens: 4 });
  await b.complete("Once", { maxTokens: 4 });
  const rates = { local: [] as number[], hosted: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    rates.local.push(await tokensPerSecond(a));
    rates.hosted.push(await tokensPerSecond(b));
  }
  await a.dispose();
  await b.dispose();
  await hosted.dispose();
  await local.dispose();
  const [l, h] = [median(rates.local), median(rates.hosted)];
  console.log(`tokens/s on ${nano.name}, ${TOKENS} streamed tokens (median of ${RUNS}): in-process ${l.toFixed(0)}, via host ${h.toFixed(0)}  ×${(h / l).toFixed(2)} (target ≥ 0.95)`);
}

async function memory(models: ModelDescriptor[], base: BackendConfig): Promise<void> {
  console.log("\nmemory of a hosted model: accounted (the host's Pss) vs the OS, and the in-process backend's own figure");
  console.log("model                mmap   idle host Pss   loaded Pss (accounted)   RSS        model's share   in-process figure");
  for (const descriptor of models) {
    for (const mmap of [true, false]) {
      const config = { ...base, mmap };
      const hosted = new HostedBackend("gguf");
      await hosted.ready(config);
      const idle = (await processMemory(hosted.sparePid as number)) ?? 0;
      const model = (await hosted.load(descriptor, { backend: config })) as TextModel;
      await model.complete("Once", { maxTokens: 8, temperature: 0 }); // weights touched, as after a first request
      const pss = (await processMemory(model.pid as number)) ?? 0;
      const resident = await rss(model.pid as number);
      const local = new LlamaBackend();
      const inProcess = await local.load(descriptor, { backend: config });
      console.log(
        `${descriptor.name.padEnd(20)} ${String(mmap).padEnd(6)} ${mib(idle).padStart(13)}   ${mib(pss).padStart(10)} (${mib(model.memoryBytes)})   ${mib(resident).padStart(10)}   ${mib(pss - idle).padStart(13)}   ${mib(inProcess.memoryBytes).padStart(10)}`,
      );
      await inProcess.dispose();
      await local.dispose();
      await model.dispose();
      await hosted.dispose();
    }
  }
}

export async function isolationBench(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-isolation-"));
  try {
    await writeTinyLlamaGguf(join(dir, "nano-f32.gguf"), { preset: "nano", type: "f32" });
    await writeTinyLlamaGguf(join(dir, "medium-f32.gguf"), { preset: "medium", type: "f32" });
    await writeTinyLlamaGguf(join(dir, "medium-q8_0.gguf"), { preset: "medium", type: "q8_0" });
    await writeTinyLlamaGguf(join(dir, "medium-q4_0.gguf"), { preset: "medium", type: "q4_0" });
    const manager = new ModelManager(dir);
    const config = backendSchema.parse({ gpu: false, threads: 1, context_size: 256 });
    const [nano, mediumF32, mediumQ8, mediumQ4] = await Promise.all(
      ["nano-f32.gguf", "medium-f32.gguf", "medium-q8_0.gguf", "medium-q4_0.gguf"].map((name) => manager.resolve(name)),
    );
    const only = process.env.BENCH_ONLY; // "load" | "tps" | "memory": one part, while developing
    if (!only || only === "load") await coldLoads(mediumQ8 as ModelDescriptor, config);
    if (!only || only === "tps") await throughput(nano as ModelDescriptor, config);
    if (!only || only === "memory") await memory([mediumF32, mediumQ8, mediumQ4] as ModelDescriptor[], config);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await isolationBench();
