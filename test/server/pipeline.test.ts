/**
 * One generation pipeline, several dialects (server/generation.ts): OpenAI chat, Responses and Ollama's chat and
 * generate parse into one request and render one stream of events. On the fake backend (a deterministic echo), each
 * dialect gives the same text whole and streamed, each counts as one request on the cache, and each refuses a tensor
 * model with the one capability sentence before anything is loaded.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startFakeServer } from "../../testkit/fake-server.js";

const PROMPT = "one two three four";

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

/** A whole (non-streamed) JSON answer, typed as the test reads it. */
async function answer<T>(url: string, body: unknown): Promise<T> {
  return (await (await post(url, body)).json()) as T;
}

/** The `data:` payloads of a server-sent event stream, `[DONE]` left out. */
function sseData(text: string): Array<Record<string, unknown>> {
  return text
    .split("\n")
    .filter((line) => line.startsWith("data: ") && line !== "data: [DONE]")
    .map((line) => JSON.parse(line.slice("data: ".length)) as Record<string, unknown>);
}

function ndjson(text: string): Array<Record<string, unknown>> {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

test("every dialect's answer comes from the one pipeline: the same text whole and streamed, one request each", async (t) => {
  const s = await startFakeServer(t, { models: ["a.gguf"] });
  const messages = [{ role: "user", content: PROMPT }];
  const chat = { model: "a.gguf", messages };
  type Dialect = { whole: () => Promise<string>; streamed: () => Promise<string> };
  const dialects: Record<string, Dialect> = {
    "OpenAI chat": {
      whole: async () =>
        (await answer<{ choices: Array<{ message: { content: string } }> }>(`${s.url}/v1/chat/completions`, chat))
          .choices[0]?.message.content ?? "",
      streamed: async () =>
        sseData(await (await post(`${s.url}/v1/chat/completions`, { ...chat, stream: true })).text())
          .map((chunk) => (chunk.choices as Array<{ delta: { content?: string } }>)[0]?.delta.content ?? "")
          .join(""),
    },
    Responses: {
      whole: async () =>
        (
          await answer<{ output: Array<{ content: Array<{ text: string }> }> }>(`${s.url}/v1/responses`, {
            model: "a.gguf",
            input: PROMPT,
          })
        ).output[0]?.content[0]?.text ?? "",
      streamed: async () =>
        sseData(await (await post(`${s.url}/v1/responses`, { model: "a.gguf", input: PROMPT, stream: true })).text())
          .filter((event) => event.type === "response.output_text.delta")
          .map((event) => event.delta)
          .join(""),
    },
    "Ollama chat": {
      whole: async () =>
        (await answer<{ message: { content: string } }>(`${s.url}/api/chat`, { ...chat, stream: false })).message
          .content,
      streamed: async () =>
        ndjson(await (await post(`${s.url}/api/chat`, chat)).text())
          .map((line) => (line.message as { content: string }).content)
          .join(""),
    },
    "Ollama generate": {
      whole: async () =>
        (
          await answer<{ response: string }>(`${s.url}/api/generate`, {
            model: "a.gguf",
            prompt: PROMPT,
            stream: false,
          })
        ).response,
      streamed: async () =>
        ndjson(await (await post(`${s.url}/api/generate`, { model: "a.gguf", prompt: PROMPT })).text())
          .map((line) => line.response)
          .join(""),
    },
  };
  const texts = new Set<string>();
  for (const [name, dialect] of Object.entries(dialects)) {
    const whole = await dialect.whole();
    assert.equal(await dialect.streamed(), whole, `${name}: the stream's pieces make the whole answer`);
    texts.add(whole);
  }
  assert.equal(texts.size, 1, `one answer for every dialect: ${[...texts].join(" | ")}`);
  assert.match([...texts][0] ?? "", /one two three four/);
  const stats = s.cache.stats();
  assert.equal(stats.models.find((m) => m.name === "a.gguf")?.requests, 8, "two requests per dialect");
});

test("a tensor model is refused by every dialect in the one sentence, before anything is loaded", async (t) => {
  const s = await startFakeServer(t, { models: ["a.gguf", "t.onnx"] });
  const messages = [{ role: "user", content: PROMPT }];
  const refusals: Array<[string, unknown, string]> = [
    ["/v1/chat/completions", { model: "t.onnx", messages }, "chat completions"],
    ["/v1/completions", { model: "t.onnx", prompt: PROMPT }, "text completions"],
    ["/v1/responses", { model: "t.onnx", input: PROMPT }, "responses"],
    ["/v1/embeddings", { model: "t.onnx", input: PROMPT }, "embeddings"],
    ["/api/chat", { model: "t.onnx", messages }, "chat"],
    ["/api/chat", { model: "t.onnx", messages: [] }, "chat"],
    ["/api/generate", { model: "t.onnx", prompt: PROMPT }, "text generation"],
    ["/api/embed", { model: "t.onnx", input: PROMPT }, "embeddings"],
  ];
  for (const [path, body, task] of refusals) {
    const response = await post(`${s.url}${path}`, body);
    assert.equal(response.status, 400, path);
    const { error } = (await response.json()) as { error: string | { message: string; code: string } };
    const message = typeof error === "string" ? error : error.message;
    assert.equal(message, `model t.onnx is an ONNX tensor model and cannot do ${task}`, path);
    if (typeof error !== "string") assert.equal(error.code, "model_capability_missing");
  }
  assert.deepEqual(s.cache.loadedModels(), [], "nothing was loaded");
});
