/**
 * The real server (llama.cpp on generated GGUF models, real HTTP on loopback) driven by the official `openai` client.
 * One server and one loaded model serve the whole file; apps with other settings share its runtime.
 */
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import type { CacheStats } from "../../src/cache/types.js";
import { startServer } from "../../src/runtime/index.js";
import {
  fileContext,
  metricSample,
  scrapeMetrics,
  startTestServer,
  type TestServer,
  waitFor,
} from "../../testkit/server.js";
import { loaded, loadedModel } from "../../testkit/hosts.js";

let s: TestServer;

/**
 * Asserts that `request` fails with the OpenAI client's error class `type`, the `code`, a message matching `message`
 * and, when given, the error type `errorType`.
 */
async function rejectsWith(
  request: Promise<unknown>,
  type: new (...args: never[]) => InstanceType<typeof OpenAI.APIError>,
  code: string,
  message: RegExp,
  errorType?: string,
): Promise<void> {
  await assert.rejects(request, (error: unknown) => {
    assert.ok(error instanceof type, String(error));
    assert.equal(error.code, code);
    if (errorType !== undefined) assert.equal(error.type, errorType);
    assert.match(error.message, message);
    return true;
  });
}

const fileScope = fileContext();

before(async () => {
  s = await startTestServer(fileScope.context, {
    models: { gguf: { "tiny.gguf": { seed: 1 }, "other/second.gguf": { seed: 2 } }, onnx: ["add.onnx"] },
    // Room for a non-streaming generation that outlasts the test's poll by seconds (4,000 tokens: ~8 s on this machine).
    config: { backend: { context_size: 4096 } },
  });
});

after(() => fileScope.cleanUp());

/**
 * For requests that must still be generating when the test acts on them: sampled at the default temperature, the random
 * model sometimes ends with its end token after a few dozen tokens — done before the test could see it run. Greedy, it
 * generates the whole `max_tokens` for these prompts.
 */
const UNTIL_LENGTH = { temperature: 0 };

