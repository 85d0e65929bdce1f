/**
 * Issue 24's figures: the prompt cache on a model big enough for prompt evaluation to dominate (a generated ~290 MB
 * llama, f32, one thread, in process). Turn N+1 of a ~2,000-token conversation — its time to first token (a greedy
 * chat of one token: TTFT is the whole request) — against
 *
 * - (a) the same request with reuse off (`cachePrompt: false`: the whole prompt evaluated; target: reuse ≤ 0.25×);
 * - (b) node-llama-cpp evaluating only the new tokens on a sequence that holds a history of the same length, and
 *   sampling one token (the floor: target ≤ 1.3×, per round, interleaved);
 * - after an unload (the prefix saved) and a reload, the same request restoring the saved prefix (target ≤ 0.35× (a));
 * - an AI SDK (`ai`) tool loop of 5 steps (a forced call each step) against two servers, prompt cache on and off, end
 *   to end (no target: what an agent loop gains).
 *
 * (a) takes tens of seconds a round on one thread, so it has few rounds: its first sample is the request that first
 * evaluates the conversation. Part of `npm run bench` (`-- --only prompt`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, tool } from "ai";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { z } from "zod";
import { LlamaBackend } from "../src/backends/llama.js";
import type { ChatMessage, GenerationOptions, TextModel } from "../src/backends/types.js";
import { backendSchema } from "../src/config/schema.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import { MIB } from "../src/units.js";
import { fileContext, startTestServer } from "../testkit/server.js";
import { median, ratios } from "../testkit/stats.js";
import { type Figure, figure } from "./report.js";

const CONTEXT = 2560;
const LOOP_CONTEXT = 4096;
const HISTORY_TOKENS = 2000;
const WORDS =
  "the sea ship light night keeper island rock stair step lamp wind wave storm harbour sail flag course weather " +
  "north south east west morning evening cloud rain sun moon star boat crew captain rope anchor coast cliff bird";

/** A conversation of about `tokens` tokens (user and assistant turns of plain words), deterministic. */
function conversation(model: TextModel, tokens: number): Promise<ChatMessage[]> {
  const words = WORDS.split(" ");
  let seed = 7;
  const word = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return words[seed % words.length] as string;
  };
  return (async () => {
    const messages: ChatMessage[] = [{ role: "system", content: "You keep the lighthouse log and answer briefly." }];
    let count = 0;
    for (let turn = 0; count < tokens; turn++) {
      const content = Array.from({ length: 60 }, word).join(" ");
      messages.push({ role: turn % 2 === 0 ? "user" : "assistant", content });
      // The template adds a few tokens per message around its text.
      count += (await model.tokenize(content)).length + 6;
    }
    if (messages[messages.length - 1]?.role === "user") messages.push({ role: "assistant", content: "Noted." });
    return messages;
  })();
}

/** A chat's time to first token (ms) and usage: one greedy token. */
async function firstToken(
  model: TextModel,
  messages: ChatMessage[],
  options: GenerationOptions = {},
): Promise<{ ms: number; promptTokens: number; cached: number }> {
  const started = performance.now();
  const result = await model.chat(messages, { temperature: 0, maxTokens: 1, ...options });
  const ms = performance.now() - started;
  return { ms, promptTokens: result.usage.promptTokens, cached: result.usage.cachedPromptTokens ?? 0 };
}

const question = (i: number): ChatMessage => ({ role: "user", content: `Question ${i}: what did the keeper see?` });

/** (b): node-llama-cpp on its own sequence holding `history` tokens, evaluating `fresh` new tokens and sampling one. */
async function rawFloor(path: string, historyTokens: number) {
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
  llama.maxThreads = 1;
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: CONTEXT, batchSize: 512, threads: 1 });
  const sequence = context.getSequence();
  const words = WORDS.split(" ");
  const text = Array.from({ length: historyTokens * 2 }, (_, i) => words[(i * 7) % words.length]).join(" ");
  const history = model.tokenize(text).slice(0, historyTokens);
  for await (const _ of sequence.evaluate(history, { temperature: 0 })) break;
  return {
    /** Evaluates `fresh` new tokens after the history and samples one; the sequence is cut back to the history first. */
    async turn(fresh: number): Promise<number> {
      await sequence.eraseContextTokenRanges([{ start: history.length, end: sequence.nextTokenIndex }]);
      const tokens = model.tokenize(Array.from({ length: fresh }, (_, i) => words[(i * 3) % words.length]).join(" "));
      const started = performance.now();
      for await (const _ of sequence.evaluate(tokens.slice(0, fresh) as Token[], { temperature: 0 })) break;
      return performance.now() - started;
    },
    dispose: () => context.dispose().then(() => model.dispose()),
  };
}

/** The AI SDK's tool loop of 5 steps (a forced call each), end to end, in ms, against a server. */
async function toolLoop(url: string, system: string): Promise<number> {
  const openai = createOpenAI({ baseURL: `${url}/v1`, apiKey: "not-needed" });
  const started = performance.now();
  const result = await generateText({
    model: openai.chat("conversation"),
    system,
    prompt: "Look up what the keeper saw, one topic at a time.",
    tools: {
      lookup: tool({
        description: "What the log says about a topic",
        inputSchema: z.object({ topic: z.enum(["ships", "weather", "lamp"]) }),
        execute: async ({ topic }) => ({ topic, entries: 3 }),
      }),
    },
    toolChoice: "required",
    stopWhen: stepCountIs(5),
    temperature: 0,
    maxOutputTokens: 100,
  });
  if (result.steps.length !== 5) throw new Error(`the tool loop took ${result.steps.length} steps, not 5`);
  return performance.now() - started;
}

