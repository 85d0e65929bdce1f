/**
 * Bounded requests and least exposure on the real server (llama.cpp on a generated GGUF model, real HTTP on loopback),
 * through the official clients of each route (`openai` for /v1, `ollama` for /api): generated tokens capped by the
 * context and by `server.max_tokens_limit`; list lengths capped; a prompt, chat or embedding input longer than the
 * context is a 400 naming the counts unless the request asks for truncation; a client that leaves mid-body is a 499;
 * no error body names a server path; a model whose file is deleted is unloaded once its requests end.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { startServer } from "../../src/runtime/index.js";
import { loaded } from "../../testkit/hosts.js";
import { fileContext, scrapeMetrics, startTestServer, type TestServer, waitFor } from "../../testkit/server.js";
import { tempDir } from "../../testkit/tmp.js";

const CONTEXT = 256;
/** Greedy sampling: the random model then runs until a limit ends it. */
const GREEDY = { temperature: 0 };
/** Far more tokens than the context holds. */
const LONG = "word ".repeat(400);
const LIMITS = { max_messages: 64, max_prompts: 2, max_embedding_inputs: 3 };

/** A greedy chat of one user message with the tiny model, with whichever token limit the request names. */
function greedyChat(
  client: OpenAI,
  content: string,
  limit: { max_tokens?: number; max_completion_tokens?: number } = {},
): Promise<OpenAI.ChatCompletion> {
  return client.chat.completions.create({
    model: "tiny.gguf",
    messages: [{ role: "user", content }],
    ...limit,
    ...GREEDY,
  });
}

let s: TestServer;
let openai: OpenAI;
let ollama: Ollama;
const fileScope = fileContext();

before(async () => {
  s = await startTestServer(fileScope.context, {
    models: { gguf: { "tiny.gguf": { seed: 1 }, "doomed.gguf": { seed: 2 } } },
    config: { backend: { context_size: CONTEXT }, server: LIMITS },
  });
  openai = s.openai();
  ollama = new Ollama({ host: s.url });
});

after(() => fileScope.cleanUp());

/** What the `openai` client throws for a 400 with this code, its message matching. */
function openaiError(status: number, code: string, message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof OpenAI.APIError, String(error));
    assert.equal(error.status, status, error.message);
    assert.equal(error.code, code);
    assert.match((error.error as { message: string }).message, message);
    return true;
  };
}

/** What the `ollama` client throws for an error reply. */
function ollamaError(status: number, message: RegExp) {
  return (error: unknown) => {
    const e = error as { status_code?: number; error?: string };
    assert.equal(e.status_code, status, String(error));
    assert.match(e.error ?? "", message);
    return true;
  };
}

/** The refusal of an over-long prompt: the field, its token count, the context and the limit. */
const tooLong = (param: string) =>
  new RegExp(
    `^${param.replace(/[[\]]/g, "\\$&")}: \\d+ tokens, but the model is loaded with a context of ${CONTEXT} tokens \\(backend\\.context_size\\) and .* may use at most ${CONTEXT - 1}`,
  );

describe("generated tokens are bounded", () => {
  it("max_tokens far above the context ends with the context full (finish_reason length): completions, chat, Ollama generate", async () => {
    const completion = await openai.completions.create({
      model: "tiny.gguf",
      prompt: "Once upon a time",
      max_tokens: 1e9,
      ...GREEDY,
    });
    assert.equal(completion.choices[0]?.finish_reason, "length");
    assert.ok(completion.usage && completion.usage.prompt_tokens + completion.usage.completion_tokens <= CONTEXT);
    assert.ok(completion.usage.completion_tokens > CONTEXT / 2, String(completion.usage.completion_tokens));

    const chat = await greedyChat(openai, "Tell me a story", { max_completion_tokens: 1e9 });
    assert.equal(chat.choices[0]?.finish_reason, "length");
    assert.ok(chat.usage && chat.usage.prompt_tokens + chat.usage.completion_tokens <= CONTEXT);

    const generated = await ollama.generate({
      model: "tiny",
      prompt: "Once upon a time",
      raw: true,
      options: { ...GREEDY, num_predict: 1e9 },
    });
    assert.equal(generated.done_reason, "length");
    assert.ok(generated.prompt_eval_count + generated.eval_count <= CONTEXT);
  });

  it("server.max_tokens_limit caps what a request asks and is the default when it asks nothing", async (t) => {
    const capped = await startServer(
      { ...s.runtime, config: { ...s.config, server: { ...s.config.server, max_tokens_limit: 5 } } },
      { port: 0 },
    );
    t.after(() => capped.close(0));
    const client = new OpenAI({ baseURL: `${capped.url}/v1`, apiKey: "x", maxRetries: 0 });
    const chat = await greedyChat(client, "Hi", { max_tokens: 1e9 });
    assert.equal(chat.choices[0]?.finish_reason, "length");
    assert.ok([5, 6].includes(chat.usage?.completion_tokens ?? 0), String(chat.usage?.completion_tokens));
    const unasked = await greedyChat(client, "Hi");
    assert.ok([5, 6].includes(unasked.usage?.completion_tokens ?? 0), String(unasked.usage?.completion_tokens));
    const response = await client.responses.create({
      model: "tiny.gguf",
      input: "Hi",
      max_output_tokens: 1e9,
      ...GREEDY,
    });
    assert.equal(response.status, "incomplete");
    assert.ok([5, 6].includes(response.usage?.output_tokens ?? 0), String(response.usage?.output_tokens));
    const local = new Ollama({ host: capped.url });
    const generated = await local.generate({
      model: "tiny",
      prompt: "Hi",
      raw: true,
      options: { ...GREEDY, num_predict: 1e6 },
    });
    assert.ok([5, 6].includes(generated.eval_count), String(generated.eval_count));
    // num_predict -2 ("fill the context") is a request for no number: the server's cap.
    const filled = await local.chat({
      model: "tiny",
      messages: [{ role: "user", content: "Hi" }],
      options: { ...GREEDY, num_predict: -2 },
    });
    assert.equal(filled.done_reason, "length");
    assert.ok([5, 6].includes(filled.eval_count), String(filled.eval_count));
  });
});

