/**
 * Agent-ready routes against a live server on loopback with the official `openai` client: tools (forced calls, a
 * two-turn tool loop), structured output, the Responses API (plain, streamed, with a function tool), names, and the
 * bad input that must be refused before anything loads. The model has random weights: tests sample greedily and use
 * schemas whose grammar must end (enums, booleans), so every assertion holds whatever the model writes.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { zodResponseFormat, zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import { assertDistinct } from "../../testkit/models.js";
import { loaded } from "../../testkit/hosts.js";
import { fileContext, startTestServer, type TestServer } from "../../testkit/server.js";
import { docSnippet, snippetLogs } from "../../testkit/snippets.js";
import { WEATHER_TOOL } from "../../testkit/tools.js";

let s: TestServer;
let client: OpenAI;
const fileScope = fileContext();

before(async () => {
  s = await startTestServer(fileScope.context, {
    models: { gguf: { "tiny.gguf": { seed: 1 } }, onnx: ["add.onnx"] },
    // node-llama-cpp's generic function-calling system prompt is long in the tiny vocabulary's tokens.
    config: { backend: { context_size: 2048 } },
  });
  client = s.openai();
});
after(() => fileScope.cleanUp());

const weatherTool: OpenAI.Chat.ChatCompletionTool = {
  type: "function",
  function: {
    ...WEATHER_TOOL.function,
    parameters: { ...WEATHER_TOOL.function.parameters, additionalProperties: false },
  },
};
const timeTool: OpenAI.Chat.ChatCompletionTool = {
  type: "function",
  function: { name: "get_time", parameters: { type: "object", properties: { zone: { enum: ["UTC", "CET"] } } } },
};
const question = [{ role: "user" as const, content: "What is the weather in Paris?" }];

function assertValidWeatherArgs(text: string): void {
  const args = JSON.parse(text) as { city: string; celsius: boolean };
  assert.ok(["Paris", "Rome"].includes(args.city), text);
  assert.equal(typeof args.celsius, "boolean");
}

/** A streamed chat completion put together: its text, its calls (deltas joined by index) and its finish reason. */
async function collected(stream: AsyncIterable<OpenAI.Chat.ChatCompletionChunk>) {
  let content = "";
  const calls: Array<{ id?: string; name?: string; arguments: string }> = [];
  let finish: string | null = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    content += choice.delta.content ?? "";
    for (const delta of choice.delta.tool_calls ?? []) {
      const call = (calls[delta.index] ??= { arguments: "" });
      if (delta.id) call.id = delta.id;
      if (delta.function?.name) call.name = delta.function.name;
      call.arguments += delta.function?.arguments ?? "";
    }
    finish = choice.finish_reason ?? finish;
  }
  return { content, calls, finish };
}

async function loadedNames(): Promise<string[]> {
  return (await loaded(s)).map((m) => m.name);
}

