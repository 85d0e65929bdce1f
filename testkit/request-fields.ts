/**
 * The walk over every request field the official `openai` client declares for chat completions, completions and
 * responses (read from its type declarations, so a field added by a new client version fails until it is classified):
 * each is shown honoured (a request whose output proves the effect), refused (400 naming the field), or accepted
 * without effect (200, the same greedy output as without it, and listed in ACCEPTED_WITHOUT_EFFECT and docs/api.md).
 * One test file per route (test/server/fields-*.test.ts) runs `walkRequestFields(route)`, each with its own server.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { tinyLlamaVocabulary } from "../src/models/gguf-writer.js";
import { ACCEPTED_WITHOUT_EFFECT } from "../src/server/schemas.js";
import { fileContext, startTestServer, type TestServer } from "./server.js";

let s: TestServer;

const require = createRequire(import.meta.url);
const openaiDir = require.resolve("openai").replace(/index\.js$/, "");

/** The top-level fields of an interface in the openai package's declarations. */
async function declaredFields(file: string, name: string): Promise<string[]> {
  const text = await readFile(`${openaiDir}${file}`, "utf8");
  const start = text.indexOf(`export interface ${name} {`);
  assert.ok(start >= 0, `${name} in ${file}`);
  const body = text.slice(start, text.indexOf("\n}\n", start));
  return [...body.matchAll(/^ {4}([a-z_]+)\??:/gm)].map((m) => m[1] as string).sort();
}

type Json = Record<string, unknown>;

/** Fields Inferno adds to OpenAI's (llama.cpp samplers); walked too, though no openai declaration has them. */
const EXTENSIONS = new Set(["top_k", "min_p", "truncate_prompt_tokens", "cache_prompt"]);

async function post(path: string, body: Json): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Json };
}

/** Replies to deterministic requests (greedy, or seeded), remembered: the walk compares many requests with one baseline. */
const replies = new Map<string, Promise<Json>>();

async function ok(path: string, body: Json): Promise<Json> {
  const key = JSON.stringify([path, body]);
  const deterministic = body.temperature === 0 || body.seed !== undefined;
  let reply = deterministic ? replies.get(key) : undefined;
  if (!reply) {
    reply = post(path, body).then((response) => {
      assert.equal(response.status, 200, JSON.stringify(response.body));
      return response.body;
    });
    if (deterministic) replies.set(key, reply);
  }
  return reply;
}

type Case =
  | { kind: "honoured"; prove: () => Promise<void> }
  | { kind: "refused"; value: unknown; param?: string }
  | { kind: "without effect"; value: unknown };

const honoured = (prove: () => Promise<void>): Case => ({ kind: "honoured", prove });
const refused = (value: unknown, param?: string): Case => ({ kind: "refused", value, ...(param ? { param } : {}) });
const noEffect = (value: unknown): Case => ({ kind: "without effect", value });

/** Fields both OpenAI endpoints (chat completions and responses) accept without effect. */
const OPENAI_WITHOUT_EFFECT = {
  metadata: noEffect({ team: "a" }),
  prompt_cache_key: noEffect("k"),
  prompt_cache_options: noEffect({ mode: "auto" }),
  prompt_cache_retention: noEffect("24h"),
  safety_identifier: noEffect("user-1"),
  service_tier: noEffect("auto"),
  store: noEffect(false),
  user: noEffect("user-1"),
};

interface Endpoint {
  path: string;
  file: string;
  declaration: string;
  /** A minimal greedy request. */
  base: Json;
  /** The generated text of a reply. */
  text(body: Json): string;
  cases: Record<string, Case>;
}

const chatText = (body: Json) =>
  (body.choices as Array<{ message: { content: string | null } }>)[0]?.message.content ?? "";
const completionText = (body: Json) => (body.choices as Array<{ text: string }>)[0]?.text ?? "";
const responseText = (body: Json) =>
  (body.output as Array<{ type: string; content?: Array<{ text: string }> }>)
    .filter((item) => item.type === "message")
    .map((item) => item.content?.map((c) => c.text).join("") ?? "")
    .join("");
const completionTokens = (body: Json) =>
  (body.usage as { completion_tokens?: number; output_tokens?: number }).completion_tokens ??
  (body.usage as { output_tokens: number }).output_tokens;

/**
 * The truncation extension (vLLM's `truncate_prompt_tokens`): an input longer than the context is a 400 without it and
 * served, within the context, with it (test/server/bounds.test.ts has every route).
 */
