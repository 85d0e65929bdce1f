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
import { type Figure, figure, ratios } from "./report.js";

let RUNS = 7;
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

async function coldLoads(medium: ModelDescriptor, config: BackendConfig): Promise<Figure[]> {
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
  return [
    figure({ section: "isolation", item: "1.3", name: `cold load of ${medium.name} via the spare host`, samples: ratios(times.hosted, times.local), unit: "×", baseline: "in-process load", target: { max: 1.1 }, note: `${h.toFixed(0)} ms vs ${l.toFixed(0)} ms` }),
  ];
}

async function throughput(nano: ModelDescriptor, config: BackendConfig): Promise<Figure[]> {
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
  return [
    figure({ section: "isolation", name: `tokens/s via a host, ${nano.name}`, samples: ratios(rates.hosted, rates.local), unit: "×", baseline: "in process", target: { min: 0.95 }, note: `${TOKENS} streamed tokens; ${h.toFixed(0)} vs ${l.toFixed(0)} tok/s` }),
  ];
}

/**
 * Memory of a hosted model: what the cache accounts (the host's Pss, re-measured) against what the OS shows, with
 * mmap on and off; the note adds RSS, the idle host's Pss and the in-process backend's own figure.
 */
async function memory(models: ModelDescriptor[], base: BackendConfig): Promise<Figure[]> {
  const figures: Figure[] = [];
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
      figures.push(
        figure({
          section: "isolation",
          item: "1.7",
          name: `accounted memory, hosted ${descriptor.name}, mmap ${mmap}`,
          samples: model.memoryBytes / pss,
          unit: "×",
          baseline: "the host's Pss (OS)",
          target: { min: 0.9, max: 1.1 },
          note: `${mib(model.memoryBytes)} vs ${mib(pss)}; RSS ${mib(resident)}; idle host ${mib(idle)}; model's share ${mib(pss - idle)}, in process ${mib(inProcess.memoryBytes)}`,
        }),
      );
      await inProcess.dispose();
      await local.dispose();
      await model.dispose();
      await hosted.dispose();
    }
  }
  return figures;
}

export async function isolationBench(options: { quick: boolean } = { quick: false }): Promise<Figure[]> {
  if (options.quick) RUNS = 3;
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
    const memoryModels = (options.quick ? [mediumQ8] : [mediumF32, mediumQ8, mediumQ4]) as ModelDescriptor[];
    return [
      ...(!only || only === "load" ? await coldLoads(mediumQ8 as ModelDescriptor, config) : []),
      ...(!only || only === "tps" ? await throughput(nano as ModelDescriptor, config) : []),
      ...(!only || only === "memory" ? await memory(memoryModels, config) : []),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await isolationBench());