describe("list lengths are bounded", () => {
  const message = { role: "user" as const, content: "Hi" };
  it("messages, prompts, inputs and input items over their server.max_* are a 400 naming the field and the key", async () => {
    await assert.rejects(
      openai.chat.completions.create({ model: "tiny.gguf", messages: Array(65).fill(message), max_tokens: 1 }),
      openaiError(400, "bad_request", /^messages: 65 items, more than this server takes \(server\.max_messages = 64\)/),
    );
    await assert.rejects(
      openai.completions.create({ model: "tiny.gguf", prompt: ["a", "b", "c"], max_tokens: 1 }),
      openaiError(400, "bad_request", /^prompt: 3 items, .*server\.max_prompts = 2/),
    );
    await assert.rejects(
      openai.embeddings.create({ model: "tiny.gguf", input: ["a", "b", "c", "d"] }),
      openaiError(400, "bad_request", /^input: 4 items, .*server\.max_embedding_inputs = 3/),
    );
    await assert.rejects(
      openai.responses.create({ model: "tiny.gguf", input: Array(65).fill(message), max_output_tokens: 1 }),
      openaiError(400, "bad_request", /^input: 65 items, .*server\.max_messages = 64/),
    );
    await assert.rejects(
      ollama.chat({ model: "tiny", messages: Array(65).fill(message) }),
      ollamaError(400, /^messages: 65 items, .*server\.max_messages = 64/),
    );
    await assert.rejects(
      ollama.embed({ model: "tiny", input: ["a", "b", "c", "d"] }),
      ollamaError(400, /^input: 4 items, .*max_embedding_inputs = 3/),
    );
    // At the bound: served (cut to the context: 64 messages take more than it holds).
    const chat = await openai.chat.completions.create({
      model: "tiny.gguf",
      messages: Array(64).fill(message),
      max_tokens: 1,
      // @ts-expect-error an extension field
      truncate_prompt_tokens: -1,
    });
    assert.equal(chat.choices.length, 1);
  });
});