export async function promptCacheBench({ quick }: { quick: boolean }): Promise<Figure[]> {
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-prompt-"));
  const scope = fileContext();
  try {
    const path = join(dir, "models", "conversation.gguf");
    await writeTinyLlamaGguf(path, { preset: "large", type: "f32" });
    const descriptor = await new ModelManager(join(dir, "models")).resolve("conversation");
    const backend = backendSchema.parse({
      gpu: false,
      threads: 1,
      context_size: CONTEXT,
      batch_size: 512,
      isolation: "in-process",
    });
    const promptStore = { cacheDir: join(dir, "cache"), budgetBytes: 1024 * MIB };
    const llama = new LlamaBackend();
    const load = async () => (await llama.load(descriptor, { backend, promptStore })) as TextModel;
    let model = await load();
    const history = await conversation(model, HISTORY_TOKENS);
    const reuseRounds = quick ? 3 : 5;
    const wholeRounds = quick ? 1 : 2;

    // (a), first sample: the conversation evaluated whole for the first time (it then stays in the sequence).
    const whole = [await firstToken(model, [...history, question(0)], { cachePrompt: false })];
    const reused: Array<Awaited<ReturnType<typeof firstToken>>> = [];
    for (let i = 1; i <= reuseRounds; i++) reused.push(await firstToken(model, [...history, question(i)]));
    for (let i = 1; i < wholeRounds; i++) {
      whole.push(await firstToken(model, [...history, question(100 + i)], { cachePrompt: false }));
    }
    const evaluated = median(reused.map((r) => r.promptTokens - r.cached));
    const promptTokens = whole[0]?.promptTokens ?? 0;

    // (b), interleaved with more reuse rounds: the floor at the same position in the context.
    const raw = await rawFloor(path, promptTokens - evaluated);
    const floor: number[] = [];
    const reusedAgain: number[] = [];
    for (let i = 0; i < reuseRounds; i++) {
      reusedAgain.push((await firstToken(model, [...history, question(200 + i)])).ms);
      floor.push(await raw.turn(evaluated));
    }
    await raw.dispose();

    // After an unload (the prefix saved) and a reload: the request restores it.
    const restored: number[] = [];
    const saveMs: number[] = [];
    for (let i = 0; i < (quick ? 1 : 2); i++) {
      const started = performance.now();
      await model.dispose();
      saveMs.push(performance.now() - started);
      model = await load();
      const turn = await firstToken(model, [...history, question(300 + i)]);
      if (turn.cached < promptTokens / 2) throw new Error(`the reload restored ${turn.cached} tokens`);
      restored.push(turn.ms);
    }
    await model.dispose();

    // The AI SDK's tool loop against two servers, prompt cache on and off (a system prompt of ~400 tokens; the tools'
    // documentation and each step's call and result add ~100 tokens a step).
    const system = history
      .slice(1, 7)
      .map((m) => m.content)
      .join("\n");
    const server = (promptCache: boolean) =>
      startTestServer(scope.context, {
        models: { gguf: { "conversation.gguf": { preset: "large", type: "f32" } } },
        config: {
          cache: { prompt_cache: promptCache, persist_cache: false },
          backend: { context_size: LOOP_CONTEXT, batch_size: 512 },
        },
      });
    const on = await server(true);
    const off = await server(false);
    const loopOn: number[] = [];
    const loopOff: number[] = [];
    let loopFailure = "";
    try {
      // One round: with the cache off, a loop evaluates ~4,000 tokens on one thread.
      loopOn.push(await toolLoop(on.url, system));
      loopOff.push(await toolLoop(off.url, system));
    } catch (error) {
      // Reported as a missed figure; the figures above stand.
      loopFailure = `the loop failed: ${(error as Error).message.slice(0, 200)}`;
    }

    const wholeMs = median(whole.map((w) => w.ms));
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const what = `turn N+1 of a ${promptTokens}-token chat (${evaluated} new tokens), 290 MB llama, 1 thread`;
    return [
      figure({
        section: "prompt",
        name: `prompt cache: TTFT of ${what}, against reuse off`,
        samples: reused.map((r) => r.ms / wholeMs),
        unit: "×",
        baseline: "the same request with cache_prompt off",
        target: { max: 0.25 },
        note: `${s(median(reused.map((r) => r.ms)))} vs ${s(wholeMs)} (${whole.length} round(s) of the baseline)`,
      }),
      figure({
        section: "prompt",
        name: `prompt cache: TTFT of ${what}, against evaluating only the new tokens`,
        samples: ratios(reusedAgain, floor),
        unit: "×",
        baseline: "node-llama-cpp evaluating the new tokens on a sequence holding the history",
        target: { max: 1.3 },
        note: `${s(median(reusedAgain))} vs ${s(median(floor))}`,
      }),
      figure({
        section: "prompt",
        name: `prompt cache: TTFT after an unload and reload, the saved prefix restored (${promptTokens}-token chat)`,
        samples: restored.map((ms) => ms / wholeMs),
        unit: "×",
        baseline: "evaluating the prompt whole",
        target: { max: 0.35 },
        note: `${s(median(restored))} vs ${s(wholeMs)}; saving it on unload took ${s(median(saveMs))}`,
      }),
      figure({
        section: "prompt",
        name: "prompt cache: AI SDK tool loop of 5 steps end to end (chat completions, forced calls), 290 MB llama",
        samples: loopFailure ? [NaN] : ratios(loopOn, loopOff),
        unit: "×",
        baseline: "the same loop on a server with prompt_cache off",
        note: loopFailure || `${s(median(loopOn))} vs ${s(median(loopOff))}`,
      }),
    ];
  } finally {
    await scope.cleanUp();
    await rm(dir, { recursive: true, force: true });
  }
}
