/**
 * Issue 13 item 1.3: a cold load through the cache against node-llama-cpp's own load of the same file (`loadModel` and
 * `createContext` with the same settings on an already started llama.cpp), with the page cache warm and with the file
 * dropped from it; in process (target ≤ 1.05×) and through the spare model host (target ≤ 1.1×). The raw read of the
 * file (`cat FILE > /dev/null`, including starting cat) is printed as the physical limit.
 *
 * The file is dropped from the page cache with `dd iflag=nocache count=0` (posix_fadvise DONTNEED on the whole file;
 * `/proc/sys/vm/drop_caches` is not writable in this VM); `fincore` confirms the pages are gone. Each round measures
 * every mode once, in a rotating order, each from the same state: llama.cpp started, the spare host ready, nothing
 * starting in the background.
 *
 * Part of `npm run bench` (`-- --only coldload`); alone: `node --import tsx bench/cold-load.ts`.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { HostedBackend } from "../src/backends/hosted.js";
import { LlamaBackend } from "../src/backends/llama.js";
import { backendSchema, cacheSchema } from "../src/config/schema.js";
import { type TinyPreset, type TinyWeightType, writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import { ModelCache } from "../src/runtime/model-cache.js";
import { formatRatio, formatSpread, load1, type Ratio, ratio, type Spread, spread, timed } from "./stats.js";

const BUILT_HOST = fileURLToPath(new URL("../dist/backends/host/main.js", import.meta.url));

export interface ColdLoadRow {
  model: string;
  size_bytes: number;
  page_cache: "warm" | "dropped";
  raw_read_ms: Spread;
  node_llama_cpp_ms: Spread;
  cache_in_process_ms: Spread;
  cache_via_spare_host_ms: Spread;
  in_process_ratio: Ratio;
  via_host_ratio: Ratio;
}

export interface ColdLoadBenchFigures {
  load_average: { start: number; end: number };
  hosts: string;
  rows: ColdLoadRow[];
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} exited with ${code}`))));
  });
}

/** Drops the file's pages from the page cache (posix_fadvise DONTNEED through dd). */
const dropFromPageCache = (path: string) => run("dd", [`if=${path}`, "iflag=nocache", "count=0", "status=none"]);
const rawRead = (path: string) => run("cat", [path]);

export async function coldLoadBench(options: { quick?: boolean } = {}): Promise<ColdLoadBenchFigures> {
  const rounds = options.quick ? 3 : 5;
  const start = load1();
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-cold-load-"));
  const models: Array<{ file: string; preset: TinyPreset; type: TinyWeightType }> = [
    { file: "medium-q8_0.gguf", preset: "medium", type: "q8_0" },
    ...(options.quick ? [] : [{ file: "large-f32.gguf", preset: "large" as const, type: "f32" as const }]),
  ];
  const built = await stat(BUILT_HOST).catch(() => null);
  const hosts = built ? "hosts from dist (as installed)" : "hosts from source under tsx (run `npm run build` first)";
  const config = backendSchema.parse({ gpu: false, threads: 1, context_size: 256 });
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error });
  llama.maxThreads = 1;
  const local = new LlamaBackend();
  const hosted = new HostedBackend("gguf", built ? { entry: BUILT_HOST } : {});
  const cacheConfig = { ...cacheSchema.parse({ persist_cache: false, enable_warmup: false }), cache_dir: dir };
  const manager = new ModelManager(dir);
  const inProcess = await ModelCache.new(cacheConfig, { ...config, isolation: "in-process" }, manager, { backends: { gguf: local }, store: null });
  const viaHost = await ModelCache.new(cacheConfig, { ...config, isolation: "process" }, manager, { backends: { gguf: hosted }, store: null });
  const rows: ColdLoadRow[] = [];
  console.log(`load average at start: ${start}; ${rounds} rounds, each mode once per round in rotating order; ${hosts}\n`);
  try {
    await local.ready(config);
    for (const { file, preset, type } of models) {
      const path = join(dir, file);
      const size = await writeTinyLlamaGguf(path, { preset, type });
      for (const pageCache of ["warm", "dropped"] as const) {
        const prepare = async () => {
          await hosted.ready(config);
          if (pageCache === "dropped") await dropFromPageCache(path);
          else await rawRead(path);
        };
        const viaCache = async (cache: ModelCache) => {
          const lease = await cache.acquire(file);
          lease.release();
        };
        const modes: Record<string, () => Promise<void>> = {
          raw: () => rawRead(path),
          own: async () => {
            const model = await llama.loadModel({ modelPath: path, useMmap: config.mmap, gpuLayers: 0 });
            const context = await model.createContext({ contextSize: config.context_size, batchSize: config.batch_size, sequences: 1, threads: 1 });
            await context.dispose();
            await model.dispose();
          },
          inProcess: () => viaCache(inProcess),
          viaHost: () => viaCache(viaHost),
        };
        const after: Record<string, () => Promise<unknown>> = {
          inProcess: () => inProcess.evict(file),
          viaHost: () => viaHost.evict(file),
        };
        const times: Record<string, number[]> = { raw: [], own: [], inProcess: [], viaHost: [] };
        const names = Object.keys(modes);
        for (let r = 0; r < rounds; r++) {
          for (let i = 0; i < names.length; i++) {
            const name = names[(r + i) % names.length] as string;
            await prepare();
            // `own` includes its dispose (a few ms at most); the cache modes are timed to the lease only.
            const { ms } = await timed(modes[name] as () => Promise<void>);
            (times[name] as number[]).push(ms);
            await after[name]?.();
          }
        }
        const [raw, own, cacheLocal, cacheHost] = [times.raw, times.own, times.inProcess, times.viaHost].map((t) => spread(t ?? []));
        const row: ColdLoadRow = {
          model: file,
          size_bytes: size,
          page_cache: pageCache,
          raw_read_ms: raw as Spread,
          node_llama_cpp_ms: own as Spread,
          cache_in_process_ms: cacheLocal as Spread,
          cache_via_spare_host_ms: cacheHost as Spread,
          in_process_ratio: ratio(cacheLocal as Spread, own as Spread, 1.05, "at_most"),
          via_host_ratio: ratio(cacheHost as Spread, own as Spread, 1.1, "at_most"),
        };
        rows.push(row);
        console.log(
          `${file} (${(size / 1e6).toFixed(1)} MB), page cache ${pageCache}: cat ${formatSpread(row.raw_read_ms, "ms")}, node-llama-cpp ${formatSpread(row.node_llama_cpp_ms, "ms")}; ` +
            `through the cache in process ${formatSpread(row.cache_in_process_ms, "ms")} ${formatRatio(row.in_process_ratio)}, via the spare host ${formatSpread(row.cache_via_spare_host_ms, "ms")} ${formatRatio(row.via_host_ratio)}`,
        );
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
  console.log(`load average at end: ${load1()}`);
  return { load_average: { start, end: load1() }, hosts, rows };
}

if (import.meta.url === `file://${process.argv[1]}`) await coldLoadBench({ quick: process.argv.includes("--quick") });