function truncationProof(path: string, long: Json) {
  return honoured(async () => {
    const refused = await post(path, long);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal((refused.body.error as { code: string }).code, "context_length_exceeded");
    const served = await ok(path, { ...long, truncate_prompt_tokens: -1 });
    assert.ok((served.usage as { prompt_tokens: number }).prompt_tokens < 1024);
  });
}

/**
 * The prompt cache (llama.cpp's `cache_prompt`, on by default): a request sent again finds its prompt cached
 * (`usage.prompt_tokens_details.cached_tokens`), and with `cache_prompt: false` finds none, with the same greedy text.
 */
function cachePromptProof(
  path: string,
  base: Json,
  text: (body: Json) => string,
  details: "prompt_tokens_details" | "input_tokens_details" = "prompt_tokens_details",
) {
  const cached = (body: Json) =>
    (body.usage as Record<string, { cached_tokens: number } | undefined>)[details]?.cached_tokens ?? -1;
  return honoured(async () => {
    const first = await post(path, base);
    const again = await post(path, base);
    const off = await post(path, { ...base, cache_prompt: false });
    for (const reply of [first, again, off]) assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.ok(cached(again.body) > 0, JSON.stringify(again.body.usage));
    assert.equal(cached(off.body), 0);
    assert.equal(text(again.body), text(first.body));
    assert.equal(text(off.body), text(first.body));
  });
}

/** Proofs shared by the endpoints, given how an endpoint spells its request and reads its text. */
function samplingProofs(path: string, base: Json, text: (body: Json) => string, maxField: string) {
  const greedy = () => ok(path, { ...base, [maxField]: 10 }).then(text);
  return {
    temperature: honoured(async () => {
      const texts = await Promise.all(
        [1, 2, 3].map((seed) => ok(path, { ...base, temperature: 1.5, seed, [maxField]: 10 }).then(text)),
      );
      assert.ok(new Set(texts).size > 1, "different seeds at a high temperature give different texts");
    }),
    top_p: honoured(async () =>
      assert.equal(
        await ok(path, { ...base, temperature: 1.5, seed: 4, top_p: 1e-9, [maxField]: 10 }).then(text),
        await greedy(),
      ),
    ),
    top_k: honoured(async () =>
      assert.equal(
        await ok(path, { ...base, temperature: 1.5, seed: 4, top_k: 1, [maxField]: 10 }).then(text),
        await greedy(),
      ),
    ),
    min_p: honoured(async () =>
      assert.equal(
        await ok(path, { ...base, temperature: 1.5, seed: 4, min_p: 1, [maxField]: 10 }).then(text),
        await greedy(),
      ),
    ),
    seed: honoured(async () => {
      const run = () => ok(path, { ...base, temperature: 1.5, seed: 7, [maxField]: 10 }).then(text);
      assert.equal(await run(), await run());
    }),
    frequency_penalty: honoured(async () =>
      assert.notEqual(
        await ok(path, { ...base, frequency_penalty: 2, [maxField]: 16 }).then(text),
        await ok(path, { ...base, [maxField]: 16 }).then(text),
      ),
    ),
    presence_penalty: honoured(async () =>
      assert.notEqual(
        await ok(path, { ...base, presence_penalty: 2, [maxField]: 16 }).then(text),
        await ok(path, { ...base, [maxField]: 16 }).then(text),
      ),
    ),
    [maxField]: honoured(async () => assert.ok(completionTokens(await ok(path, { ...base, [maxField]: 2 })) <= 3)),
  };
}

const chatBase = {
  model: "tiny",
  messages: [{ role: "user", content: "Tell me a story" }],
  temperature: 0,
  max_tokens: 10,
};
const promptBase = { model: "tiny", prompt: "Once upon a time", temperature: 0, max_tokens: 10 };
const responseBase = { model: "tiny", input: "Tell me a story", temperature: 0, max_output_tokens: 10 };

async function logitBiasProof(path: string, base: Json, text: (body: Json) => string): Promise<void> {
  const biased = await ok(path, { ...base, logit_bias: { [await tokenOf("water")]: 100 } });
  assert.match(text(biased), /^(\s*water)+$/);
}

/** The token id of a word piece of the generated test model's vocabulary (`water` is the piece `▁water`). */
let tinyTokens: Map<string, number> | undefined;
async function tokenOf(word: string): Promise<number> {
  if (!tinyTokens) {
    tinyTokens = new Map(tinyLlamaVocabulary().map((piece, id) => [piece.replace("▁", ""), id]));
  }
  const id = tinyTokens.get(word);
  assert.ok(id !== undefined, word);
  return id;
}

