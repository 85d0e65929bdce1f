/**
 * The Ollama API on the real server (llama.cpp on generated GGUF models, real HTTP on loopback), driven by the official
 * `ollama` npm client: list, ps, show, chat and generate (streamed and not), embed, preload and unload via keep_alive,
 * Ollama's error format, names `NAME:latest`, and the API key.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Ollama } from "ollama";
import { startServer } from "../../src/runtime/index.js";
import { loaded, loadedModel } from "../../testkit/hosts.js";
import { fileContext, startTestServer, type TestServer, waitFor } from "../../testkit/server.js";
import { docSnippet, snippetLogs } from "../../testkit/snippets.js";
import { WEATHER_TOOL } from "../../testkit/tools.js";

const CONTEXT = 2048;
let s: TestServer;
let ollama: Ollama;
const fileScope = fileContext();

before(async () => {
  s = await startTestServer(fileScope.context, {
    // spare.gguf is never used successfully: requests refused before any load name it.
    models: {
      gguf: { "tiny.gguf": { seed: 1 }, "other/second.gguf": { seed: 2 }, "spare.gguf": { seed: 3 } },
      onnx: ["add.onnx"],
    },
    // Room for the tool documentation that a tool request adds to the prompt (the tiny models' tokens are short).
    config: { backend: { context_size: CONTEXT } },
  });
  ollama = new Ollama({ host: s.url });
});

after(() => fileScope.cleanUp());

/** Greedy sampling: the random model then runs to num_predict on these prompts, and repeated runs agree. */
const GREEDY = { temperature: 0 };