describe("OpenAI-compatible routes", () => {
  it("lists every discoverable model by its shortest unambiguous name (no extension), its file and whether it is loaded", async () => {
    const page = await s.openai().models.list();
    const ids = page.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ["add", "second", "tiny"]);
    const files = page.data.map((m) => (m as unknown as { file: string }).file).sort();
    assert.deepEqual(files, ["add.onnx", "other/second.gguf", "tiny.gguf"]);
    for (const model of page.data) {
      assert.equal(model.object, "model");
      assert.equal((model as unknown as { loaded: boolean }).loaded, false);
    }
    const one = await s.openai().models.retrieve("tiny.gguf");
    assert.equal(one.id, "tiny");
  });

  it("retrieves one model by name (also one in a subfolder); an unknown name → 404 in OpenAI's format", async () => {
    const one = await s.openai().models.retrieve("other/second.gguf");
    const listed = (await s.openai().models.list()).data.find((m) => m.id === "second");
    assert.deepEqual(one, listed);
    assert.equal(one.object, "model");
    assert.equal(one.owned_by, "inferno");
    assert.equal((one as unknown as { format: string }).format, "gguf");
    assert.ok((one as unknown as { size_bytes: number }).size_bytes > 0);
    await assert.rejects(s.openai().models.retrieve("tiny.guf"), (error: unknown) => {
      assert.ok(error instanceof OpenAI.NotFoundError, String(error));
      assert.equal(error.code, "model_not_found");
      assert.equal(error.type, "invalid_request_error");
      assert.match(error.message, /tiny\.guf/);
      assert.match(error.message, /tiny\.gguf/);
      return true;
    });
  });

  it("answers a chat completion with usage counts, then the model shows as loaded", async () => {
    const completion = await s.openai().chat.completions.create({
      model: "tiny.gguf",
      messages: [{ role: "user", content: "Hello there" }],
      max_tokens: 8,
      temperature: 0,
    });
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.model, "tiny.gguf");
    const choice = completion.choices[0];
    assert.ok(choice);
    assert.equal(choice.message.role, "assistant");
    assert.equal(typeof choice.message.content, "string");
    assert.ok(["stop", "length"].includes(choice.finish_reason));
    const usage = completion.usage;
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0 && usage.completion_tokens <= 8);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    const models = await s.openai().models.list();
    assert.equal(models.data.find((m) => m.id === "tiny")?.["loaded" as never], true);
  });

  it("streams a chat completion as server-sent events whose text equals the non-streamed answer", async () => {
    const request = {
      model: "tiny.gguf",
      messages: [{ role: "user" as const, content: "Tell me a story" }],
      max_tokens: 12,
      temperature: 0,
    };
    const whole = await s.openai().chat.completions.create(request);
    const stream = await s
      .openai()
      .chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      assert.equal(chunk.object, "chat.completion.chunk");
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
    assert.ok(chunks > 2, `only ${chunks} chunks`);
    assert.equal(text, whole.choices[0]?.message.content);
    assert.equal(finish, whole.choices[0]?.finish_reason);
    // The same counts; the same prompt again is served from the prompt cache, all but its last token.
    assert.deepEqual({ ...usage, prompt_tokens_details: null }, { ...whole.usage, prompt_tokens_details: null });
    assert.equal(usage?.prompt_tokens_details?.cached_tokens, (usage?.prompt_tokens ?? 0) - 1);
  });

  it("ends a raw stream with data: [DONE]", async () => {
    const response = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Once", max_tokens: 3, stream: true }),
    });
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const body = await response.text();
    const events = body.split("\n\n").filter((e) => e.trim() !== "");
    assert.equal(events.at(-1), "data: [DONE]");
    for (const event of events.slice(0, -1))
      assert.equal(JSON.parse(event.slice("data: ".length)).object, "text_completion");
  });

  it("answers text completions, one choice per prompt, defaulting to 16 tokens", async () => {
    const completion = await s
      .openai()
      .completions.create({ model: "tiny.gguf", prompt: ["Once upon", "A time"], temperature: 0 });
    assert.equal(completion.object, "text_completion");
    assert.deepEqual(
      completion.choices.map((c) => c.index),
      [0, 1],
    );
    assert.ok(completion.usage && completion.usage.completion_tokens > 0 && completion.usage.completion_tokens <= 32);

    const streamed = await s
      .openai()
      .completions.create({ model: "tiny.gguf", prompt: "Once upon", temperature: 0, stream: true });
    let text = "";
    for await (const chunk of streamed) text += chunk.choices[0]?.text ?? "";
    assert.equal(text, completion.choices[0]?.text);
  });

  it("passes top_p to the sampler: seeded runs repeat, and a tiny top_p leaves only the likeliest token (greedy)", async () => {
    const answer = async (sampling: { temperature: number; top_p?: number; seed?: number }) =>
      (
        await s.openai().chat.completions.create({
          model: "tiny.gguf",
          messages: [{ role: "user", content: "Tell me a story" }],
          max_tokens: 16,
          ...sampling,
        })
      ).choices[0]?.message.content;
    const greedy = await answer({ temperature: 0 });
    const hot = { temperature: 1.5, seed: 11 };
    const free = await answer(hot);
    assert.notEqual(free, greedy, "precondition: this seed samples away from the greedy answer when top_p is not set");
    assert.equal(await answer({ ...hot, top_p: 0.5 }), await answer({ ...hot, top_p: 0.5 }));
    assert.equal(await answer({ ...hot, top_p: 1e-6 }), greedy);

    const text = await s
      .openai()
      .completions.create({ model: "tiny.gguf", prompt: "Once upon", max_tokens: 8, top_p: 1e-6, ...hot });
    const textGreedy = await s
      .openai()
      .completions.create({ model: "tiny.gguf", prompt: "Once upon", max_tokens: 8, temperature: 0 });
    assert.equal(text.choices[0]?.text, textGreedy.choices[0]?.text);
  });

  it("returns embeddings as floats and as base64 (the openai client's default), with equal vectors", async () => {
    const asFloat = await s
      .openai()
      .embeddings.create({ model: "tiny.gguf", input: ["hello", "world"], encoding_format: "float" });
    const asBase64 = await s.openai().embeddings.create({ model: "tiny.gguf", input: ["hello", "world"] });
    assert.equal(asFloat.data.length, 2);
    const first = asFloat.data[0]?.embedding ?? [];
    assert.ok(first.length > 0);
    assert.ok(first.every((x) => Number.isFinite(x)));
    assert.equal(asBase64.data[0]?.embedding.length, first.length);
    for (const [i, x] of (asBase64.data[0]?.embedding ?? []).entries())
      assert.ok(Math.abs(x - (first[i] ?? NaN)) < 1e-6);
    assert.ok(asFloat.usage.prompt_tokens > 0);
  });
});