describe("tools on chat completions", () => {
  it('tool_choice "required" → a valid call with an id, finish_reason tool_calls, content null', async () => {
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: question,
      tools: [weatherTool, timeTool],
      tool_choice: "required",
      temperature: 0,
      max_tokens: 200,
    });
    const choice = completion.choices[0];
    assert.ok(choice);
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    const call = choice.message.tool_calls?.[0];
    assert.ok(call && call.type === "function");
    assert.match(call.id, /^call_\w+$/);
    assert.ok(["get_weather", "get_time"].includes(call.function.name));
    if (call.function.name === "get_weather") assertValidWeatherArgs(call.function.arguments);
    else assert.ok(["UTC", "CET"].includes((JSON.parse(call.function.arguments) as { zone: string }).zone));
  });

  it("a named tool_choice, streamed: the call arrives as a tool_calls delta and the finish reason is tool_calls", async () => {
    const stream = await client.chat.completions.create({
      model: "tiny",
      messages: question,
      tools: [weatherTool, timeTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      temperature: 0,
      max_tokens: 200,
      stream: true,
    });
    const { content, calls, finish } = await collected(stream);
    assert.equal(content, "");
    assert.equal(finish, "tool_calls");
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.name, "get_weather");
    assertValidWeatherArgs(calls[0]?.arguments ?? "");
  });

  it("a two-turn tool loop: the call, then its result as a tool message, answered by the model", async () => {
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [...question];
    const first = await client.chat.completions.create({
      model: "tiny",
      messages,
      tools: [weatherTool],
      tool_choice: "required",
      temperature: 0,
      max_tokens: 200,
    });
    const message = first.choices[0]?.message;
    assert.ok(message?.tool_calls?.[0]);
    messages.push(message);
    for (const call of message.tool_calls) {
      messages.push({
        role: "tool",
        tool_call_id: call.id,
        content: JSON.stringify({ temperature: 21, sky: "clear" }),
      });
    }
    const second = await client.chat.completions.create({
      model: "tiny",
      messages,
      tools: [weatherTool],
      temperature: 0,
      max_tokens: 6,
    });
    const choice = second.choices[0];
    assert.ok(choice);
    assert.ok(["stop", "length", "tool_calls"].includes(choice.finish_reason));
    for (const call of choice.message.tool_calls ?? [])
      if (call.type === "function") assertValidWeatherArgs(call.function.arguments);
    assert.ok((second.usage?.prompt_tokens ?? 0) > (first.usage?.prompt_tokens ?? 0));
  });
});

describe("tools the model may call beside a response_format (the AI SDK's tools with Output.object)", () => {
  const Answer = z.object({ sky: z.enum(["clear", "cloudy"]), warm: z.boolean() });
  const format: OpenAI.ResponseFormatJSONSchema = zodResponseFormat(Answer, "answer");

  /** One reply: a valid call (finish tool_calls, no text), or text that is an Answer (finish stop), or cut. */
  function outcome(finish: string | null, content: string, calls: Array<{ name?: string; arguments: string }>): string {
    if (finish === "length") return "cut";
    if (calls.length > 0) {
      assert.equal(finish, "tool_calls");
      assert.equal(content, "");
      assert.equal(calls.length, 1);
      assert.equal(calls[0]?.name, "get_weather");
      assertValidWeatherArgs(calls[0]?.arguments ?? "");
      return "call";
    }
    assert.equal(finish, "stop");
    Answer.parse(JSON.parse(content));
    return "answer";
  }

  it("each reply is one valid call or an answer valid against the schema, never a 400 (seeds 0-7, streamed and not)", async () => {
    const seen: Record<string, number> = {};
    for (let seed = 0; seed < 8; seed++) {
      const request: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = {
        model: "tiny",
        messages: question,
        tools: [weatherTool],
        response_format: format,
        seed,
        temperature: 1,
        max_tokens: 120,
      };
      const plain = await client.chat.completions.create(request);
      const choice = plain.choices[0];
      assert.ok(choice);
      const calls = (choice.message.tool_calls ?? []).flatMap((c) => (c.type === "function" ? [c.function] : []));
      const kind = outcome(choice.finish_reason, choice.message.content ?? "", calls);
      seen[kind] = (seen[kind] ?? 0) + 1;
      // Streamed, the same seed gives the same reply: the answer as text deltas, a call as one tool_calls delta.
      const stream = await client.chat.completions.create({ ...request, stream: true });
      const { content, calls: streamed, finish } = await collected(stream);
      assert.equal(outcome(finish, content, streamed), kind, `seed ${seed}`);
      if (kind === "answer") assert.equal(content, choice.message.content);
    }
    // Finished replies are tested, not only cut ones (this vocabulary's calls take ~70 tokens; the answer branch is
    // taken by other vocabularies in test/backends/constrained-sampling.test.ts).
    assert.ok((seen.call ?? 0) + (seen.answer ?? 0) > 0, JSON.stringify(seen));
  });
});

