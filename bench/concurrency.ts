/**
 * Throughput under concurrency (issue 25): N = 1, 4 and 8 clients each asking at once for a greedy 64-token completion
 * of a ~140 MiB generated model (the `large` preset in f16), aggregate tokens/s (all clients' tokens over the time until
 * the last answer ends):
 *
 * - through `inferno serve` with its defaults (model hosts, `backend.parallel` auto) in a process of its own, the
 *   clients `POST /v1/completions` from this process, each on its own connection;
 * - against node-llama-cpp in a fresh process of its own serving the same N generations on N sequences of one context
 *   (bench/own-process.mjs, timed there), measured twice per round as two variants: the section's A/A control.
 *
 * Variants run in an order shuffled each round. Target: ≥ 0.9× at N = 4 and 8. llama.cpp runs on one thread on both
 * sides (`benchFlags`), as the server section explains.
 *
 * Part of `npm run bench` (`-- --only concurrency`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parallelCount } from "../src/models/load-settings.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { formatBytes } from "../src/units.js";
import { freshSeed, interleaved, median, ratios } from "../testkit/stats.js";
import { ownProcess, serveProcess } from "./own-process.js";
import { type Figure, figure, withControl } from "./report.js";
import { postJson, requestTarget, serveArgs } from "./server.js";

const MODEL = "large-f16.gguf";
const TOKENS = 64;
const PROMPT = "Once upon a time";
const CLIENTS = [1, 4, 8] as const;
const CONTEXT = 256;
const TARGET = { min: 0.9 };

export async function concurrencyBench(options: { quick: boolean; seed?: number }): Promise<Figure[]> {
  // A round is 39 generations of 64 tokens (three variants, 1 + 4 + 8 clients), ~100 s on two busy cores: quick takes one.
  const rounds = options.quick ? 1 : 7;
  const seed = options.seed ?? freshSeed();
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-concurrency-"));
  const server = await (async () => {
    const size = await writeTinyLlamaGguf(join(dir, MODEL), { preset: "large", type: "f16" });
    return { size, ...(await serveProcess(dir, serveArgs(dir))) };
  })();
  const figures: Figure[] = [];
  const control: number[] = [];
  try {
    const target = requestTarget(`${server.url}/v1/completions`);
    const body = { model: MODEL, prompt: PROMPT, max_tokens: TOKENS, temperature: 0 };
    // One connection per client, as N users would have.
    const agents = Array.from({ length: Math.max(...CLIENTS) }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const inferno = async (clients: number) => {
      const started = performance.now();
      const answers = await Promise.all(agents.slice(0, clients).map((agent) => postJson(agent, target, body)));
      const tokens = answers.reduce(
        (sum, text) => sum + (JSON.parse(text) as { usage: { completion_tokens: number } }).usage.completion_tokens,
        0,
      );
      return tokens / ((performance.now() - started) / 1000);
    };
    try {
      for (const clients of CLIENTS) {
        const baseline = await ownProcess(1);
        try {
          await baseline.call("load", { path: join(dir, MODEL), contextSize: CONTEXT, sequences: clients });
          const own = async () => {
            const r = await baseline.call<{ ms: number; tokens: number }>("concurrent", {
              prompt: PROMPT,
              maxTokens: TOKENS,
              clients,
            });
            return r.tokens / (r.ms / 1000);
          };
          const rates = { inferno: [] as number[], own: [] as number[], again: [] as number[] };
          await inferno(clients);
          await own();
          await interleaved(
            [
              async () => rates.inferno.push(await inferno(clients)),
              async () => rates.own.push(await own()),
              async () => rates.again.push(await own()),
            ],
            rounds,
            { seed: seed + clients, warmup: 0 },
          );
          control.push(...ratios(rates.again, rates.own));
          figures.push(
            figure({
              section: "concurrency",
              name: `aggregate tokens/s, ${clients} client${clients === 1 ? "" : "s"} × ${TOKENS} tokens`,
              samples: ratios(rates.inferno, rates.own),
              unit: "×",
              baseline: `node-llama-cpp, ${clients} sequence${clients === 1 ? "" : "s"}, own process`,
              target: clients >= 4 ? TARGET : null,
              note: `${median(rates.inferno).toFixed(0)} vs ${median(rates.own).toFixed(0)} tok/s; inferno serve defaults (backend.parallel auto = ${parallelCount(0)}, model hosts), large f16 (${formatBytes(server.size)}), 1 thread`,
            }),
          );
        } finally {
          await baseline.close();
        }
      }
    } finally {
      for (const agent of agents) agent.destroy();
    }
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return withControl("concurrency", control, "node-llama-cpp, N sequences", figures);
}