describe("/metrics", () => {
  it("counts a load that llama.cpp refuses, and reports the memory limit exactly as the stats do", async (t) => {
    // A well-formed GGUF of an architecture llama.cpp does not know ("llama" → "llamx" in every key and value, so
    // every offset stays put): Inferno's header checks pass it, llama.cpp refuses the load.
    const broken = join(s.modelsDir, "broken.gguf");
    const good = await readFile(join(s.modelsDir, "tiny.gguf"));
    await writeFile(broken, Buffer.from(good.toString("latin1").replaceAll("llama", "llamx"), "latin1"));
    t.after(() => rm(broken, { force: true }));
    const failuresBefore = metricSample(await scrapeMetrics(s.url), "inferno_cache_load_failures_total");

    await rejectsWith(
      s.openai().completions.create({ model: "broken.gguf", prompt: "Hi", max_tokens: 2 }),
      OpenAI.InternalServerError,
      "model_load_failed",
      /broken\.gguf/,
    );

    const metrics = await scrapeMetrics(s.url);
    const stats = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
    assert.equal(metricSample(metrics, "inferno_cache_load_failures_total"), failuresBefore + 1);
    // A fresh state file: the persisted total and this process's counter started together.
    assert.equal(metricSample(metrics, "inferno_cache_load_failures_total"), stats.load_failures);
    assert.ok(stats.memory_limit_bytes > 0, "max_memory_mb = 0 means half the system's RAM");
    assert.equal(metricSample(metrics, "inferno_cache_memory_limit_bytes"), stats.memory_limit_bytes);
    assert.equal(metricSample(metrics, "inferno_cache_models_loaded"), stats.models_loaded);
    assert.equal(await loadedModel(s, "broken.gguf"), undefined);
  });

  it("has request latency samples for every route used, labelled by method and route pattern", async () => {
    const routes = [
      ["GET", "/v1/models"],
      ["GET", "/v1/models/:name{.+}"],
      ["POST", "/v1/chat/completions"],
      ["POST", "/v1/completions"],
      ["POST", "/v1/embeddings"],
      ["GET", "/metrics"],
    ];
    const metrics = await scrapeMetrics(s.url);
    for (const [method, route] of routes) {
      const labels = `method="${method}",route="${route}"`;
      const count = metricSample(metrics, `inferno_http_request_duration_seconds_count{${labels}}`);
      assert.ok(count > 0, `${method} ${route}: ${count} samples`);
      assert.equal(metricSample(metrics, `inferno_http_request_duration_seconds_bucket{le="+Inf",${labels}}`), count);
      assert.ok(metricSample(metrics, `inferno_http_request_duration_seconds_sum{${labels}}`) > 0);
    }
    // The raw path never becomes a label: one series for every model name retrieved.
    assert.doesNotMatch(metrics, /route="\/v1\/models\/(?!:name)/);
  });
});

describe("errors in OpenAI's format", () => {
  it("unknown model → 404 model_not_found naming close matches", async () => {
    await rejectsWith(
      s.openai().chat.completions.create({ model: "tiny.guf", messages: [{ role: "user", content: "hi" }] }),
      OpenAI.NotFoundError,
      "model_not_found",
      /tiny\.gguf/,
      "invalid_request_error",
    );
  });

  it("bad body → 400 naming the field", async () => {
    await assert.rejects(
      s.openai().chat.completions.create({ model: "tiny.gguf", messages: [{ role: "user", content: 42 as never }] }),
      (error: unknown) => {
        assert.ok(error instanceof OpenAI.BadRequestError, String(error));
        assert.equal(error.code, "bad_request");
        assert.equal(error.param, "messages[0].content");
        assert.match(error.message, /messages\[0\]\.content/);
        return true;
      },
    );
    const { status, body } = await s.getJson<{ error: { param: string; message: string } }>("/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "x", keep_alive: "soon" }),
    });
    assert.equal(status, 400);
    assert.equal(body.error.param, "keep_alive");
    assert.match(body.error.message, /keep_alive: expected a duration like "5m"/);
    const broken = await s.getJson<{ error: { code: string } }>("/v1/embeddings", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, "bad_request");
  });

  it("top_p outside [0, 1] → 400 naming top_p", async () => {
    for (const top_p of [1.5, -0.1]) {
      await assert.rejects(
        s.openai().chat.completions.create({ model: "tiny.gguf", messages: [{ role: "user", content: "hi" }], top_p }),
        (error: unknown) => {
          assert.ok(error instanceof OpenAI.BadRequestError, String(error));
          assert.equal(error.param, "top_p");
          assert.match(error.message, /\btop_p: Too (big|small): expected number to be (<=1|>=0)/);
          return true;
        },
      );
    }
  });

  it("a tensor (ONNX) model asked to chat → 400 model_capability_missing, before anything is loaded", async () => {
    await rejectsWith(
      s.openai().chat.completions.create({ model: "add.onnx", messages: [{ role: "user", content: "hi" }] }),
      OpenAI.BadRequestError,
      "model_capability_missing",
      /add\.onnx is an ONNX tensor model and cannot do chat completions/,
    );
    assert.equal(await loadedModel(s, "add.onnx"), undefined, "the refused request loaded nothing");
  });

  it("unknown route → 404 in the same format", async () => {
    const { status, body } = await s.getJson<{ error: { code: string } }>("/v1/nothing-here");
    assert.equal(status, 404);
    assert.equal(body.error.code, "not_found");
  });

  it("with an api_key: missing or wrong key → 401, right key → 200; /health stays open", async (t) => {
    const secured = await startServer(
      { ...s.runtime, config: { ...s.config, server: { ...s.config.server, api_key: "sesame" } } },
      { port: 0 },
    );
    t.after(() => secured.close(0));
    const client = (key: string) => new OpenAI({ baseURL: `${secured.url}/v1`, apiKey: key, maxRetries: 0 });
    for (const key of ["", "wrong"]) {
      const bare = await fetch(`${secured.url}/v1/models`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
      assert.equal(bare.status, 401);
      assert.equal(((await bare.json()) as { error: { code: string } }).error.code, "invalid_api_key");
    }
    await assert.rejects(client("wrong").models.list(), OpenAI.AuthenticationError);
    assert.ok((await client("sesame").models.list()).data.length > 0);
    assert.equal((await fetch(`${secured.url}/health`)).status, 200);
  });

  it("a body over the limit → 413", async (t) => {
    const small = await startServer(s.runtime, { port: 0, maxBodyBytes: 1024 });
    t.after(() => small.close(0));
    const response = await fetch(`${small.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "x".repeat(4096) }),
    });
    assert.equal(response.status, 413);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, "payload_too_large");
  });
});

describe("leases, disconnects and the queue", () => {
  it("a streaming request holds a lease while it runs; a client that disconnects aborts it and releases the lease", async () => {
    const controller = new AbortController();
    const response = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "tiny.gguf",
        prompt: "Once upon a time",
        max_tokens: 400,
        stream: true,
        ...UNTIL_LENGTH,
      }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read(); // the first event: the generation is under way
    const during = await loadedModel(s, "tiny.gguf");
    assert.equal(during?.leases, 1);
    controller.abort();
    await waitFor(async () => (await loadedModel(s, "tiny.gguf"))?.leases === 0);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /^inferno_generations_aborted_total 1$/m);
  });

  it("a non-streaming request whose client disconnects is aborted too", async () => {
    const before = await (await fetch(`${s.url}/metrics`)).text();
    const count = (metrics: string) => Number(/^inferno_generations_aborted_total (\d+)$/m.exec(metrics)?.[1]);
    const controller = new AbortController();
    const request = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Once upon a time", max_tokens: 4000, ...UNTIL_LENGTH }),
      signal: controller.signal,
    }).catch((error: unknown) => error);
    await waitFor(async () => (await loadedModel(s, "tiny.gguf"))?.leases === 1);
    controller.abort();
    assert.equal(((await request) as Error).name, "AbortError");
    await waitFor(async () => (await loadedModel(s, "tiny.gguf"))?.leases === 0);
    await waitFor(async () => count(await (await fetch(`${s.url}/metrics`)).text()) === count(before) + 1);
  });

  it("beyond max_queue waiting requests → 503 with Retry-After", async (t) => {
    const busy = await startServer(
      { ...s.runtime, config: { ...s.config, server: { ...s.config.server, max_queue: 0 } } },
      { port: 0, concurrentRequests: 1 },
    );
    t.after(() => busy.close(0));
    const controller = new AbortController();
    const first = await fetch(`${busy.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Once", max_tokens: 400, stream: true, ...UNTIL_LENGTH }),
      signal: controller.signal,
    });
    await first.body!.getReader().read();
    const second = await fetch(`${busy.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Twice", max_tokens: 2 }),
    });
    assert.equal(second.status, 503);
    const metrics = await (await fetch(`${busy.url}/metrics`)).text();
    assert.match(metrics, /^inferno_requests_running 1$/m);
    assert.match(metrics, /^inferno_requests_waiting 0$/m);
    assert.ok(Number(second.headers.get("retry-after")) >= 1);
    assert.equal(((await second.json()) as { error: { code: string } }).error.code, "queue_full");
    controller.abort();
  });
});

describe("cache administration and keep_alive", () => {
  it("load with keep_alive sets when the idle model unloads; DELETE unloads it; keep_alive 0 unloads after the request", async () => {
    const post = (path: string, body: unknown) =>
      s.getJson<Record<string, unknown>>(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const name = encodeURIComponent("other/second.gguf");
    const before = Date.now();
    const { status, body } = await post(`/v1/cache/models/${name}/load`, { keep_alive: "10m" });
    assert.equal(status, 200, JSON.stringify(body));
    const info = await loadedModel(s, "other/second.gguf");
    assert.equal(info?.state, "ready");
    const expires = Date.parse(info?.expires_at ?? "");
    assert.ok(expires >= before + 600_000 && expires <= Date.now() + 600_000, `expires_at ${info?.expires_at}`);

    const removed = await s.getJson<{ unloaded: boolean }>(`/v1/cache/models/${name}`, { method: "DELETE" });
    assert.deepEqual(removed.body, { name: "other/second.gguf", unloaded: true });
    assert.equal(await loadedModel(s, "other/second.gguf"), undefined);

    await s
      .openai()
      .completions.create({ model: "other/second.gguf", prompt: "Hi", max_tokens: 2, keep_alive: 0 } as never);
    await waitFor(async () => (await loaded(s)).every((m) => m.name !== "other/second.gguf"));
  });

  it("stats, save, warmup and clear", async () => {
    const stats = await s.getJson<{ hits: number; models: Array<{ name: string }> }>("/v1/cache/stats");
    assert.equal(stats.status, 200);
    assert.ok(stats.body.models.some((m) => m.name === "tiny.gguf"));

    const save = await s.getJson<{ ok: boolean; bytes: number }>("/v1/cache/save", { method: "POST" });
    assert.equal(save.body.ok, true);
    assert.ok(save.body.bytes > 0);

    const warm = await s.getJson<{ loaded: string[] }>("/v1/cache/warmup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ models: ["other/second.gguf"] }),
    });
    assert.equal(warm.status, 200);
    assert.deepEqual(warm.body.loaded, ["other/second.gguf"]);

    const bad = await s.getJson<{ error: { param: string } }>("/v1/cache/warmup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ strategy: "fastest" }),
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.param, "strategy");

    const cleared = await s.getJson<{ unloaded: string[] }>("/v1/cache/clear", { method: "POST" });
    assert.deepEqual(cleared.body.unloaded.sort(), ["other/second.gguf", "tiny.gguf"]);
    assert.deepEqual(await loaded(s), []);
  });

  it("keep_alive is clamped to the server's keep_alive_min/max_seconds in what /v1/cache/models reports", async (t) => {
    const bounded = await startServer(
      {
        ...s.runtime,
        config: {
          ...s.config,
          server: { ...s.config.server, keep_alive_min_seconds: 120, keep_alive_max_seconds: 600 },
        },
      },
      { port: 0 },
    );
    t.after(() => bounded.close(0));
    const client = new OpenAI({ baseURL: `${bounded.url}/v1`, apiKey: "not-needed", maxRetries: 0 });
    /** Asserts the model's idle deadline lies `seconds` after a moment between `since` and now. */
    const assertExpiresIn = async (name: string, seconds: number, since: number) => {
      const expiresAt = (await loadedModel(s, name))?.expires_at;
      const expires = Date.parse(expiresAt ?? "");
      assert.ok(
        expires >= since + seconds * 1000 && expires <= Date.now() + seconds * 1000,
        `${name} expires at ${expiresAt}`,
      );
    };

    let since = Date.now();
    const load = await fetch(`${bounded.url}/v1/cache/models/${encodeURIComponent("other/second.gguf")}/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ keep_alive: "2h" }),
    });
    assert.equal(load.status, 200);
    await assertExpiresIn("other/second.gguf", 600, since);

    for (const [keepAlive, seconds] of [
      ["5s", 120],
      [0, 120],
      [-1, 600],
      ["4m", 240],
    ] as const) {
      since = Date.now();
      await client.completions.create({
        model: "tiny.gguf",
        prompt: "Hi",
        max_tokens: 2,
        keep_alive: keepAlive,
      } as never);
      await assertExpiresIn("tiny.gguf", seconds, since);
    }
  });
});

describe("graceful shutdown", () => {
  it("lets a running stream finish, refuses new requests meanwhile, and reports it drained", async () => {
    const server = await startServer(s.runtime, { port: 0 });
    const response = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Once", max_tokens: 12, stream: true }),
    });
    const reader = response.body!.getReader();
    await reader.read();
    const closing = server.close(60_000);
    assert.equal(server.app.lifecycle.isDraining, true);
    let rest = "";
    const decoder = new TextDecoder();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += decoder.decode(chunk.value);
    assert.match(rest, /data: \[DONE\]\n\n$/);
    assert.doesNotMatch(rest, /"error"/);
    assert.deepEqual(await closing, { drained: true, aborted: 0 });
  });

  it("aborts generations still running when the grace period ends, releasing their leases", async () => {
    const server = await startServer(s.runtime, { port: 0 });
    const response = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Once", max_tokens: 480, stream: true, ...UNTIL_LENGTH }),
    });
    const reader = response.body!.getReader();
    await reader.read();
    const report = await server.close(0);
    assert.deepEqual(report, { drained: false, aborted: 1 });
    assert.equal((await loadedModel(s, "tiny.gguf"))?.leases ?? 0, 0);
  });
});
