/**
 * Issue 13 item 1.3: a cold load through the cache against node-llama-cpp's own load of the same file (`loadModel` and
 * `createContext` with the same settings on an already started llama.cpp), with the page cache warm and with the file
 * dropped from it; in process (target ≤ 1.05×) and through the spare model host (target ≤ 1.1×). The raw read of the
 * file (`cat FILE > /dev/null`, including starting cat) is printed as the physical limit.
 *
 * The file is dropped from the page cache with `dd iflag=nocache count=0` (posix_fadvise DONTNEED on the whole file;
 * `/proc/sys/vm/drop_caches` is not writable in this VM); `fincore` confirms the pages are gone. Each round measures
 * every mode once, in an order shuffled per round, each from the same state: llama.cpp started, the spare host ready, nothing
 * starting in the background.
 *
 * Part of `npm run bench` (`-- --only coldload`); alone: `node --import tsx bench/cold-load.ts`.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type LlamaContext, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { HostedBackend } from "../src/backends/hosted.js";
import { LlamaBackend } from "../src/backends/llama.js";
import { backendSchema, cacheSchema } from "../src/config/schema.js";
import { type TinyPreset, type TinyWeightType, writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import { ModelCache } from "../src/runtime/model-cache.js";
import { hostEntry } from "./hosts.js";
import { freshSeed, median, ratios, roundOrders } from "../testkit/stats.js";
import { type Figure, figure, withControl } from "./report.js";
import { loadAverage } from "../testkit/runner.js";
import { formatBytes } from "../src/units.js";

/** Milliseconds per round for each way of loading (and reading) one file in one page-cache state. */
export interface ColdLoadRow {
  model: string;
  size_bytes: number;
  page_cache: "warm" | "dropped";
  raw_read_ms: number[];
  node_llama_cpp_ms: number[];
  /** node-llama-cpp's own load again, as a variant of its own: the A/A control (absent in older results). */
  node_llama_cpp_again_ms?: number[];
  cache_in_process_ms: number[];
  cache_via_spare_host_ms: number[];
}