describe("a prompt longer than the context", () => {
  it("is a 400 naming the field, its token count and the limit on every route (no silent truncation, no 500)", async () => {
    await assert.rejects(
      openai.completions.create({ model: "tiny.gguf", prompt: LONG, max_tokens: 2 }),
      openaiError(400, "context_length_exceeded", tooLong("prompt")),
    );
    await assert.rejects(
      openai.completions.create({ model: "tiny.gguf", prompt: ["short", LONG], max_tokens: 2 }),
      openaiError(400, "context_length_exceeded", tooLong("prompt[1]")),
    );
    await assert.rejects(
      openai.chat.completions.create({
        model: "tiny.gguf",
        messages: [{ role: "user", content: LONG }],
        max_tokens: 2,
      }),
      openaiError(400, "context_length_exceeded", tooLong("messages")),
    );
    await assert.rejects(
      openai.responses.create({ model: "tiny.gguf", input: LONG, max_output_tokens: 2 }),
      openaiError(400, "context_length_exceeded", tooLong("input")),
    );
    await assert.rejects(
      openai.embeddings.create({ model: "tiny.gguf", input: ["short", LONG] }),
      openaiError(400, "context_length_exceeded", tooLong("input[1]")),
    );
    await assert.rejects(
      ollama.generate({ model: "tiny", prompt: LONG, raw: true }),
      ollamaError(400, tooLong("prompt")),
    );
    await assert.rejects(ollama.generate({ model: "tiny", prompt: LONG }), ollamaError(400, tooLong("prompt")));
    await assert.rejects(
      ollama.chat({ model: "tiny", messages: [{ role: "user", content: LONG }] }),
      ollamaError(400, tooLong("messages")),
    );
    await assert.rejects(
      ollama.embed({ model: "tiny", input: ["short", LONG] }),
      ollamaError(400, tooLong("input[1]")),
    );
    await assert.rejects(ollama.embeddings({ model: "tiny", prompt: LONG }), ollamaError(400, tooLong("prompt")));
    // The error JSON names the field in `param` too.
    const raw = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: LONG }),
    });
    assert.equal(raw.status, 400);
    const body = (await raw.json()) as { error: { param: string; type: string } };
    assert.deepEqual([body.error.param, body.error.type], ["prompt", "invalid_request_error"]);
  });

  it("is truncated when the request asks for it: truncate_prompt_tokens, truncation: auto, Ollama's truncate", async () => {
    const completion = await openai.completions.create({
      model: "tiny.gguf",
      prompt: LONG,
      max_tokens: 2,
      ...GREEDY,
      // @ts-expect-error an extension field (vLLM's name), sent as the client sends any field
      truncate_prompt_tokens: -1,
    });
    assert.ok(
      completion.usage && completion.usage.prompt_tokens <= CONTEXT - 1 && completion.usage.prompt_tokens > CONTEXT / 2,
    );
    const kept = await openai.completions.create({
      model: "tiny.gguf",
      prompt: LONG,
      max_tokens: 2,
      // @ts-expect-error an extension field
      truncate_prompt_tokens: 20,
    });
    assert.equal(kept.usage?.prompt_tokens, 20);

    // A long history: the oldest turns go, the system message and the last message stay.
    const history: OpenAI.ChatCompletionMessageParam[] = [{ role: "system", content: "Be brief." }];
    for (let i = 0; i < 40; i++)
      history.push({ role: i % 2 ? "assistant" : "user", content: `turn ${i} ${"word ".repeat(10)}` });
    await assert.rejects(
      openai.chat.completions.create({ model: "tiny.gguf", messages: history, max_tokens: 2 }),
      openaiError(400, "context_length_exceeded", tooLong("messages")),
    );
    const chat = await openai.chat.completions.create({
      model: "tiny.gguf",
      messages: history,
      max_tokens: 2,
      // @ts-expect-error an extension field
      truncate_prompt_tokens: -1,
    });
    assert.ok(chat.usage && chat.usage.prompt_tokens <= CONTEXT - 1);
    // The last message alone does not fit: truncation cannot help.
    await assert.rejects(
      openai.chat.completions.create({
        model: "tiny.gguf",
        messages: [...history, { role: "user", content: LONG }],
        // @ts-expect-error an extension field
        truncate_prompt_tokens: -1,
      }),
      openaiError(
        400,
        "context_length_exceeded",
        /^messages: \d+ tokens, .* the system messages and the last message may use at most/,
      ),
    );

    const response = await openai.responses.create({
      model: "tiny.gguf",
      input: history as OpenAI.Responses.ResponseInput,
      truncation: "auto",
      max_output_tokens: 2,
    });
    assert.equal(response.truncation, "auto");
    assert.ok(response.usage && response.usage.input_tokens <= CONTEXT - 1);

    const embedded = await openai.embeddings.create({
      model: "tiny.gguf",
      input: ["short", LONG],
      // @ts-expect-error an extension field
      truncate_prompt_tokens: -1,
    });
    assert.equal(embedded.data.length, 2);

    const generated = await ollama.generate({
      model: "tiny",
      prompt: LONG,
      raw: true,
      truncate: true,
      options: { num_predict: 2 },
    } as Parameters<Ollama["generate"]>[0] & { stream?: false });
    assert.ok(generated.prompt_eval_count <= CONTEXT - 1);
    const chatted = await ollama.chat({
      model: "tiny",
      messages: history as Array<{ role: string; content: string }>,
      truncate: true,
      options: { num_predict: 2 },
    } as Parameters<Ollama["chat"]>[0] & { stream?: false });
    assert.ok(chatted.prompt_eval_count <= CONTEXT - 1);
    const embeddedOllama = await ollama.embed({ model: "tiny", input: ["short", LONG], truncate: true });
    assert.equal(embeddedOllama.embeddings.length, 2);
  });
});

