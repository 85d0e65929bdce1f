/**
 * llama.cpp's thread count on generated tiny llamas: tokens per second with `backend.threads = 0` (auto, the rule in
 * `threadCount`), with 1 thread and with every logical core, on a quiet machine and with one busy process competing for
 * the cores. Auto is reported against the best fixed count measured in the same run (target: ≥ 0.8×), since absolute
 * speed depends on the machine and on whoever else uses it.
 *
 * Part of `npm run bench`; alone: `node --import tsx bench/backends.ts`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { physicalCores, threadCount } from "../src/backends/common.js";
import { LlamaBackend } from "../src/backends/llama.js";
import type { TextModel } from "../src/backends/types.js";
import { backendSchema } from "../src/config/schema.js";
import { type TinyPreset, writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import { freshSeed, median, ratios, roundOrders } from "../testkit/stats.js";
import { type Figure, figure } from "./report.js";

const TOKENS = 200;
/**
 * A full run's sizes and a quick one's: `runLimitMs`, how long each measurement runs before it counts what it got (a
 * collapsed configuration can run at 1 token/s); `rounds`, interleaved measurements per setting (the median is
 * reported).
 */
const SIZES = { full: { runLimitMs: 1000, rounds: 5 }, quick: { runLimitMs: 500, rounds: 2 } };
const PROMPT = "Once upon a time";

async function tokensPerSecond(model: TextModel, runLimitMs: number): Promise<number> {
  const start = performance.now();
  const { usage } = await model.complete(PROMPT, {
    maxTokens: TOKENS,
    temperature: 0,
    signal: AbortSignal.timeout(runLimitMs),
  });
  return usage.completionTokens / ((performance.now() - start) / 1000);
}

/** One process spinning on a core, as a compiler or another model runner would. */
async function busyProcess(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" });
  await new Promise((resolve) => setTimeout(resolve, 300));
  return child;
}

/** Tokens per second: auto vs 1 thread vs all cores, quiet and contended, on three model sizes. */
export async function backendThreadsBench(
  options: { quick: boolean; seed?: number } = { quick: false },
): Promise<Figure[]> {
  const { runLimitMs, rounds } = options.quick ? SIZES.quick : SIZES.full;
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-"));
  const backend = new LlamaBackend();
  const figures: Figure[] = [];
  try {
    const presets: TinyPreset[] = options.quick ? ["nano"] : ["nano", "small", "medium"];
    for (const preset of presets) await writeTinyLlamaGguf(join(dir, `${preset}.gguf`), { preset, type: "q8_0" });
    const manager = new ModelManager(dir);
    const base = backendSchema.parse({ gpu: false, context_size: 512 });
    const cores = availableParallelism();
    const auto = threadCount(0, physicalCores());
    const how = `${cores} logical / ${physicalCores()} physical cores; up to ${TOKENS} tokens or ${runLimitMs / 1000} s per run, q8_0`;
    // Fixed counts 1 and every core; auto is measured as the count it resolves to (when that is one of the fixed
    // counts it is the same configuration, measured once: a second copy would only measure the shared machine's noise).
    const counts = [...new Set([1, cores, auto])].sort((a, b) => a - b);
    const settings: Array<[string, number]> = counts.map((n) => [
      `${n === auto ? "auto = " : ""}${n} thread${n === 1 ? "" : "s"}`,
      n,
    ]);
    const autoLabel = settings.find(([, n]) => n === auto)?.[0] ?? "";
    const fixed = new Set(settings.filter(([, n]) => n === 1 || n === cores).map(([label]) => label));
    for (const contended of [false, true]) {
      const busy = contended ? await busyProcess() : null;
      try {
        for (const preset of presets) {
          // Each setting's model stays loaded; rounds interleave the settings and the median is kept, so a burst of
          // someone else's work on the shared machine does not land on one setting only.
          const models = new Map<string, TextModel>();
          for (const [label, threads] of settings) {
            models.set(
              label,
              (await backend.load(await manager.resolve(preset), { backend: { ...base, threads } })) as TextModel,
            );
          }
          const samples = new Map<string, number[]>(settings.map(([label]) => [label, []]));
          for (const order of roundOrders(settings.length, rounds, options.seed ?? freshSeed())) {
            // Shuffled, with a pause: a run right after a collapsed one is slowed by its aftermath, so no setting may
            // always follow the same one.
            for (const i of order) {
              const [label] = settings[i] as [string, number];
              await new Promise((resolve) => setTimeout(resolve, 200));
              samples.get(label)?.push(await tokensPerSecond(models.get(label) as TextModel, runLimitMs));
            }
          }
          for (const model of models.values()) await model.dispose();
          const rates = new Map([...samples].map(([label, values]) => [label, median(values)]));
          const bestLabel = [...fixed].reduce((a, b) => ((rates.get(b) ?? 0) > (rates.get(a) ?? 0) ? b : a));
          const cells = settings.map(([label]) => `${label} ${(rates.get(label) ?? 0).toFixed(1)} tok/s`);
          figures.push(
            figure({
              section: "threads",
              name: `auto threads, ${preset}, ${contended ? "1 busy process" : "quiet"}`,
              samples: ratios(samples.get(autoLabel) ?? [], samples.get(bestLabel) ?? []),
              unit: "×",
              baseline: `best fixed count (${bestLabel})`,
              target: { min: 0.8 },
              note: `${cells.join(", ")}; ${how}`,
            }),
          );
        }
      } finally {
        busy?.kill();
      }
    }
    return figures;
  } finally {
    await backend.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await backendThreadsBench());
