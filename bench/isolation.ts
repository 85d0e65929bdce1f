/**
 * Model hosts (backend.isolation = "process") against in-process llama.cpp, on generated tiny llamas:
 * - cold load through a ready spare host vs an in-process load with llama.cpp already started (target ≤ 1.1×);
 * - tokens per second through a host vs in process, streaming as the server does, 64 tokens (the issue's figure) and
 *   256 (fixed per-request costs weigh less), with the time to the first streamed piece (target ≥ 0.95×);
 * - memory per model and weight type, in both isolation modes: the pre-load estimate, what the cache accounts, and what
 *   the OS measures (target: error ≤ 10 %), with mmap on and off — the measurement behind `backend.mmap`'s default.
 * Runs alternate between the two modes, each starting from the same state (the spare host ready, nothing starting in
 * the background), so a busy machine slows both alike; medians with their spread are reported.
 *
 * Part of `npm run bench` (`-- --only isolation`); alone: `node --import tsx bench/isolation.ts`.
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HostedBackend } from "../src/backends/hosted.js";
import { processMemory } from "../src/backends/host/memory.js";
import { LlamaBackend } from "../src/backends/llama.js";
import type { TextModel } from "../src/backends/types.js";
import { type BackendConfig, backendSchema } from "../src/config/schema.js";
import { type TinyWeightType, writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import type { ModelDescriptor } from "../src/models/types.js";
import { formatRatio, formatSpread, load1, type Ratio, ratio, type Spread, spread, timed } from "./stats.js";

const MIB = 1024 * 1024;
const PROMPT = "Once upon a time";
const BUILT_HOST = fileURLToPath(new URL("../dist/backends/host/main.js", import.meta.url));
const SOURCE_HOST = fileURLToPath(new URL("../src/backends/host/main.ts", import.meta.url));

/**
 * The host entry to measure: the compiled one, as an installed Inferno runs it, when `npm run build` made one at least
 * as new as the source; else the source under tsx (~35 MiB more per host, and slower to start).
 */
async function hostEntry(): Promise<{ entry?: string; label: string }> {
  const [built, source] = await Promise.all([stat(BUILT_HOST).catch(() => null), stat(SOURCE_HOST)]);
  if (built && built.mtimeMs >= source.mtimeMs) return { entry: BUILT_HOST, label: "hosts from dist (as installed)" };
  return { label: "hosts from source under tsx (run `npm run build` to measure installed hosts)" };
}

let hostOptions: { entry?: string } = {};

/** Private memory (Private_Clean + Private_Dirty in smaps_rollup): what a process holds that no other does. */
async function privateBytes(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return field("Private_Clean") + field("Private_Dirty");
}

export interface ColdLoadFigures {
  model: string;
  size_bytes: number;
  in_process_ms: Spread;
  via_spare_host_ms: Spread;
  ratio: Ratio;
}

export interface ThroughputFigures {
  model: string;
  tokens: number;
  in_process_tokens_per_s: Spread;
  via_host_tokens_per_s: Spread;
  in_process_first_piece_ms: Spread;
  via_host_first_piece_ms: Spread;
  ratio: Ratio;
}

export interface MemoryRow {
  model: string;
  type: TinyWeightType;
  mmap: boolean;
  isolation: "process" | "in-process";
  /** What the cache reserves before the load (`ModelManager.estimateMemory`). */
  estimate_bytes: number;
  /** What the cache accounts once loaded: the host's Pss at load (process), llama.cpp's own figure (in-process). */
  accounted_bytes: number;
  /** What the OS measures after a first request: the host's Pss (process); the model's share of a process's Pss. */
  os_bytes: number;
  /** |estimate − OS| / OS and |accounted − OS| / OS. */
  estimate_error: number;
  accounted_error: number;
}