async function stopProof(path: string, base: Json, text: (body: Json) => string, maxField: string): Promise<void> {
  const full = await ok(path, { ...base, [maxField]: 10 }).then(text);
  const word = full.trim().split(/\s+/)[2];
  assert.ok(word, full);
  const stopped = await ok(path, { ...base, [maxField]: 10, stop: [word] }).then(text);
  assert.equal(stopped, full.slice(0, full.indexOf(word)));
}

async function streamProof(path: string, base: Json, includeUsage: boolean): Promise<void> {
  const response = await fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      ...base,
      stream: true,
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    }),
  });
  assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
  const events = (await response.text()).split("\n").filter((l) => l.startsWith("data: ") && l !== "data: [DONE]");
  assert.ok(events.length > 2);
  if (includeUsage) assert.ok(events.some((e) => (JSON.parse(e.slice(6)) as Json).usage));
}

/** A longer input reaches the model: more prompt tokens are counted. */
async function longerInput(path: string, base: Json, longer: Json): Promise<void> {
  const promptTokens = async (body: Json) => {
    const usage = (await ok(path, body)).usage as { prompt_tokens?: number; input_tokens?: number };
    return usage.prompt_tokens ?? usage.input_tokens ?? 0;
  };
  assert.ok((await promptTokens({ ...base, ...longer })) > (await promptTokens(base)));
}

const forcedCall = async (path: string, body: Json) => {
  const reply = JSON.stringify(await ok(path, body));
  assert.match(reply, /get_weather/);
};
const weather = { type: "object", properties: { city: { enum: ["Paris", "Rome"] } } };

