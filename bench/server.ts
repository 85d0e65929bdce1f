/**
 * What the HTTP server adds to a generation: the same completions (nano tiny llama, 8 tokens, greedy) run directly on
 * the loaded model, through `POST /v1/completions`, and streamed as server-sent events. The three run interleaved, in
 * rotating order, and each is summarised by its median, so a busy machine slows them alike; reported as ratios to the
 * direct call, since absolute times depend on the (shared) machine.
 *
 * llama.cpp runs on one thread here. With two threads on a two-core machine its spin-waiting workers compete with the
 * event loop that serves the HTTP requests, and the ratios swing between 0.7 and 1.3 from run to run: the benchmark
 * would measure thread scheduling rather than what the server adds.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { loadConfig } from "../src/config/index.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { createRuntime, startServer } from "../src/runtime/index.js";

const ROUNDS = 20;
const REQUEST = { model: "bench.gguf", prompt: "Once upon a time", max_tokens: 8, temperature: 0 };

type Variant = { name: string; run: () => Promise<void> };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** Median milliseconds per variant, over ROUNDS interleaved rounds (after one warm-up call each). */
async function interleaved(variants: Variant[]): Promise<number[]> {
  for (const v of variants) await v.run();
  const times: number[][] = variants.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < variants.length; k++) {
      const index = (round + k) % variants.length;
      const started = performance.now();
      await variants[index]?.run();
      times[index]?.push(performance.now() - started);
    }
  }
  return times.map(median);
}

export async function serverOverheadBench(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-"));
  try {
    await writeTinyLlamaGguf(join(dir, "bench.gguf"), { preset: "nano" });
    const config = await loadConfig({
      env: { HOME: dir },
      cwd: dir,
      flags: [
        { key: "models_dir", value: dir, flag: "--models-dir" },
        { key: "cache.persist_cache", value: false, flag: "--persist-cache" },
        { key: "backend.context_size", value: 256, flag: "--context-size" },
        { key: "backend.gpu", value: false, flag: "--gpu" },
        { key: "backend.threads", value: 1, flag: "--threads" },
      ],
    });
    const runtime = await createRuntime(config);
    const server = await startServer(runtime, { port: 0 });
    try {
      const post = (stream: boolean) => async () => {
        const response = await fetch(`${server.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...REQUEST, stream }),
        });
        await response.text();
      };
      const variants: Variant[] = [
        {
          name: "direct withModel + complete",
          run: async () => {
            await runtime.cache.withModel(REQUEST.model, (model) =>
              model.kind === "text" ? model.complete(REQUEST.prompt, { maxTokens: REQUEST.max_tokens, temperature: 0 }) : null,
            );
          },
        },
        { name: "POST /v1/completions", run: post(false) },
        { name: "POST /v1/completions, stream", run: post(true) },
      ];
      const [direct = 1, ...rest] = await interleaved(variants);
      console.log(`\nserver overhead: ${ROUNDS} interleaved rounds of ${REQUEST.max_tokens}-token completions on a nano tiny llama, one thread (hit path), medians\n`);
      console.log(`${variants[0]?.name.padEnd(30)} 1.00  (${direct.toFixed(1)} ms per request on this machine now)`);
      for (const [i, ms] of rest.entries()) {
        console.log(`${variants[i + 1]?.name.padEnd(30)} ${(ms / direct).toFixed(2)}  (+${(ms - direct).toFixed(1)} ms)`);
      }
    } finally {
      await server.close(0);
      await runtime.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