export interface IsolationFigures {
  hosts: string;
  load_average: { start: number; end: number };
  cold_load: ColdLoadFigures;
  throughput: ThroughputFigures[];
  memory: { rows: MemoryRow[]; idle_host_bytes: Spread; target_error: number; worst_estimate_error: number; worst_accounted_error: number };
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)}`;
const percent = (x: number) => `${(x * 100).toFixed(1)} %`;

async function coldLoads(model: ModelDescriptor, config: BackendConfig, runs: number): Promise<ColdLoadFigures> {
  const local = new LlamaBackend();
  await local.ready(config);
  const hosted = new HostedBackend("gguf", hostOptions);
  const times = { local: [] as number[], hosted: [] as number[] };
  try {
    for (let i = 0; i < runs; i++) {
      // Both loads start with the spare ready and no host starting in the background.
      await hosted.ready(config);
      const l = await timed(() => local.load(model, { backend: config }));
      times.local.push(l.ms);
      await l.value.dispose();
      await hosted.ready(config);
      const h = await timed(() => hosted.load(model, { backend: config }));
      times.hosted.push(h.ms);
      await h.value.dispose();
    }
  } finally {
    await hosted.dispose();
    await local.dispose();
  }
  const [inProcess, viaHost] = [spread(times.local), spread(times.hosted)];
  return {
    model: model.name,
    size_bytes: model.fingerprint.size,
    in_process_ms: inProcess,
    via_spare_host_ms: viaHost,
    ratio: ratio(viaHost, inProcess, 1.1, "at_most"),
  };
}

async function streamed(model: TextModel, tokens: number): Promise<{ rate: number; firstMs: number }> {
  let firstMs = NaN;
  const start = performance.now();
  const result = await model.complete(PROMPT, {
    maxTokens: tokens,
    temperature: 0,
    onText: () => {
      if (Number.isNaN(firstMs)) firstMs = performance.now() - start;
    },
  });
  return { rate: result.usage.completionTokens / ((performance.now() - start) / 1000), firstMs };
}

async function throughput(nano: ModelDescriptor, config: BackendConfig, runs: number, lengths: number[]): Promise<ThroughputFigures[]> {
  const local = new LlamaBackend();
  const hosted = new HostedBackend("gguf", { ...hostOptions, spare: false });
  const a = (await local.load(nano, { backend: config })) as TextModel;
  const b = (await hosted.load(nano, { backend: config })) as TextModel;
  try {
    await streamed(a, 8);
    await streamed(b, 8);
    const figures: ThroughputFigures[] = [];
    for (const tokens of lengths) {
      const l: Array<{ rate: number; firstMs: number }> = [];
      const h: Array<{ rate: number; firstMs: number }> = [];
      for (let i = 0; i < runs; i++) {
        l.push(await streamed(a, tokens));
        h.push(await streamed(b, tokens));
      }
      const [inProcess, viaHost] = [spread(l.map((x) => x.rate)), spread(h.map((x) => x.rate))];
      figures.push({
        model: nano.name,
        tokens,
        in_process_tokens_per_s: inProcess,
        via_host_tokens_per_s: viaHost,
        in_process_first_piece_ms: spread(l.map((x) => x.firstMs)),
        via_host_first_piece_ms: spread(h.map((x) => x.firstMs)),
        ratio: ratio(viaHost, inProcess, 0.95, "at_least"),
      });
    }
    return figures;
  } finally {
    await a.dispose();
    await b.dispose();
    await hosted.dispose();
    await local.dispose();
  }
}

/**
 * Per weight type and mmap setting: a model loaded in a fresh host, measured idle (before the load), at load and after a
 * first request. The host runs the in-process backend, so its Pss growth is what the model adds to any process — the
 * OS figure the in-process accounting (llama.cpp's own figure, taken from a load in this process) is held against; it
 * is taken from private memory (Pss would also move as other processes map or unmap the same libraries).
 */
async function memory(models: Array<{ descriptor: ModelDescriptor; type: TinyWeightType }>, manager: ModelManager, base: BackendConfig) {
  const rows: MemoryRow[] = [];
  const idles: number[] = [];
  const longPrompt = "the cat sat on the mat and ".repeat(Math.floor(base.context_size / 8));
  const local = new LlamaBackend();
  try {
    for (const { descriptor, type } of models) {
      for (const mmap of [false, true]) {
        const config = { ...base, mmap };
        const hosted = new HostedBackend("gguf", { ...hostOptions, spare: false });
        await hosted.ready(config);
        const sparePid = hosted.sparePid as number;
        idles.push((await processMemory(sparePid)) ?? NaN);
        const idlePrivate = await privateBytes(sparePid);
        const model = (await hosted.load(descriptor, { backend: config })) as TextModel;
        const accounted = model.memoryBytes;
        // A first request with a prompt of most of the context: weights and the compute buffers of a full batch touched.
        await model.complete(longPrompt, { maxTokens: 8, temperature: 0 });
        const pss = (await processMemory(model.pid as number)) ?? NaN;
        const share = (await privateBytes(model.pid as number)) - idlePrivate;
        await model.dispose();
        await hosted.dispose();
        const inProcess = await local.load(descriptor, { backend: { ...config, isolation: "in-process" } });
        const llamaFigure = inProcess.memoryBytes;
        await inProcess.dispose();
        const row = (isolation: MemoryRow["isolation"], estimate: number, accountedBytes: number, os: number): MemoryRow => ({
          model: descriptor.name,
          type,
          mmap,
          isolation,
          estimate_bytes: estimate,
          accounted_bytes: accountedBytes,
          os_bytes: os,
          estimate_error: Math.abs(estimate - os) / os,
          accounted_error: Math.abs(accountedBytes - os) / os,
        });
        rows.push(
          row("process", await manager.estimateMemory(descriptor, { ...config, isolation: "process" }), accounted, pss),
          row("in-process", await manager.estimateMemory(descriptor, { ...config, isolation: "in-process" }), llamaFigure, share),
        );
      }
    }
  } finally {
    await local.dispose();
  }
  return { rows, idles };
}

export async function isolationBench(options: { quick?: boolean } = {}): Promise<IsolationFigures> {
  const runs = options.quick ? 3 : 7;
  const start = load1();
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-isolation-"));
  try {
    const types: TinyWeightType[] = ["f32", "f16", "q8_0", "q4_0"];
    await writeTinyLlamaGguf(join(dir, "nano-f32.gguf"), { preset: "nano", type: "f32" });
    for (const type of types) await writeTinyLlamaGguf(join(dir, `medium-${type}.gguf`), { preset: "medium", type });
    const manager = new ModelManager(dir);
    const config = backendSchema.parse({ gpu: false, threads: 1, context_size: 256 });
    const resolve = (name: string) => manager.resolve(name);
    const host = await hostEntry();
    hostOptions = host.entry ? { entry: host.entry } : {};
    console.log(`load average at start: ${start}; ${runs} interleaved runs per figure, median (min–max); ${host.label}\n`);

    const cold = await coldLoads(await resolve("medium-q8_0.gguf"), config, runs);
    console.log(
      `cold load of ${cold.model}: in-process ${formatSpread(cold.in_process_ms, "ms")}, via spare host ${formatSpread(cold.via_spare_host_ms, "ms")}  ${formatRatio(cold.ratio)}`,
    );

    const rates = await throughput(await resolve("nano-f32.gguf"), config, runs, [64, 256]);
    for (const t of rates) {
      console.log(
        `tokens/s on ${t.model}, ${t.tokens} streamed tokens: in-process ${formatSpread(t.in_process_tokens_per_s, "")}, via host ${formatSpread(t.via_host_tokens_per_s, "")}  ${formatRatio(t.ratio)}; ` +
          `first piece after ${t.in_process_first_piece_ms.median.toFixed(1)} vs ${t.via_host_first_piece_ms.median.toFixed(1)} ms`,
      );
    }

    const models = await Promise.all(types.map(async (type) => ({ descriptor: await resolve(`medium-${type}.gguf`), type })));
    const { rows, idles } = await memory(models, manager, config);
    const idle = spread(idles);
    console.log(
      `\nmemory per model (MiB): estimate before the load, what the cache accounts, what the OS measures after a first request ` +
        `(process: the host's Pss; in-process: what the model adds to a process's private memory). Idle host: ${mib(idle.median)} MiB Pss`,
    );
    console.log("model               mmap   isolation    estimate   accounted         OS   estimate err   accounted err");
    for (const r of rows) {
      console.log(
        `${r.model.padEnd(19)} ${String(r.mmap).padEnd(6)} ${r.isolation.padEnd(10)} ${mib(r.estimate_bytes).padStart(10)} ${mib(r.accounted_bytes).padStart(11)} ${mib(r.os_bytes).padStart(10)} ${percent(r.estimate_error).padStart(14)} ${percent(r.accounted_error).padStart(15)}`,
      );
    }
    const byDefault = rows.filter((r) => !r.mmap);
    const worstEstimate = Math.max(...byDefault.map((r) => r.estimate_error));
    const worstAccounted = Math.max(...byDefault.map((r) => r.accounted_error));
    console.log(
      `worst error with the default mmap = false: estimate ${percent(worstEstimate)}, accounted ${percent(worstAccounted)} (target ≤ 10 %: ${
        worstEstimate <= 0.1 && worstAccounted <= 0.1 ? "met" : "missed"
      }); load average at end: ${load1()}`,
    );
    return {
      hosts: host.label,
      load_average: { start, end: load1() },
      cold_load: cold,
      throughput: rates,
      memory: { rows, idle_host_bytes: idle, target_error: 0.1, worst_estimate_error: worstEstimate, worst_accounted_error: worstAccounted },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await isolationBench({ quick: process.argv.includes("--quick") });