describe("a client that leaves mid-body", () => {
  it("is counted as a client abort (499), not a server error", async () => {
    const count = (metrics: string, status: number) =>
      metrics
        .split("\n")
        .filter((l) => l.startsWith("inferno_http_requests_total{") && l.includes(`status="${status}"`))
        .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
    const before = await scrapeMetrics(s.url);
    const { port } = new URL(s.url);
    const socket = connect(Number(port), "127.0.0.1");
    const closed = new Promise<void>((resolve, reject) => {
      socket.on("close", () => resolve());
      socket.on("error", reject);
    });
    socket.write(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" +
        '{"model":"tiny.gguf","mess',
    );
    // The server is reading the body when the client goes.
    await waitFor(() => s.server.app.lifecycle.activeCount > 0);
    socket.destroy();
    await closed;
    await waitFor(async () => count(await scrapeMetrics(s.url), 499) === count(before, 499) + 1);
    assert.equal(count(await scrapeMetrics(s.url), 500), count(before, 500));
  });
});

describe("least exposure: error bodies name no server path", () => {
  it("invalid files, symlinks outside, unknown names, load failures and Ollama's refusals: no models dir, temp or home path in any body", async (t) => {
    const outsideDir = await tempDir(t, "inferno-outside-");
    const good = await readFile(join(s.modelsDir, "tiny.gguf"));
    await writeFile(join(outsideDir, "secret.gguf"), good);
    await symlink(join(outsideDir, "secret.gguf"), join(s.modelsDir, "escape.gguf"));
    await writeFile(join(s.modelsDir, "garbage.gguf"), Buffer.from("GGUF this is not a model at all, only some bytes"));
    // Inferno's header checks pass it, llama.cpp refuses the load (an unknown architecture).
    await writeFile(
      join(s.modelsDir, "llamx.gguf"),
      Buffer.from(good.toString("latin1").replaceAll("llama", "llamx"), "latin1"),
    );
    await mkdir(join(s.modelsDir, "sub"), { recursive: true });
    t.after(() =>
      Promise.all(
        ["escape.gguf", "garbage.gguf", "llamx.gguf", "sub"].map((f) =>
          rm(join(s.modelsDir, f), { recursive: true, force: true }),
        ),
      ),
    );

    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${s.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: response.status, text: await response.text() };
    };
    const replies = [
      await post("/v1/completions", { model: "escape.gguf", prompt: "Hi", max_tokens: 1 }),
      await post("/v1/completions", { model: join(outsideDir, "secret.gguf"), prompt: "Hi", max_tokens: 1 }),
      await post("/v1/completions", { model: "garbage.gguf", prompt: "Hi", max_tokens: 1 }),
      await post("/v1/completions", { model: "llamx.gguf", prompt: "Hi", max_tokens: 1 }),
      await post("/v1/completions", { model: "nope.gguf", prompt: "Hi", max_tokens: 1 }),
      await post("/v1/completions", { model: "../../etc/passwd", prompt: "Hi", max_tokens: 1 }),
      await post("/v1/cache/models/garbage.gguf/load", {}),
      await post("/api/generate", { model: "garbage.gguf", prompt: "Hi" }),
      await post("/api/show", { model: "nope" }),
      await post("/api/pull", { model: "x" }),
    ];
    const secrets = [s.modelsDir, outsideDir, s.cwd, s.cacheDir, "/tmp/"];
    for (const reply of replies) {
      assert.ok(reply.status >= 400, reply.text);
      for (const secret of secrets) assert.ok(!reply.text.includes(secret), `${reply.text} names ${secret}`);
    }
    // Models are named by their names.
    assert.match(replies[2]?.text ?? "", /garbage\.gguf/);
    assert.match(replies[3]?.text ?? "", /llamx\.gguf/);
  });
});

describe("a deleted model file", () => {
  it("unloads the model once its requests end, not at its TTL", async () => {
    const loadedNames = async () => (await loaded(s)).map((m) => m.name);
    await openai.completions.create({ model: "doomed.gguf", prompt: "Hi", max_tokens: 1 });
    assert.ok((await loadedNames()).includes("doomed.gguf"));
    await rm(join(s.modelsDir, "doomed.gguf"));
    const before = (await s.getJson<{ evictions: { file_changed: number } }>("/v1/cache/stats")).body.evictions
      .file_changed;
    // The file check runs at most every few seconds; the TTL is an hour.
    await waitFor(async () => !(await loadedNames()).includes("doomed.gguf"), 100);
    assert.equal(
      (await s.getJson<{ evictions: { file_changed: number } }>("/v1/cache/stats")).body.evictions.file_changed,
      before + 1,
    );
    const gone = await post404();
    assert.equal(gone, 404);
  });
});

async function post404(): Promise<number> {
  const response = await fetch(`${s.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "doomed.gguf", prompt: "Hi", max_tokens: 1 }),
  });
  await response.body?.cancel();
  return response.status;
}