export interface ColdLoadReport {
  load_average: { start: number; end: number };
  hosts: string;
  rows: ColdLoadRow[];
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} exited with ${code}`)),
    );
  });
}

/** Drops the file's pages from the page cache (posix_fadvise DONTNEED through dd). */
export const dropFromPageCache = (path: string) => run("dd", [`if=${path}`, "iflag=nocache", "count=0", "status=none"]);
/** Reads the file whole (`cat`): into the page cache, and the physical limit of a load. */
export const rawRead = (path: string) => run("cat", [path]);

export async function coldLoadBench(options: { quick?: boolean; seed?: number } = {}): Promise<ColdLoadReport> {
  const rounds = options.quick ? 1 : 5;
  const start = loadAverage();
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-cold-load-"));
  const models: Array<{ file: string; preset: TinyPreset; type: TinyWeightType }> = [
    { file: "medium-q8_0.gguf", preset: "medium", type: "q8_0" },
    ...(options.quick ? [] : [{ file: "large-f32.gguf", preset: "large" as const, type: "f32" as const }]),
  ];
  const { options: hostOptions, label: hosts } = await hostEntry();
  // One sequence, as node-llama-cpp's own load below creates (`parallel` auto would make the cache's context 4×).
  const config = backendSchema.parse({ gpu: false, threads: 1, context_size: 256, parallel: 1 });
  const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
  });
  llama.maxThreads = 1;
  const local = new LlamaBackend();
  const hosted = new HostedBackend("gguf", hostOptions);
  const cacheConfig = { ...cacheSchema.parse({ persist_cache: false, enable_warmup: false }), cache_dir: dir };
  const manager = new ModelManager(dir);
  const inProcess = await ModelCache.new(cacheConfig, { ...config, isolation: "in-process" }, manager, {
    backends: { gguf: local },
    store: null,
  });
  const viaHost = await ModelCache.new(cacheConfig, { ...config, isolation: "process" }, manager, {
    backends: { gguf: hosted },
    store: null,
  });
  const rows: ColdLoadRow[] = [];
  let ownLoaded: { context: LlamaContext; model: LlamaModel } | null = null;
  try {
    await local.ready(config);
    for (const { file, preset, type } of models) {
      const path = join(dir, file);
      const size = await writeTinyLlamaGguf(path, { preset, type });
      // Quick: the page cache warm only (each state's load via the spare host starts another host, ~2 s).
      for (const pageCache of options.quick ? (["warm"] as const) : (["warm", "dropped"] as const)) {
        const prepare = async () => {
          await hosted.ready(config);
          if (pageCache === "dropped") await dropFromPageCache(path);
          else await rawRead(path);
        };
        const viaCache = async (cache: ModelCache) => {
          const lease = await cache.acquire(file);
          lease.release();
        };
        const own = async () => {
          const model = await llama.loadModel({ modelPath: path, useMmap: config.mmap, gpuLayers: 0 });
          const context = await model.createContext({
            contextSize: config.context_size,
            batchSize: config.batch_size,
            sequences: 1,
            threads: 1,
          });
          ownLoaded = { context, model };
        };
        const disposeOwn = async () => {
          await ownLoaded?.context.dispose();
          await ownLoaded?.model.dispose();
          ownLoaded = null;
        };
        const modes: Record<string, () => Promise<void>> = {
          raw: () => rawRead(path),
          own,
          ownAgain: own,
          inProcess: () => viaCache(inProcess),
          viaHost: () => viaCache(viaHost),
        };
        const after: Record<string, () => Promise<unknown>> = {
          own: disposeOwn,
          ownAgain: disposeOwn,
          inProcess: () => inProcess.evict(file),
          viaHost: () => viaHost.evict(file),
        };
        const times: Record<string, number[]> = { raw: [], own: [], ownAgain: [], inProcess: [], viaHost: [] };
        const names = Object.keys(modes);
        for (const order of roundOrders(names.length, rounds, options.seed ?? freshSeed())) {
          for (const i of order) {
            const name = names[i] as string;
            await prepare();
            // Every mode is timed to the model being usable; unloading comes after.
            const started = performance.now();
            await (modes[name] as () => Promise<void>)();
            (times[name] as number[]).push(performance.now() - started);
            await after[name]?.();
          }
        }
        rows.push({
          model: file,
          size_bytes: size,
          page_cache: pageCache,
          raw_read_ms: times.raw ?? [],
          node_llama_cpp_ms: times.own ?? [],
          node_llama_cpp_again_ms: times.ownAgain ?? [],
          cache_in_process_ms: times.inProcess ?? [],
          cache_via_spare_host_ms: times.viaHost ?? [],
        });
      }
    }
  } finally {
    await inProcess.close();
    await viaHost.close();
    await hosted.dispose();
    await local.dispose();
    await llama.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  return { load_average: { start, end: loadAverage() }, hosts, rows };
}

/** Issue 13 item 1.3's figures: per model and page-cache state, the cache's load against node-llama-cpp's, per round. */
export function coldLoadFigures(report: ColdLoadReport): Figure[] {
  const ms = (values: number[]) => median(values).toFixed(0);
  const control = report.rows.flatMap((row) =>
    row.node_llama_cpp_again_ms ? ratios(row.node_llama_cpp_again_ms, row.node_llama_cpp_ms) : [],
  );
  const figures = report.rows.flatMap((row) => {
    const what = `${row.model} (${formatBytes(row.size_bytes)}), page cache ${row.page_cache}`;
    const note = (subject: number[]) =>
      `${ms(subject)} vs ${ms(row.node_llama_cpp_ms)} ms; raw read (cat) ${ms(row.raw_read_ms)} ms`;
    return [
      figure({
        section: "coldload",
        item: "1.3",
        name: `cold load through the cache, in process: ${what}`,
        samples: ratios(row.cache_in_process_ms, row.node_llama_cpp_ms),
        unit: "×",
        baseline: "node-llama-cpp's own load",
        target: { max: 1.05 },
        note: note(row.cache_in_process_ms),
      }),
      figure({
        section: "coldload",
        item: "1.3",
        name: `cold load through the cache, via the spare host: ${what}`,
        samples: ratios(row.cache_via_spare_host_ms, row.node_llama_cpp_ms),
        unit: "×",
        baseline: "node-llama-cpp's own load",
        target: { max: 1.1 },
        note: `${note(row.cache_via_spare_host_ms)}; ${report.hosts}`,
      }),
    ];
  });
  return control.length === 0 ? figures : withControl("coldload", control, "node-llama-cpp's own load", figures);
}

if (import.meta.url === `file://${process.argv[1]}`)
  console.log(coldLoadFigures(await coldLoadBench({ quick: process.argv.includes("--quick") })));
