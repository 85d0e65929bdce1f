/**
 * What the HTTP server adds to a generation (issue 13, figure 1.6): the same greedy 8-token generations on a nano
 * tiny llama run directly on the cached model (`withModel` + `complete` / `chat`), through `POST /v1/completions` and
 * `POST /v1/chat/completions`, each plain and streamed as server-sent events. All variants run interleaved, in rotating
 * order; each HTTP variant is reported at p50 as the median of its per-round ratio to the direct call of that round,
 * and at p99 as the ratio of the two p99s — absolute times depend on the (shared) machine.
 *
 * llama.cpp runs on one thread here. With two threads on a two-core machine its spin-waiting workers compete with the
 * event loop that serves the HTTP requests, and the ratios swing between 0.7 and 1.3 from run to run: the benchmark
 * would measure thread scheduling rather than what the server adds.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage } from "../src/backends/types.js";
import { loadConfig } from "../src/config/index.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { createRuntime, startServer } from "../src/runtime/index.js";
import { type Figure, figure, interleaved, median, percentile, ratios } from "./report.js";

const MODEL = "bench.gguf";
const PROMPT = "Once upon a time";
const MAX_TOKENS = 8;
const MESSAGES: ChatMessage[] = [{ role: "user", content: PROMPT }];
/** The server's target at p50 (issue 13): at most 15 % over the direct call. */
const TARGET = { max: 1.15 };

export async function serverOverheadBench(options: { quick: boolean }): Promise<Figure[]> {
  const rounds = options.quick ? 15 : 100;
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-"));
  try {
    await writeTinyLlamaGguf(join(dir, MODEL), { preset: "nano" });
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
      const post = (path: string, body: object, stream: boolean) => async () => {
        const response = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...body, model: MODEL, max_tokens: MAX_TOKENS, temperature: 0, stream }),
        });
        if (!response.ok) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
        await response.text();
      };
      const generation = { maxTokens: MAX_TOKENS, temperature: 0 };
      const direct = {
        complete: () => runtime.cache.withModel(MODEL, (m) => (m.kind === "text" ? m.complete(PROMPT, generation) : null)),
        chat: () => runtime.cache.withModel(MODEL, (m) => (m.kind === "text" ? m.chat(MESSAGES, generation) : null)),
      };
      const routes = [
        { name: "POST /v1/completions", against: "complete", run: post("/v1/completions", { prompt: PROMPT }, false) },
        { name: "POST /v1/completions, stream", against: "complete", run: post("/v1/completions", { prompt: PROMPT }, true) },
        { name: "POST /v1/chat/completions", against: "chat", run: post("/v1/chat/completions", { messages: MESSAGES }, false) },
        { name: "POST /v1/chat/completions, stream", against: "chat", run: post("/v1/chat/completions", { messages: MESSAGES }, true) },
      ] as const;
      const [completeMs = [], chatMs = [], ...routeMs] = await interleaved([direct.complete, direct.chat, ...routes.map((r) => r.run)], rounds);
      const figures: Figure[] = [];
      for (const [i, route] of routes.entries()) {
        const ms = routeMs[i] ?? [];
        const base = route.against === "complete" ? completeMs : chatMs;
        const baseline = `direct ${route.against}()`;
        const extra = (q: number) => {
          const ms_ = q === 50 ? median(ms) - median(base) : percentile(ms, q) - percentile(base, q);
          return `${ms_ >= 0 ? "+" : "−"}${Math.abs(ms_).toFixed(1)}`;
        };
        figures.push(
          figure({
            section: "server",
            item: "1.6",
            name: `${route.name} p50`,
            samples: ratios(ms, base),
            unit: "×",
            baseline,
            target: TARGET,
            note: `${extra(50)} ms on ${median(base).toFixed(1)} ms; ${MAX_TOKENS} tokens, nano llama, 1 thread`,
          }),
          figure({
            section: "server",
            item: "1.6",
            name: `${route.name} p99`,
            samples: percentile(ms, 99) / percentile(base, 99),
            unit: "×",
            baseline,
            note: `${extra(99)} ms on ${percentile(base, 99).toFixed(1)} ms (p99 of ${rounds} rounds)`,
          }),
        );
      }
      return figures;
    } finally {
      await server.close(0);
      await runtime.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