describe("structured output", () => {
  const Verdict = z.object({ answer: z.enum(["yes", "no", "maybe"]), confident: z.boolean() });

  it("zodResponseFormat: the reply parses and validates (three seeds)", async () => {
    for (const seed of [1, 2, 3]) {
      const completion = await client.chat.completions.parse({
        model: "tiny",
        messages: [{ role: "user", content: "Is the sky blue?" }],
        response_format: zodResponseFormat(Verdict, "verdict"),
        temperature: 0.7,
        seed,
        max_tokens: 100,
      });
      const parsed = completion.choices[0]?.message.parsed;
      assert.ok(parsed, "the reply parsed");
      assert.deepEqual(Verdict.parse(parsed), parsed);
    }
  });

  it("json_object gives a JSON object", async () => {
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Reply in JSON" }],
      response_format: { type: "json_object" },
      temperature: 0,
      max_tokens: 300,
    });
    const choice = completion.choices[0];
    assert.equal(choice?.finish_reason, "stop", "greedy output of this model ends within the limit");
    const value = JSON.parse(choice.message.content ?? "") as unknown;
    assert.ok(typeof value === "object" && value !== null && !Array.isArray(value));
  });
});

describe("seeds", () => {
  const story = (seed?: number) =>
    client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Tell me a story" }],
      temperature: 1,
      max_tokens: 12,
      ...(seed === undefined ? {} : { seed }),
    });

  it("ten requests at temperature 1 without a seed, back to back: no two answers alike (but answers that ended at once)", async () => {
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) answers.push((await story()).choices[0]?.message.content ?? "");
    assertDistinct(answers, 3);
  });

  it("the same seed twice: the same answer", async () => {
    const [a, b] = [await story(42), await story(42)];
    assert.equal(a.choices[0]?.message.content, b.choices[0]?.message.content);
  });
});

describe("POST /v1/responses", () => {
  it("plain: output_text, usage, status incomplete when max_output_tokens cuts it; the model name is echoed", async () => {
    const response = await client.responses.create({
      model: "tiny",
      input: "Tell me a story",
      instructions: "Be brief",
      temperature: 0,
      max_output_tokens: 5,
    });
    assert.equal(response.object, "response");
    assert.equal(response.model, "tiny");
    assert.equal(response.status, "incomplete");
    assert.equal(response.incomplete_details?.reason, "max_output_tokens");
    assert.ok(response.output_text.length > 0);
    assert.equal(response.output[0]?.type, "message");
    assert.ok((response.usage?.input_tokens ?? 0) > 0);
    assert.ok((response.usage?.output_tokens ?? 0) > 0);
  });

  it("streamed: the Responses event sequence, whose deltas make up the final text", async () => {
    const request = { model: "tiny", input: "Tell me a story", temperature: 0, max_output_tokens: 8 };
    const whole = await client.responses.create(request);
    const stream = await client.responses.create({ ...request, stream: true });
    const types: string[] = [];
    let text = "";
    let final: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed" || event.type === "response.incomplete") final = event.response;
    }
    const distinct = types.filter((t, i) => t !== types[i - 1]);
    assert.deepEqual(distinct, [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.incomplete",
    ]);
    assert.equal(text, whole.output_text);
    assert.ok(final);
    const item = final.output[0];
    assert.ok(item?.type === "message" && item.content[0]?.type === "output_text");
    assert.equal(item.content[0].text, text);
  });

  it("with a function tool: a function_call item, and its function_call_output answered in the next request", async () => {
    const tools: OpenAI.Responses.FunctionTool[] = [
      { type: "function", name: "get_weather", parameters: weatherTool.function.parameters ?? null, strict: true },
    ];
    const first = await client.responses.create({
      model: "tiny",
      input: "Weather in Rome?",
      tools,
      tool_choice: "required",
      temperature: 0,
      max_output_tokens: 200,
    });
    const call = first.output.find((item) => item.type === "function_call");
    assert.ok(call && call.type === "function_call");
    assert.equal(call.name, "get_weather");
    assertValidWeatherArgs(call.arguments);
    const second = await client.responses.create({
      model: "tiny",
      input: [
        { role: "user", content: "Weather in Rome?" },
        call,
        { type: "function_call_output", call_id: call.call_id, output: '{"temperature": 25}' },
      ],
      tools,
      temperature: 0,
      max_output_tokens: 4,
    });
    assert.ok(["completed", "incomplete"].includes(second.status ?? ""));
  });

  it("text.format json_schema (zodTextFormat) gives output that parses", async () => {
    const Verdict = z.object({ answer: z.enum(["yes", "no"]) });
    const response = await client.responses.parse({
      model: "tiny",
      input: "Yes or no?",
      text: { format: zodTextFormat(Verdict, "verdict") },
      temperature: 0,
      max_output_tokens: 60,
    });
    assert.ok(["yes", "no"].includes(response.output_parsed?.answer ?? ""));
  });

  it("store: true, previous_response_id and references to items this server never sent are 400s", async () => {
    for (const extra of [{ store: true }, { previous_response_id: "resp_1" }]) {
      await assert.rejects(client.responses.create({ model: "tiny", input: "hi", ...extra }), (error: unknown) => {
        assert.ok(error instanceof OpenAI.BadRequestError, String(error));
        assert.equal(error.param, Object.keys(extra)[0]);
        return true;
      });
    }
    await assert.rejects(
      client.responses.create({ model: "tiny", input: [{ type: "item_reference", id: "msg_1" }] }),
      (error: unknown) =>
        error instanceof OpenAI.BadRequestError &&
        error.param === "input[0].id" &&
        /no output item "msg_1" .* stores no responses/.test(error.message),
    );
  });
});

