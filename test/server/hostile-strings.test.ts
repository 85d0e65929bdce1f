/**
 * Every string a client names is bounded (issue 23, item 3): a 2 MiB model name, stop string, tool name, id, metadata
 * value or unknown field name is a 400 naming the field and the limit, its answer stays small, and nothing of it is kept:
 * 100 such requests leave the server's memory flat and its event backlog small.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { STRING_LIMITS } from "../../src/server/strings.js";
import { startTestServer } from "../../testkit/server.js";

const HUGE = "m".repeat(2 * 1024 * 1024);
const JSON_HEADERS = { "content-type": "application/json" };

it("2 MiB strings in every kind of field: 400 naming the field and the limit, a small answer", async (t) => {
  const s = await startTestServer(t);
  const user = [{ role: "user", content: "hi" }];
  const cases: Array<[path: string, body: unknown, param: RegExp, limit: number]> = [
    ["/v1/completions", { model: HUGE, prompt: "x" }, /^model/, STRING_LIMITS.model],
    ["/v1/chat/completions", { model: HUGE, messages: user }, /^model/, STRING_LIMITS.model],
    ["/v1/embeddings", { model: HUGE, input: "x" }, /^model/, STRING_LIMITS.model],
    ["/v1/responses", { model: HUGE, input: "x" }, /^model/, STRING_LIMITS.model],
    ["/api/generate", { model: HUGE, prompt: "x" }, /^model/, STRING_LIMITS.model],
    ["/api/chat", { model: HUGE, messages: user }, /^model/, STRING_LIMITS.model],
    ["/api/show", { model: HUGE }, /^model/, STRING_LIMITS.model],
    ["/v1/cache/clear", { model: HUGE }, /^model/, STRING_LIMITS.model],
    ["/v1/cache/warmup", { models: [HUGE] }, /^models\[0\]/, STRING_LIMITS.model],
    ["/v1/completions", { model: "tiny.gguf", prompt: "x", stop: HUGE }, /^stop/, STRING_LIMITS.stop],
    ["/api/generate", { model: "tiny.gguf", prompt: "x", options: { stop: [HUGE] } }, /stop/, STRING_LIMITS.stop],
    ["/v1/completions", { model: "tiny.gguf", prompt: "x", user: HUGE }, /^user/, STRING_LIMITS.name],
    [
      "/v1/completions",
      { model: "tiny.gguf", prompt: "x", metadata: { tag: HUGE } },
      /^metadata/,
      STRING_LIMITS.metadataValue,
    ],
    [
      "/v1/chat/completions",
      { model: "tiny.gguf", messages: user, tools: [{ type: "function", function: { name: HUGE } }] },
      /^tools\[0\]\.function\.name/,
      STRING_LIMITS.name,
    ],
    [
      "/v1/chat/completions",
      { model: "tiny.gguf", messages: [{ role: "tool", content: "x", tool_call_id: HUGE }] },
      /tool_call_id/,
      STRING_LIMITS.name,
    ],
    ["/api/generate", { model: "tiny.gguf", prompt: "x", keep_alive: HUGE }, /^keep_alive/, STRING_LIMITS.name],
  ];
  for (const [path, body, param, limit] of cases) {
    const response = await fetch(`${s.url}${path}`, {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify(body),
    });
    const text = await response.text();
    assert.equal(response.status, 400, `${path} ${text.slice(0, 300)}`);
    assert.ok(text.length < 4096 + 2048, `${path}: an answer of ${text.length} characters`);
    // The Ollama routes answer `{ error: "message" }`, the others `{ error: { message, param } }`.
    const raw = (JSON.parse(text) as { error: string | { message: string; param?: string } }).error;
    const error = typeof raw === "string" ? { message: raw, param: undefined } : raw;
    assert.match(error.message, new RegExp(`at most ${limit}`), `${path}: ${error.message}`);
    assert.match(error.param ?? error.message, param, `${path}: ${error.message}`);
  }
  // An unknown field with a 2 MiB name: refused by a name cut short.
  const key = await fetch(`${s.url}/v1/completions`, {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify({ model: "tiny.gguf", prompt: "x", [HUGE]: 1 }),
  });
  assert.equal(key.status, 400);
  assert.ok((await key.text()).length < 2048);
  // In a URL: Node refuses what is longer than its header bound; a long one within it is a 400, not a lookup.
  const long = "n".repeat(STRING_LIMITS.model + 1);
  const url = await fetch(`${s.url}/v1/models/${long}`);
  assert.equal(url.status, 400);
  assert.match(await url.text(), /at most 4096/);
});

it("100 requests naming an unknown 2 MiB model: memory stays flat and nothing of the names is kept", async (t) => {
  const s = await startTestServer(t);
  const body = JSON.stringify({ model: HUGE, prompt: "x", max_tokens: 1 });
  const send = () => fetch(`${s.url}/v1/completions`, { method: "POST", headers: JSON_HEADERS, body });
  for (let i = 0; i < 10; i++) await (await send()).text();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 100; i++) assert.equal((await send().then(async (r) => (await r.text(), r))).status, 400);
  const grown = process.memoryUsage().rss - before;
  // Before the bound each request kept its 2 MiB name (events, statistics, the log): ~200 MiB and more here.
  assert.ok(grown < 64 * 1024 * 1024, `RSS grew ${Math.round(grown / 1024 / 1024)} MiB`);
  const stats = (await s.getJson<{ unknown_model_requests: number }>("/v1/cache/stats")).body;
  assert.equal(stats.unknown_model_requests, 0, "a name refused before lookup is no unknown-model request");
});
