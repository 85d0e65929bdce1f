/**
 * Backend throughput on generated tiny llamas: tokens per second by model size, and the effect of the thread count —
 * Inferno's default (physical cores) against one thread and against oversubscription (twice the cores, bypassing
 * Inferno's clamp). Results are printed as ratios to the default, since absolute speed depends on the machine.
 *
 * Part of `npm run bench`; alone: `node --import tsx bench/backends.ts`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";
import { LlamaBackend } from "../src/backends/llama.js";
import type { TextModel } from "../src/backends/types.js";
import { backendSchema } from "../src/config/schema.js";
import { type TinyPreset, writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";

const TOKENS = 48;
const PROMPT = "Once upon a time";

async function tokensPerSecond(model: TextModel): Promise<number> {
  await model.complete(PROMPT, { maxTokens: 4, seed: 0 }); // warm-up
  const start = performance.now();
  const { usage } = await model.complete(PROMPT, { maxTokens: TOKENS, seed: 1 });
  return usage.completionTokens / ((performance.now() - start) / 1000);
}

/** Oversubscribed threads straight through node-llama-cpp, which Inferno's own settings never allow. */
async function rawTokensPerSecond(path: string, threads: number): Promise<number> {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 256, threads });
  const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
  await completion.generateCompletion(PROMPT, { maxTokens: 4 });
  const start = performance.now();
  let tokens = 0;
  await completion.generateCompletion(PROMPT, { maxTokens: TOKENS, temperature: 0.8, seed: 1, onToken: (t) => (tokens += t.length) });
  const result = tokens / ((performance.now() - start) / 1000);
  await llama.dispose();
  return result;
}

/** Tokens per second by model size at the default thread count, one thread, and oversubscribed. */
export async function backendThreadsBench(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-"));
  try {
    const presets: TinyPreset[] = ["nano", "small", "medium"];
    for (const preset of presets) await writeTinyLlamaGguf(join(dir, `${preset}.gguf`), { preset, type: "q8_0" });
    const manager = new ModelManager(dir);
    const backend = new LlamaBackend();
    const base = backendSchema.parse({ gpu: false, context_size: 256 });
    console.log(`cores (logical): ${availableParallelism()}; ${TOKENS} tokens per run, q8_0 weights`);
    for (const preset of presets) {
      const rates: Record<string, number> = {};
      for (const [label, threads] of [["default (physical cores)", 0], ["1 thread", 1]] as const) {
        const model = (await backend.load(await manager.resolve(preset), { backend: { ...base, threads } })) as TextModel;
        rates[label] = await tokensPerSecond(model);
        await model.dispose();
      }
      rates[`${2 * availableParallelism()} threads (oversubscribed)`] = await rawTokensPerSecond(
        join(dir, `${preset}.gguf`),
        2 * availableParallelism(),
      );
      const reference = rates["default (physical cores)"] as number;
      for (const [label, rate] of Object.entries(rates)) {
        console.log(`${preset.padEnd(7)} ${label.padEnd(28)} ${rate.toFixed(1).padStart(8)} tok/s  ×${(rate / reference).toFixed(2)}`);
      }
    }
    await backend.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await backendThreadsBench();
