/**
 * The prompt cache through the server, on a real nano llama: every dialect gives the same greedy answer with the cache
 * (`cache.prompt_cache = true`, the default) as a server with it off, reports what it reused (OpenAI's
 * `cached_tokens`, Ollama's `prompt_eval_count` of evaluated tokens only), and the server with it off reuses nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { CacheStats } from "../../src/cache/types.js";
import { fileContext, metricSample, scrapeMetrics, startTestServer, type TestServer } from "../../testkit/server.js";

type Json = Record<string, unknown>;

const scope = fileContext();
let on: TestServer;
let off: TestServer;

before(async () => {
  // A context for tools' documentation in the prompt.
  const backend = { context_size: 1024 };
  on = await startTestServer(scope.context, { config: { backend } });
  off = await startTestServer(scope.context, { config: { backend, cache: { prompt_cache: false } } });
});
after(() => scope.cleanUp());

async function post(s: TestServer, path: string, body: Json): Promise<Json> {
  const response = await fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Json;
  assert.equal(response.status, 200, JSON.stringify(json));
  return json;
}

/** The same request to both servers: the replies, the cached server's first. */
async function both(path: string, body: Json): Promise<[Json, Json]> {
  return [await post(on, path, body), await post(off, path, body)];
}

const cachedTokens = (body: Json) =>
  (body.usage as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details.cached_tokens;

const turns = ["Where is the lighthouse?", "And who keeps it?", "How many steps does it have?"];

describe("the same greedy answers with and without the prompt cache", () => {
  test("chat completions: a conversation of three turns", async () => {
    const messages: Json[] = [{ role: "system", content: "You are a patient guide." }];
    for (const [turn, question] of turns.entries()) {
      messages.push({ role: "user", content: question });
      const [cached, whole] = await both("/v1/chat/completions", {
        model: "tiny",
        messages,
        temperature: 0,
        max_tokens: 8,
      });
      const text = (body: Json) => (body.choices as Array<{ message: { content: string } }>)[0]?.message.content;
      assert.equal(text(cached), text(whole), `turn ${turn}`);
      assert.equal(cachedTokens(whole), 0);
      if (turn > 0) assert.ok(cachedTokens(cached) > 0, `turn ${turn}: ${JSON.stringify(cached.usage)}`);
      messages.push({ role: "assistant", content: text(cached) });
    }
  });

  test("completions: a growing prompt", async () => {
    let prompt = "The lighthouse stood on the rocks";
    for (let turn = 0; turn < 3; turn++) {
      const [cached, whole] = await both("/v1/completions", { model: "tiny", prompt, temperature: 0, max_tokens: 8 });
      const text = (body: Json) => (body.choices as Array<{ text: string }>)[0]?.text ?? "";
      assert.equal(text(cached), text(whole), `turn ${turn}`);
      assert.equal(cachedTokens(whole), 0);
      if (turn > 0) assert.ok(cachedTokens(cached) > 0, `turn ${turn}: ${JSON.stringify(cached.usage)}`);
      prompt += `${text(cached)} and then`;
    }
  });

  test("chat with tools: the same calls or text", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "count_steps",
          description: "Counts the steps of a tower",
          parameters: { type: "object", properties: { tower: { type: "string" } }, required: ["tower"] },
        },
      },
    ];
    const messages: Json[] = [{ role: "user", content: "Count the lighthouse steps" }];
    // A forced call first, then two turns where the tools' documentation is in the prompt: the third's prompt extends
    // the second's, so it reuses it (the forced turn's prompt shares only the template's first tokens with the others,
    // too few for a sequence to be taken over while an empty one is free).
    for (let turn = 0; turn < 3; turn++) {
      const [cached, whole] = await both("/v1/chat/completions", {
        model: "tiny",
        messages,
        tools,
        tool_choice: turn === 0 ? "required" : "auto",
        temperature: 0,
        max_tokens: 16,
      });
      type Message = { content: string | null; tool_calls?: Array<{ function: { name: string; arguments: string } }> };
      const message = (body: Json) => (body.choices as Array<{ message: Message }>)[0]?.message as Message;
      const shape = (m: Message) => ({ content: m.content, calls: m.tool_calls?.map((c) => c.function) ?? [] });
      assert.deepEqual(shape(message(cached)), shape(message(whole)), `turn ${turn}`);
      assert.equal(cachedTokens(whole), 0);
      if (turn === 2) assert.ok(cachedTokens(cached) > 0, JSON.stringify(cached.usage));
      messages.push({ role: "user", content: "Please count them again" });
    }
  });

  test("Responses: input_tokens_details.cached_tokens", async () => {
    const input = [{ role: "user", content: "Describe the lighthouse at night" }];
    for (let turn = 0; turn < 2; turn++) {
      const [cached, whole] = await both("/v1/responses", {
        model: "tiny",
        input,
        temperature: 0,
        max_output_tokens: 8,
      });
      const text = (body: Json) =>
        (body.output as Array<{ content?: Array<{ text: string }> }>)
          .flatMap((item) => item.content?.map((c) => c.text) ?? [])
          .join("");
      assert.equal(text(cached), text(whole), `turn ${turn}`);
      const details = (body: Json) => body.usage as { input_tokens_details: { cached_tokens: number } };
      assert.equal(details(whole).input_tokens_details.cached_tokens, 0);
      if (turn > 0) assert.ok(details(cached).input_tokens_details.cached_tokens > 0, JSON.stringify(cached.usage));
    }
  });

  test("Ollama chat: prompt_eval_count counts only the evaluated tokens", async () => {
    const messages: Json[] = [];
    for (const [turn, question] of turns.entries()) {
      messages.push({ role: "user", content: question });
      const [cached, whole] = await both("/api/chat", {
        model: "tiny",
        messages,
        stream: false,
        options: { temperature: 0, num_predict: 8 },
      });
      const content = (body: Json) => (body.message as { content: string }).content;
      assert.equal(content(cached), content(whole), `turn ${turn}`);
      if (turn > 0) {
        assert.ok(
          (cached.prompt_eval_count as number) < (whole.prompt_eval_count as number),
          `turn ${turn}: ${String(cached.prompt_eval_count)} evaluated with the cache, ${String(whole.prompt_eval_count)} without`,
        );
      }
      messages.push({ role: "assistant", content: content(cached) });
    }
  });
});

test("cache stats and /metrics count the prompt cache's hits and tokens, and agree", async () => {
  const prompt = { model: "tiny", prompt: "Counted twice: the keeper's logbook", temperature: 0, max_tokens: 4 };
  const before = (await on.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  assert.ok(before);
  await post(on, "/v1/completions", prompt);
  const again = await post(on, "/v1/completions", prompt);
  const after = (await on.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  assert.ok(after);
  assert.equal(after.generations, before.generations + 2);
  assert.equal(after.hits, before.hits + 2, "the first shares at least the BOS token with what a sequence held");
  assert.ok(after.cached_tokens - before.cached_tokens >= cachedTokens(again));
  const metrics = await scrapeMetrics(on.url);
  assert.equal(metricSample(metrics, "inferno_prompt_cache_hits_total"), after.hits);
  assert.equal(metricSample(metrics, "inferno_prompt_cache_tokens_saved_total"), after.cached_tokens);
  assert.equal(metricSample(metrics, "inferno_prompt_tokens_evaluated_total"), after.evaluated_tokens);
  const whole = (await off.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  assert.ok(whole && whole.generations > 0);
  assert.deepEqual([whole.hits, whole.cached_tokens], [0, 0]);
});