/** What the `ollama` client throws for an error reply: a ResponseError carrying Ollama's `error` text and the status. */
function responseError(status: number, message: RegExp) {
  return (error: unknown) => {
    const e = error as { name: string; error: string; status_code: number };
    assert.equal(e.name, "ResponseError", String(error));
    assert.equal(e.status_code, status);
    assert.match(e.error, message);
    return true;
  };
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe("Ollama API: models", () => {
  it("answers HEAD / and /api/version; GET / stays the status page", async () => {
    const head = await fetch(`${s.url}/`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal((await ollama.version()).version.length > 0, true);
    const page = await fetch(`${s.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  });

  it("lists the GGUF models by their shortest names as NAME:latest, with Ollama's details; tensor models are not listed", async () => {
    const { models } = await ollama.list();
    assert.deepEqual(
      models.map((m) => m.name),
      ["second:latest", "spare:latest", "tiny:latest"],
    );
    for (const model of models) {
      assert.equal(model.model, model.name);
      assert.ok(model.size > 0);
      assert.match(model.digest, /^[0-9a-f]{64}$/);
      assert.ok(!Number.isNaN(Date.parse(String(model.modified_at))));
      assert.equal(model.details.format, "gguf");
      assert.equal(model.details.family, "llama");
      assert.deepEqual(model.details.families, ["llama"]);
      assert.equal(model.details.quantization_level, "F32");
      assert.match(model.details.parameter_size, /^\d+(\.\d)?[KMB]$/);
    }
    assert.equal(new Set(models.map((m) => m.digest)).size, models.length);
  });

  it("shows a model by NAME, NAME:latest or file name: details, model_info, capabilities", async () => {
    const shown = await ollama.show({ model: "tiny:latest" });
    assert.equal(shown.details.format, "gguf");
    assert.equal(shown.details.family, "llama");
    const info = shown.model_info as unknown as Record<string, unknown>;
    assert.equal(info["general.architecture"], "llama");
    assert.ok((info["llama.context_length"] as number) > 0);
    assert.ok((info["general.parameter_count"] as number) > 0);
    assert.ok(shown.capabilities.includes("completion"));
    assert.ok(shown.capabilities.includes("tools"));
    assert.ok(shown.capabilities.includes("embedding"));
    assert.match(shown.parameters, new RegExp(`num_ctx\\s+${CONTEXT}`));
    assert.deepEqual((await ollama.show({ model: "tiny" })).model_info, shown.model_info);
    assert.deepEqual((await ollama.show({ model: "tiny.gguf" })).model_info, shown.model_info);
    assert.deepEqual((await ollama.show({ model: "second:latest" })).details, shown.details);
    assert.deepEqual((await ollama.show({ model: "other/second" })).details, shown.details);
  });

  it('an unknown name is 404 and a tensor model 400, as {"error": message}; nothing is loaded', async () => {
    await assert.rejects(ollama.show({ model: "nosuch:latest" }), responseError(404, /nosuch/));
    await assert.rejects(
      ollama.chat({ model: "tiny:7b", messages: [{ role: "user", content: "hi" }] }),
      responseError(404, /tiny:7b/),
    );
    await assert.rejects(
      ollama.chat({ model: "add.onnx", messages: [{ role: "user", content: "hi" }] }),
      responseError(400, /^model add\.onnx is an ONNX tensor model and cannot do chat$/),
    );
    await assert.rejects(ollama.embed({ model: "add", input: "x" }), responseError(400, /ONNX tensor model/));
    await assert.rejects(ollama.generate({ model: "add", prompt: "" }), responseError(400, /ONNX tensor model/));
    assert.equal(await loadedModel(s, "add.onnx"), undefined);
    const raw = await post("/api/chat", { model: "nosuch", messages: [] });
    assert.equal(raw.status, 404);
    assert.deepEqual(Object.keys((await raw.json()) as object), ["error"]);
  });

  it("pull, push, create, copy and delete answer 501 with a sentence about the models folder", async () => {
    // The folder is not named to remote clients (least exposure): the server's log and the CLI name it.
    const refused = responseError(501, /serves the GGUF files in its models folder \(<models_dir>\)/);
    await assert.rejects(ollama.pull({ model: "llama3.2" }), refused);
    await assert.rejects(ollama.push({ model: "tiny" }), refused);
    await assert.rejects(ollama.create({ model: "mario", from: "tiny" }), refused);
    await assert.rejects(ollama.copy({ source: "tiny", destination: "tiny2" }), refused);
    await assert.rejects(ollama.delete({ model: "tiny" }), refused);
    assert.equal((await fetch(`${s.url}/api/blobs/sha256:00`, { method: "HEAD" })).status, 501);
  });
});

describe("Ollama API: generation", () => {
  it("chat without streaming: the assistant's message, done_reason and Ollama's counts and nanosecond timings", async () => {
    const reply = await ollama.chat({
      model: "tiny",
      messages: [{ role: "user", content: "Hello there" }],
      stream: false,
      options: { ...GREEDY, num_predict: 6 },
    });
    assert.equal(reply.model, "tiny");
    assert.equal(reply.message.role, "assistant");
    assert.equal(typeof reply.message.content, "string");
    assert.equal(reply.done, true);
    assert.equal(reply.done_reason, "length");
    assert.equal(reply.eval_count, 6);
    assert.ok(reply.prompt_eval_count > 0);
    assert.ok(!Number.isNaN(Date.parse(String(reply.created_at))));
    for (const field of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"] as const) {
      assert.ok(Number.isInteger(reply[field]) && reply[field] >= 0, `${field} = ${reply[field]}`);
    }
    assert.ok(reply.total_duration >= reply.load_duration + reply.prompt_eval_duration);
  });

  it("chat streams JSON lines by default; the pieces make the non-streamed text and the last line carries done", async () => {
    const request = {
      model: "tiny:latest",
      messages: [{ role: "user", content: "Tell me a story" }],
      options: { ...GREEDY, num_predict: 12 },
    };
    const whole = await ollama.chat({ ...request, stream: false });
    const parts = [];
    for await (const part of await ollama.chat({ ...request, stream: true })) parts.push(part);
    const last = parts.at(-1);
    assert.ok(parts.length > 2, `only ${parts.length} parts`);
    assert.ok(parts.slice(0, -1).every((p) => !p.done && p.model === "tiny:latest" && p.message.role === "assistant"));
    assert.equal(parts.map((p) => p.message.content).join(""), whole.message.content);
    assert.equal(last?.done, true);
    assert.equal(last?.done_reason, "length");
    assert.equal(last?.eval_count, 12);

    const response = await post("/api/chat", request);
    assert.match(response.headers.get("content-type") ?? "", /application\/x-ndjson/);
    const lines = (await response.text()).trim().split("\n");
    assert.equal(lines.length, parts.length);
    assert.ok(lines.every((line) => typeof JSON.parse(line) === "object"));
  });

  it("generate puts the prompt in the model's template (a one-turn chat), and raw: true sends it as it is", async () => {
    const options = { ...GREEDY, num_predict: 8 };
    const templated = await ollama.generate({ model: "tiny", prompt: "Why is the sky blue?", options });
    const chatted = await ollama.chat({
      model: "tiny",
      messages: [{ role: "user", content: "Why is the sky blue?" }],
      options,
    });
    assert.equal(templated.response, chatted.message.content);
    assert.equal(templated.done_reason, "length");
    assert.equal(templated.eval_count, 8);

    const withSystem = await ollama.generate({ model: "tiny", prompt: "Why?", system: "Be brief.", options });
    const chattedSystem = await ollama.chat({
      model: "tiny",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Why?" },
      ],
      options,
    });
    assert.equal(withSystem.response, chattedSystem.message.content);

    const raw = await ollama.generate({ model: "tiny", prompt: "Why is the sky blue?", raw: true, options });
    assert.ok(raw.prompt_eval_count < templated.prompt_eval_count, "the raw prompt has no template around it");
    const streamed = [];
    for await (const part of await ollama.generate({
      model: "tiny",
      prompt: "Why is the sky blue?",
      raw: true,
      options,
      stream: true,
    })) {
      streamed.push(part);
    }
    assert.equal(streamed.map((p) => p.response).join(""), raw.response);
  });

  it("options reach the sampler: seeded runs repeat, stop ends the text", async () => {
    const seeded = {
      model: "tiny",
      prompt: "Once upon a time",
      raw: true,
      options: { seed: 7, temperature: 1, num_predict: 10 },
    };
    const [a, b] = [await ollama.generate(seeded), await ollama.generate(seeded)];
    assert.equal(a.response, b.response);

    const greedy = (await ollama.generate({ ...seeded, options: { ...GREEDY, num_predict: 16 } })).response ?? "";
    const stopAt = /[a-z]{3}/.exec(greedy.slice(3))?.[0] ?? "";
    assert.equal(stopAt.length, 3, `no stop candidate in ${JSON.stringify(greedy)}`);
    const stopped = await ollama.generate({ ...seeded, options: { ...GREEDY, num_predict: 16, stop: [stopAt] } });
    assert.equal(stopped.done_reason, "stop");
    assert.equal(stopped.response, greedy.slice(0, greedy.indexOf(stopAt)));
  });

  it("num_ctx loads a variant with a context of that size (a cache entry of its own), bounded by backend.max_context_size", async () => {
    const base = { model: "tiny", raw: true, options: { ...GREEDY, num_predict: 1 } };
    // A prompt between the configured context and twice it: refused at 2048, answered with num_ctx 4096.
    const unit = "Once upon a time there was ";
    const probe = await ollama.generate({ ...base, prompt: unit.repeat(50) });
    const perUnit = probe.prompt_eval_count / 50;
    const prompt = unit.repeat(Math.ceil((CONTEXT * 1.5) / perUnit));
    await assert.rejects(ollama.generate({ ...base, prompt }), responseError(400, /context/));
    const wide = await ollama.generate({ ...base, prompt, options: { ...base.options, num_ctx: 2 * CONTEXT } });
    assert.ok(wide.prompt_eval_count > CONTEXT, String(wide.prompt_eval_count));
    const entries = (await loaded(s)).filter((m) => m.key.endsWith(`tiny.gguf#ctx=${2 * CONTEXT}`));
    assert.equal(entries.length, 1, "one cache entry for the variant");
    // Ollama's /api/ps carries context_length (the client's type leaves it out).
    const running = (await ollama.ps()).models.find(
      (m) => (m as unknown as { context_length: number }).context_length === 2 * CONTEXT,
    );
    assert.equal(running?.name, "tiny:latest");
    // The same size again is a hit on that entry; the configured size is the plain file's entry.
    await ollama.generate({ ...base, prompt: "Hi", options: { ...base.options, num_ctx: 2 * CONTEXT } });
    assert.equal((await loaded(s)).filter((m) => m.key.endsWith(`#ctx=${2 * CONTEXT}`)).length, 1);
    await ollama.generate({ ...base, prompt: "Hi", options: { ...base.options, num_ctx: CONTEXT } });
    assert.ok((await loaded(s)).some((m) => m.key.endsWith("tiny.gguf")));

    await assert.rejects(
      ollama.generate({ ...base, prompt: "Hi", options: { num_ctx: 1_000_000 } }),
      responseError(
        400,
        /^options\.num_ctx: is above the largest context Inferno loads \(backend\.max_context_size = 32768\)/,
      ),
    );
    // keep_alive 0 with the same num_ctx unloads that variant.
    await ollama.generate({ model: "tiny", prompt: "", keep_alive: 0, options: { num_ctx: 2 * CONTEXT } });
    await waitFor(async () => !(await loaded(s)).some((m) => m.key.endsWith(`#ctx=${2 * CONTEXT}`)));
  });

  it("repeat_penalty and repeat_last_n reach the sampler; num_thread and num_gpu load a variant; unknown options are ignored", async () => {
    const base = { model: "tiny", prompt: "Once upon a time", raw: true };
    const run = async (options: Record<string, unknown>) =>
      (await ollama.generate({ ...base, options: { ...GREEDY, num_predict: 24, ...options } })).response;
    const plain = await run({});
    const penalised = await run({ repeat_penalty: 5, repeat_last_n: -1 });
    assert.notEqual(penalised, plain, "a strong repeat penalty changes a greedy answer");
    assert.equal(await run({ repeat_penalty: 5, repeat_last_n: 0 }), plain, "repeat_last_n 0 switches it off");
    assert.equal(await run({ repeat_penalty: 1.1 }), await run({ repeat_penalty: 1.1 }), "Ollama's default is taken");

    // The test server loads with one thread: num_thread 1 is the configured model, 2 a variant.
    await ollama.generate({ ...base, options: { ...GREEDY, num_predict: 4, num_thread: 1 } });
    assert.ok(!(await loaded(s)).some((m) => m.key.includes("#threads=")));
    const threaded = await ollama.generate({ ...base, options: { ...GREEDY, num_predict: 4, num_thread: 2 } });
    assert.equal(threaded.done, true);
    assert.ok((await loaded(s)).some((m) => m.key.endsWith("tiny.gguf#threads=2")));
    await ollama.generate({ model: "tiny", prompt: "", keep_alive: 0, options: { num_thread: 2 } });

    const unknown = await ollama.generate({
      ...base,
      stream: false,
      options: { ...GREEDY, num_predict: 2, num_gpu: -1, ...{ rope_frequency_base: 10000 } },
    });
    assert.equal(unknown.done, true);
  });

  it("options and fields that change the output and cannot be honoured are refused by name; off values are accepted", async () => {
    const base = { model: "tiny", prompt: "Hi", options: { ...GREEDY, num_predict: 2 } };
    await assert.rejects(
      ollama.generate({ ...base, options: { ...base.options, mirostat: 2 } }),
      responseError(400, /^options\.mirostat: 2 is not supported/),
    );
    await assert.rejects(ollama.generate({ ...base, images: ["aGk="] }), responseError(400, /^images: .*no images/));
    const unknown = await post("/api/chat", {
      model: "tiny",
      messages: [{ role: "user", content: "hi", mood: "happy" }],
      stream: false,
    });
    assert.equal(unknown.status, 400);
    assert.match(((await unknown.json()) as { error: string }).error, /^messages\[0\]\.mood: unknown field/);
    await assert.rejects(
      ollama.generate({ ...base, think: true }),
      responseError(400, /^think: thinking is not supported/),
    );
    const neutral = await ollama.generate({
      ...base,
      options: {
        ...base.options,
        repeat_penalty: 1,
        mirostat: 0,
        min_p: 0,
        use_mmap: false,
        num_batch: 128,
        low_vram: false,
      },
    });
    assert.equal(neutral.done, true);
  });
});

describe("Ollama API: sampling, structured output and tools", () => {
  it("top_k, min_p and the penalties reach the sampler: top_k 1 is greedy whatever the seed", async () => {
    const request = { model: "tiny", prompt: "Once upon a time", raw: true };
    const greedy = await ollama.generate({ ...request, options: { ...GREEDY, num_predict: 12 } });
    for (const seed of [1, 2, 3]) {
      const topK = await ollama.generate({
        ...request,
        options: { temperature: 1.5, seed, top_k: 1, num_predict: 12 },
      });
      assert.equal(topK.response, greedy.response);
    }
    const penalised = await ollama.generate({
      ...request,
      options: {
        ...GREEDY,
        num_predict: 12,
        presence_penalty: 2,
        frequency_penalty: 2,
        min_p: 0.05,
        repeat_last_n: -1,
      },
    });
    assert.notEqual(penalised.response, greedy.response, "penalties change the greedy text of a repetitive model");
  });

  const answer = {
    type: "object",
    properties: { answer: { enum: ["yes", "no"] }, sure: { type: "boolean" } },
    required: ["answer", "sure"],
  };

  it("a JSON schema format constrains generate and chat (streamed too): the text parses and validates", async () => {
    const generated = await ollama.generate({
      model: "tiny",
      prompt: "Is the sky blue?",
      format: answer,
      options: { ...GREEDY, num_predict: 100 },
    });
    const value = JSON.parse(generated.response ?? "") as { answer: string; sure: boolean };
    assert.ok(["yes", "no"].includes(value.answer));
    assert.equal(typeof value.sure, "boolean");

    let text = "";
    for await (const part of await ollama.chat({
      model: "tiny",
      messages: [{ role: "user", content: "Is the sky blue?" }],
      format: answer,
      stream: true,
      options: { seed: 3, num_predict: 100 },
    })) {
      text += part.message.content;
    }
    const streamed = JSON.parse(text) as { answer: string; sure: boolean };
    assert.ok(["yes", "no"].includes(streamed.answer));
    assert.equal(typeof streamed.sure, "boolean");
  });

  it('format "json" gives a JSON object', async () => {
    const reply = await ollama.chat({
      model: "tiny",
      messages: [{ role: "user", content: "Reply in JSON" }],
      format: "json",
      options: { ...GREEDY, num_predict: 200 },
    });
    assert.equal(reply.done_reason, "stop", `the object ended: ${reply.message.content}`);
    const value = JSON.parse(reply.message.content) as unknown;
    assert.equal(typeof value, "object");
    assert.ok(value !== null && !Array.isArray(value));
  });

  it("tools on /api/chat: a required call comes back as Ollama's tool_calls (arguments an object that validates)", async () => {
    const question = { role: "user", content: "What is the weather in Paris?" };
    const request = {
      model: "tiny",
      messages: [question],
      tools: [WEATHER_TOOL],
      tool_choice: "required",
      options: { seed: 5, num_predict: 200 },
    } as Parameters<Ollama["chat"]>[0];
    const reply = await ollama.chat({ ...request, stream: false });
    assert.equal(reply.done_reason, "stop");
    const [call] = reply.message.tool_calls ?? [];
    assert.ok(call, JSON.stringify(reply.message));
    assert.equal(call.function.name, "get_weather");
    assert.ok(["Paris", "Rome"].includes(call.function.arguments.city as string));
    assert.equal(typeof call.function.arguments.celsius, "boolean");

    const parts = [];
    for await (const part of await ollama.chat({ ...request, stream: true })) parts.push(part);
    const streamedCall = parts.flatMap((p) => p.message.tool_calls ?? [])[0];
    assert.equal(streamedCall?.function.name, "get_weather");
    assert.equal(parts.at(-1)?.done, true);

    // The next turn of the loop: the assistant's call and the tool's result (named as Ollama clients name it).
    const next = await ollama.chat({
      model: "tiny",
      messages: [question, reply.message, { role: "tool", content: '{"temperature": 21}', tool_name: "get_weather" }],
      tools: [WEATHER_TOOL],
      options: { ...GREEDY, num_predict: 4 },
    });
    assert.equal(next.done, true);
    assert.equal(next.message.role, "assistant");
  });

  it("tools the model may call (Ollama's default) are accepted; any call it makes is well formed", async () => {
    const reply = await ollama.chat({
      model: "tiny",
      messages: [{ role: "user", content: "What is the weather in Rome?" }],
      tools: [WEATHER_TOOL],
      options: { ...GREEDY, num_predict: 16 },
    });
    assert.equal(reply.done, true);
    for (const call of reply.message.tool_calls ?? []) {
      assert.equal(call.function.name, "get_weather");
      assert.equal(typeof call.function.arguments, "object");
    }
  });

  it("bad tools, tool messages and schemas are 400s naming the field, and nothing is loaded", async () => {
    const chat = (extra: Record<string, unknown>) =>
      ollama.chat({ model: "spare", messages: [{ role: "user", content: "hi" }], ...extra } as Parameters<
        Ollama["chat"]
      >[0]);
    await assert.rejects(
      chat({ format: { type: "object", properties: { name: { type: "string", format: "ipv6" } } } }),
      responseError(400, /^format\.properties\.name\.format: the JSON Schema keyword "format" is not supported/),
    );
    await assert.rejects(
      ollama.generate({ model: "spare", prompt: "hi", format: { type: "integer", multipleOf: 2 } }),
      responseError(400, /^format\.multipleOf:/),
    );
    await assert.rejects(
      chat({ tools: [WEATHER_TOOL], tool_choice: { type: "function", function: { name: "nope" } } }),
      responseError(400, /^tool_choice: /),
    );
    await assert.rejects(
      chat({ tools: [{ type: "function", function: { name: "bad name!" } }] }),
      responseError(400, /^tools\[0\]\.function\.name: /),
    );
    await assert.rejects(
      ollama.chat({
        model: "spare",
        messages: [
          { role: "user", content: "hi" },
          { role: "tool", content: "42" },
        ],
      }),
      responseError(400, /^messages\[1\]: a tool result must follow the assistant message/),
    );
    assert.equal(await loadedModel(s, "spare.gguf"), undefined);
    const stats = await s.getJson<{ models: Array<{ name: string; loads: number }> }>("/v1/cache/stats");
    assert.ok(!stats.body.models.some((m) => m.name === "spare.gguf" && m.loads > 0));
  });
});

describe("Ollama API: embeddings", () => {
  it("embed returns one unit-length vector per input; /api/embeddings the raw vector in the same direction", async () => {
    const reply = await ollama.embed({
      model: "tiny:latest",
      input: ["Why is the sky blue?", "Why is the grass green?"],
    });
    assert.equal(reply.model, "tiny:latest");
    assert.equal(reply.embeddings.length, 2);
    for (const vector of reply.embeddings) assert.ok(Math.abs(Math.hypot(...vector) - 1) < 1e-4);
    assert.notDeepEqual(reply.embeddings[0], reply.embeddings[1]);
    assert.ok(reply.prompt_eval_count > 0);
    assert.ok(Number.isInteger(reply.total_duration));

    const single = await ollama.embed({ model: "tiny", input: "Why is the sky blue?" });
    assert.deepEqual(single.embeddings[0], reply.embeddings[0]);
    const legacy = await ollama.embeddings({ model: "tiny", prompt: "Why is the sky blue?" });
    const norm = Math.hypot(...legacy.embedding);
    const first = single.embeddings[0] as number[];
    legacy.embedding.forEach((x, i) => assert.ok(Math.abs(x / norm - (first[i] as number)) < 1e-5));
  });

  it("an input longer than the context is a 400 naming it (unless the request asks to truncate)", async () => {
    await assert.rejects(
      ollama.embed({ model: "tiny", input: ["short", "word ".repeat(CONTEXT)] }),
      responseError(
        400,
        new RegExp(`^input\\[1\\]: \\d+ tokens, but the model is loaded with a context of ${CONTEXT} tokens`),
      ),
    );
  });
});

describe("Ollama API: loading and unloading with keep_alive", () => {
  it("an empty generate prompt loads the model (done_reason load); keep_alive 0 unloads it (unload); ps follows", async () => {
    const before = Date.now();
    const load = await ollama.generate({ model: "other/second", prompt: "", keep_alive: "10m" });
    assert.deepEqual(
      { model: load.model, response: load.response, done: load.done, done_reason: load.done_reason },
      { model: "other/second", response: "", done: true, done_reason: "load" },
    );
    const running = (await ollama.ps()).models.find((m) => m.name === "second:latest");
    assert.ok(running, "ps lists the preloaded model");
    assert.equal(running.model, "second:latest");
    assert.ok(running.size > 0);
    assert.equal(running.details.format, "gguf");
    const expires = Date.parse(String(running.expires_at));
    assert.ok(
      expires >= before + 600_000 && expires <= Date.now() + 600_000,
      `expires_at ${String(running.expires_at)}`,
    );
    assert.equal((await loadedModel(s, "other/second.gguf"))?.state, "ready");

    const unload = await ollama.generate({ model: "second:latest", prompt: "", keep_alive: 0 });
    assert.equal(unload.done_reason, "unload");
    assert.equal(
      (await ollama.ps()).models.find((m) => m.name === "second:latest"),
      undefined,
    );
    assert.equal(await loadedModel(s, "other/second.gguf"), undefined);
  });

  it("an empty chat does the same; keep_alive 0 on a real request unloads after it", async () => {
    const load = await ollama.chat({ model: "other/second", messages: [] });
    assert.equal(load.done_reason, "load");
    assert.deepEqual(load.message, { role: "assistant", content: "" });
    assert.ok((await ollama.ps()).models.some((m) => m.name === "second:latest"));
    const unload = await ollama.chat({ model: "other/second", messages: [], keep_alive: 0 });
    assert.equal(unload.done_reason, "unload");
    assert.ok(!(await ollama.ps()).models.some((m) => m.name === "second:latest"));

    const reply = await ollama.chat({
      model: "other/second",
      messages: [{ role: "user", content: "Hi" }],
      keep_alive: 0,
      options: { ...GREEDY, num_predict: 2 },
    });
    assert.equal(reply.done, true);
    assert.ok(reply.load_duration > 0, "this request loaded the model");
    await waitFor(async () => !(await ollama.ps()).models.some((m) => m.name === "second:latest"));
  });

  it("a streamed request holds a lease until its last line", async () => {
    const stream = await ollama.generate({
      model: "tiny",
      prompt: "Once upon a time",
      raw: true,
      stream: true,
      options: { ...GREEDY, num_predict: 200 },
    });
    let leasedMidway: number | undefined;
    let count = 0;
    for await (const part of stream) {
      if (count++ === 1) leasedMidway = (await loadedModel(s, "tiny.gguf"))?.leases;
      if (part.done) break;
    }
    assert.equal(leasedMidway, 1);
    await waitFor(async () => (await loadedModel(s, "tiny.gguf"))?.leases === 0);
  });
});

describe("Ollama API: disconnects", () => {
  it("a client that stops reading a stream (abort) ends the generation and releases the lease", async () => {
    const stream = await ollama.chat({
      model: "tiny",
      messages: [{ role: "user", content: "Tell me everything" }],
      stream: true,
      options: { ...GREEDY, num_predict: 1500 },
    });
    const seen: Array<{ done: boolean }> = [];
    await assert.rejects(async () => {
      for await (const part of stream) {
        seen.push(part);
        if (seen.length === 2) {
          assert.equal((await loadedModel(s, "tiny.gguf"))?.leases, 1);
          stream.abort();
        }
      }
    }, /abort/i);
    await waitFor(async () => (await loadedModel(s, "tiny.gguf"))?.leases === 0);
    assert.ok(seen.every((p) => !p.done));
  });
});

describe("Ollama API: a stream cut short by shutdown", () => {
  it('ends with an {"error"} line, which the ollama client throws', async () => {
    const server = await startServer(s.runtime, { port: 0 });
    const client = new Ollama({ host: server.url });
    const stream = await client.generate({
      model: "tiny",
      prompt: "Once",
      raw: true,
      stream: true,
      options: { ...GREEDY, num_predict: 1500 },
    });
    let closing: Promise<unknown> | undefined;
    await assert.rejects(
      async () => {
        for await (const part of stream) {
          assert.equal(part.done, false);
          closing ??= server.close(0);
        }
      },
      (error: Error) => {
        assert.match(error.message, /generation aborted: the request was cancelled or the server is shutting down/);
        return true;
      },
    );
    assert.deepEqual(await closing, { drained: false, aborted: 1 });
    await waitFor(async () => ((await loadedModel(s, "tiny.gguf"))?.leases ?? 0) === 0);
  });
});

describe("the docs' ollama snippets", () => {
  it("docs/clients.md's runs as written against the server (host and model name replaced)", async () => {
    const body = await docSnippet("docs/clients.md", "**Ollama** (`ollama`)");
    assert.ok(body.includes('from "ollama"'), "docs/clients.md has the snippet");
    let written = "";
    const logged = await snippetLogs(
      body,
      { url: s.url, model: "tiny" },
      { Ollama, process: { stdout: { write: (text: string) => (written += text) } } },
    );
    assert.equal(typeof logged[0], "string");
    assert.equal(typeof written, "string");
    assert.ok(
      !(await ollama.ps()).models.some((m) => m.name === "tiny:latest"),
      "the snippet's last line unloaded the model",
    );
  });

  it("the README's runs as written", async () => {
    const body = await docSnippet("README.md", "## From an Ollama client");
    const logged = await snippetLogs(body, { url: s.url, model: "tiny" }, { Ollama });
    assert.equal(logged.length, 1);
    assert.equal(typeof logged[0], "string");
  });
});

describe("Ollama API: the API key", () => {
  it('with an api_key, /api/* needs it like /v1 (401 as {"error": message}); HEAD / stays open', async (t) => {
    const secured = await startServer(
      { ...s.runtime, config: { ...s.config, server: { ...s.config.server, api_key: "sesame" } } },
      { port: 0 },
    );
    t.after(() => secured.close(0));
    await assert.rejects(new Ollama({ host: secured.url }).list(), responseError(401, /API key/));
    await assert.rejects(
      new Ollama({ host: secured.url, headers: { Authorization: "Bearer wrong" } }).list(),
      responseError(401, /invalid API key/),
    );
    const keyed = new Ollama({ host: secured.url, headers: { Authorization: "Bearer sesame" } });
    assert.ok((await keyed.list()).models.length > 0);
    const reply = await keyed.chat({
      model: "tiny",
      messages: [{ role: "user", content: "Hi" }],
      options: { ...GREEDY, num_predict: 2 },
    });
    assert.equal(reply.done, true);
    assert.equal((await fetch(`${secured.url}/`, { method: "HEAD" })).status, 200);
  });
});