const endpoints: Endpoint[] = [
  {
    path: "/v1/chat/completions",
    file: "resources/chat/completions/completions.d.ts",
    declaration: "ChatCompletionCreateParamsBase",
    base: chatBase,
    text: chatText,
    cases: {
      ...samplingProofs("/v1/chat/completions", chatBase, chatText, "max_tokens"),
      ...Object.fromEntries(
        Object.entries(
          samplingProofs(
            "/v1/chat/completions",
            { ...chatBase, max_tokens: undefined },
            chatText,
            "max_completion_tokens",
          ),
        ).filter(([k]) => k === "max_completion_tokens"),
      ),
      cache_prompt: cachePromptProof("/v1/chat/completions", chatBase, chatText),
      truncate_prompt_tokens: truncationProof("/v1/chat/completions", {
        ...chatBase,
        messages: Array.from({ length: 60 }, (_, i) => ({
          role: i % 2 ? "assistant" : "user",
          content: `turn ${i} ${"word ".repeat(40)}`,
        })).concat([{ role: "user", content: "Tell me a story" }]),
      }),
      model: honoured(async () => assert.equal((await ok("/v1/chat/completions", chatBase)).model, "tiny")),
      messages: honoured(() =>
        longerInput("/v1/chat/completions", chatBase, {
          messages: [{ role: "user", content: "Tell me a long story about the sea" }],
        }),
      ),
      logit_bias: honoured(() => logitBiasProof("/v1/chat/completions", chatBase, chatText)),
      stop: honoured(() => stopProof("/v1/chat/completions", chatBase, chatText, "max_tokens")),
      stream: honoured(() => streamProof("/v1/chat/completions", chatBase, false)),
      stream_options: honoured(() => streamProof("/v1/chat/completions", chatBase, true)),
      tools: honoured(() =>
        forcedCall("/v1/chat/completions", {
          ...chatBase,
          max_tokens: 100,
          tools: [{ type: "function", function: { name: "get_weather", parameters: weather } }],
          tool_choice: "required",
        }),
      ),
      tool_choice: honoured(async () => {
        const tools = [{ type: "function", function: { name: "get_weather", parameters: weather } }];
        assert.equal(
          ((await ok("/v1/chat/completions", { ...chatBase, tools, tool_choice: "none" })).choices as Json[])[0]
            ?.finish_reason !== "tool_calls",
          true,
        );
        await forcedCall("/v1/chat/completions", {
          ...chatBase,
          max_tokens: 100,
          tools,
          tool_choice: { type: "function", function: { name: "get_weather" } },
        });
      }),
      parallel_tool_calls: honoured(async () => {
        const body = await ok("/v1/chat/completions", {
          ...chatBase,
          max_tokens: 100,
          tools: [{ type: "function", function: { name: "get_weather", parameters: weather } }],
          tool_choice: "required",
          parallel_tool_calls: false,
        });
        assert.equal(
          ((body.choices as Array<{ message: { tool_calls: unknown[] } }>)[0]?.message.tool_calls ?? []).length,
          1,
        );
      }),
      response_format: honoured(async () => {
        const body = await ok("/v1/chat/completions", {
          ...chatBase,
          max_tokens: 40,
          response_format: { type: "json_schema", json_schema: { name: "b", schema: { type: "boolean" } } },
        });
        assert.equal(typeof JSON.parse(chatText(body)), "boolean");
      }),
      audio: refused({ voice: "alloy", format: "mp3" }),
      function_call: refused("auto"),
      functions: refused([{ name: "f" }]),
      logprobs: refused(true),
      modalities: refused(["text", "audio"]),
      moderation: refused({ type: "auto" }),
      n: refused(2),
      reasoning_effort: refused("low"),
      top_logprobs: refused(2),
      verbosity: refused("low"),
      web_search_options: refused({}),
      ...OPENAI_WITHOUT_EFFECT,
      prediction: noEffect({ type: "content", content: "x" }),
    },
  },
  {
    path: "/v1/completions",
    file: "resources/completions.d.ts",
    declaration: "CompletionCreateParamsBase",
    base: promptBase,
    text: completionText,
    cases: {
      ...samplingProofs("/v1/completions", promptBase, completionText, "max_tokens"),
      cache_prompt: cachePromptProof("/v1/completions", promptBase, completionText),
      truncate_prompt_tokens: truncationProof("/v1/completions", { ...promptBase, prompt: "word ".repeat(3000) }),
      model: honoured(async () => assert.equal((await ok("/v1/completions", promptBase)).model, "tiny")),
      prompt: honoured(() =>
        longerInput("/v1/completions", promptBase, { prompt: "Once upon a time there was a sea" }),
      ),
      echo: honoured(async () =>
        assert.ok(
          completionText(await ok("/v1/completions", { ...promptBase, echo: true })).startsWith("Once upon a time"),
        ),
      ),
      logit_bias: honoured(() => logitBiasProof("/v1/completions", promptBase, completionText)),
      stop: honoured(() => stopProof("/v1/completions", promptBase, completionText, "max_tokens")),
      stream: honoured(() => streamProof("/v1/completions", promptBase, false)),
      stream_options: honoured(() => streamProof("/v1/completions", promptBase, true)),
      best_of: refused(2),
      logprobs: refused(1),
      n: refused(2),
      suffix: refused("The end"),
      user: noEffect("user-1"),
    },
  },
  {
    path: "/v1/responses",
    file: "resources/responses/responses.d.ts",
    declaration: "ResponseCreateParamsBase",
    base: responseBase,
    text: responseText,
    cases: {
      temperature: samplingProofs("/v1/responses", responseBase, responseText, "max_output_tokens").temperature as Case,
      top_p: samplingProofs("/v1/responses", responseBase, responseText, "max_output_tokens").top_p as Case,
      max_output_tokens: samplingProofs("/v1/responses", responseBase, responseText, "max_output_tokens")
        .max_output_tokens as Case,
      model: honoured(async () => assert.equal((await ok("/v1/responses", responseBase)).model, "tiny")),
      input: honoured(() =>
        longerInput("/v1/responses", responseBase, { input: "Tell me a long story about the sea" }),
      ),
      instructions: honoured(async () => {
        const usage = async (body: Json) =>
          ((await ok("/v1/responses", body)).usage as { input_tokens: number }).input_tokens;
        assert.ok((await usage({ ...responseBase, instructions: "Be brief and kind" })) > (await usage(responseBase)));
      }),
      stream: honoured(() => streamProof("/v1/responses", responseBase, false)),
      tools: honoured(() =>
        forcedCall("/v1/responses", {
          ...responseBase,
          max_output_tokens: 100,
          tools: [{ type: "function", name: "get_weather", parameters: weather }],
          tool_choice: "required",
        }),
      ),
      tool_choice: honoured(() =>
        forcedCall("/v1/responses", {
          ...responseBase,
          max_output_tokens: 100,
          tools: [{ type: "function", name: "get_weather", parameters: weather }],
          tool_choice: { type: "function", name: "get_weather" },
        }),
      ),
      parallel_tool_calls: honoured(async () => {
        const body = await ok("/v1/responses", {
          ...responseBase,
          max_output_tokens: 100,
          tools: [{ type: "function", name: "get_weather", parameters: weather }],
          tool_choice: "required",
          parallel_tool_calls: false,
        });
        assert.equal((body.output as Json[]).filter((item) => item.type === "function_call").length, 1);
      }),
      text: honoured(async () => {
        const body = await ok("/v1/responses", {
          ...responseBase,
          max_output_tokens: 40,
          text: { format: { type: "json_schema", name: "b", schema: { type: "boolean" } } },
        });
        assert.equal(typeof JSON.parse(responseText(body)), "boolean");
      }),
      truncation: honoured(async () => {
        // An input longer than the context: refused unless truncation is "auto" (test/server/bounds.test.ts has more).
        const turns = Array.from({ length: 60 }, (_, i) => ({
          role: i % 2 ? "assistant" : "user",
          content: `turn ${i} ${"word ".repeat(40)}`,
        }));
        const long = { ...responseBase, input: [...turns, { role: "user", content: "Tell me a story" }] };
        const disabled = await post("/v1/responses", { ...long, truncation: "disabled" });
        assert.equal(disabled.status, 400);
        const auto = await ok("/v1/responses", { ...long, truncation: "auto" });
        assert.equal(auto.truncation, "auto");
      }),
      cache_prompt: cachePromptProof("/v1/responses", responseBase, responseText, "input_tokens_details"),
      background: refused(true),
      context_management: refused([{ type: "compaction" }]),
      conversation: refused("conv_1"),
      include: refused(["message.output_text.logprobs"]),
      moderation: refused({ type: "auto" }),
      previous_response_id: refused("resp_1"),
      prompt: refused({ id: "pmpt_1" }),
      reasoning: refused({ effort: "low" }),
      top_logprobs: refused(2),
      ...OPENAI_WITHOUT_EFFECT,
      stream_options: noEffect({ include_obfuscation: false }),
    },
  },
];