describe("names", () => {
  it("every reply names the model as the client asked for it; /v1/models ids can be sent back", async () => {
    const ids = (await client.models.list()).data.map((m) => m.id).sort();
    assert.deepEqual(ids, ["add", "tiny"]);
    for (const name of ["tiny", "tiny.gguf"]) {
      const chat = await client.chat.completions.create({
        model: name,
        messages: question,
        max_tokens: 1,
        temperature: 0,
      });
      assert.equal(chat.model, name);
      const completion = await client.completions.create({ model: name, prompt: "Hi", max_tokens: 1, temperature: 0 });
      assert.equal(completion.model, name);
      const embedding = await client.embeddings.create({ model: name, input: "Hi" });
      assert.equal(embedding.model, name);
      const stream = await client.chat.completions.create({
        model: name,
        messages: question,
        max_tokens: 1,
        stream: true,
      });
      for await (const chunk of stream) assert.equal(chunk.model, name);
    }
  });
});

describe("bad input: a 400 naming the field, nothing loaded", () => {
  /** Asserts a 400 whose param is `param` (and whose message matches `pattern`), with no model loaded by it. */
  async function refused(request: () => Promise<unknown>, param: string, pattern?: RegExp): Promise<void> {
    await s.getJson("/v1/cache/clear", { method: "POST" });
    await assert.rejects(request(), (error: unknown) => {
      assert.ok(error instanceof OpenAI.BadRequestError, String(error));
      assert.equal(error.param, param, error.message);
      if (pattern) assert.match(error.message, pattern);
      return true;
    });
    assert.deepEqual(await loadedNames(), []);
  }
  const chat = (extra: Record<string, unknown>, messages: unknown[] = question) =>
    client.chat.completions.create({ model: "tiny", messages, ...extra } as never);

  it("malformed tool schemas, an unsupported keyword, a tool_choice naming no tool", async () => {
    const tool = (parameters: unknown, name = "f") => ({ type: "function", function: { name, parameters } });
    await refused(
      () => chat({ tools: [tool({ type: "object", properties: { n: { type: "integer", multipleOf: 2 } } })] }),
      "tools[0].function.parameters.properties.n.multipleOf",
      /"multipleOf" is not supported/,
    );
    await refused(() => chat({ tools: [tool({ type: "strange" })] }), "tools[0].function.parameters.type");
    await refused(
      () => chat({ tools: [tool({ type: "object", properties: { a: { $ref: "#/$defs/missing" } } })] }),
      "tools[0].function.parameters.properties.a.$ref",
    );
    await refused(() => chat({ tools: [tool({}, "bad name!")] }), "tools[0].function.name");
    await refused(
      () => chat({ tools: [tool({})], tool_choice: { type: "function", function: { name: "other" } } }),
      "tool_choice",
      /"other"/,
    );
    await refused(() => chat({ tools: [{ type: "custom", custom: { name: "x" } }] }), "tools[0].type");
  });

  it("a JSON schema that cannot compile to a grammar", async () => {
    const format = (schema: unknown) => ({
      response_format: { type: "json_schema", json_schema: { name: "x", schema } },
    });
    await refused(
      () => chat(format({ type: "string", pattern: "^(?!a)b+$" })),
      "response_format.json_schema.schema.pattern",
      /look-around/,
    );
    await refused(
      () => chat(format({ type: "object", properties: { a: { not: { type: "null" } } } })),
      "response_format.json_schema.schema.properties.a.not",
    );
    await refused(() => chat(format({ enum: [] })), "response_format.json_schema.schema.enum");
  });

  it("tool messages that match nothing, and assistant calls left unanswered", async () => {
    const call = {
      id: "call_1",
      type: "function",
      function: { name: "get_weather", arguments: '{"city":"Rome","celsius":true}' },
    };
    const assistant = { role: "assistant", content: null, tool_calls: [call] };
    await refused(
      () => chat({}, [...question, assistant, { role: "tool", tool_call_id: "call_9", content: "21" }]),
      "messages[2].tool_call_id",
      /call_1/,
    );
    await refused(
      () => chat({}, [...question, { role: "tool", tool_call_id: "call_1", content: "21" }]),
      "messages[1]",
    );
    await refused(
      () => chat({}, [...question, assistant, { role: "user", content: "and?" }]),
      "messages[1].tool_calls[0]",
    );
    await refused(
      () =>
        chat({}, [
          ...question,
          { ...assistant, tool_calls: [{ ...call, function: { name: "f", arguments: "{" } }] },
          { role: "tool", tool_call_id: "call_1", content: "x" },
        ]),
      "messages[1].tool_calls[0].function.arguments",
    );
    await refused(() => chat({}, [...question, { role: "assistant", content: null }]), "messages[1]");
  });

  it("a tensor (ONNX) model on any of these routes: 400 before any load", async () => {
    const requests = [
      () => client.chat.completions.create({ model: "add", messages: question }),
      () => client.completions.create({ model: "add", prompt: "x" }),
      () => client.embeddings.create({ model: "add", input: "x" }),
      () => client.responses.create({ model: "add", input: "x" }),
    ];
    for (const request of requests) {
      await s.getJson("/v1/cache/clear", { method: "POST" });
      await assert.rejects(
        request(),
        (error: unknown) => error instanceof OpenAI.BadRequestError && error.code === "model_capability_missing",
      );
      assert.deepEqual(await loadedNames(), []);
    }
  });
});

describe("the README's openai snippet", () => {
  it("runs as written against the server (host and model name replaced)", async () => {
    const body = await docSnippet("README.md", "## From an OpenAI client");
    assert.ok(body.includes('from "openai"'), "the README has the snippet");
    const logged = await snippetLogs(body, { url: s.url, model: "tiny" }, { OpenAI });
    assert.equal(logged.length, 1);
    assert.equal(typeof logged[0], "string");
  });
});