/** Registers the walk over one route's fields, with a server of its own for the file. */
export function walkRequestFields(path: "/v1/chat/completions" | "/v1/completions" | "/v1/responses"): void {
  const fileScope = fileContext();
  before(async () => {
    s = await startTestServer(fileScope.context, { config: { backend: { context_size: 1024 } } });
  });
  after(() => fileScope.cleanUp());
  const endpoint = endpoints.find((e) => e.path === path) as Endpoint;
  describe(`${endpoint.path}: every field the openai client declares`, () => {
    it("is classified: honoured, refused, or accepted without effect", async () => {
      const classified = Object.keys(endpoint.cases).filter((field) => !EXTENSIONS.has(field));
      assert.deepEqual(classified.sort(), await declaredFields(endpoint.file, endpoint.declaration));
    });

    for (const [field, c] of Object.entries(endpoint.cases)) {
      it(`${field}: ${c.kind}`, async () => {
        if (c.kind === "honoured") return c.prove();
        const response = await post(endpoint.path, { ...endpoint.base, [field]: c.value });
        if (c.kind === "refused") {
          assert.equal(response.status, 400, JSON.stringify(response.body));
          assert.equal((response.body.error as { param: string }).param, c.param ?? field);
          return;
        }
        assert.equal(response.status, 200, JSON.stringify(response.body));
        assert.equal(
          endpoint.text(response.body),
          endpoint.text(await ok(endpoint.path, endpoint.base)),
          "the same greedy output as without it",
        );
        const listed = field === "stream_options" ? "stream_options.include_obfuscation" : field;
        assert.ok(ACCEPTED_WITHOUT_EFFECT.includes(listed), `${listed} is in ACCEPTED_WITHOUT_EFFECT`);
      });
    }

    it("an unknown field is refused by name", async () => {
      const response = await post(endpoint.path, { ...endpoint.base, repeat_penalty: 1.3 });
      assert.equal(response.status, 400);
      assert.equal((response.body.error as { param: string }).param, "repeat_penalty");
    });
  });
}

/** docs/api.md's list of fields accepted without effect names every one of them. */
export async function assertDocsListFieldsWithoutEffect(): Promise<void> {
  const doc = await readFile(new URL("../docs/api.md", import.meta.url), "utf8");
  const section = doc.slice(doc.indexOf("Accepted without effect"));
  const listed = section.slice(0, section.indexOf("\n\n"));
  for (const field of ACCEPTED_WITHOUT_EFFECT) assert.ok(listed.includes(`\`${field}\``), `${field} in docs/api.md`);
}
