/**
 * Tools, structured output and the extra sampling fields on real llama.cpp with a random-weight model: greedy
 * sampling, and schemas whose grammar must end (enums, booleans), so every assertion holds for any weights.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ChatMessage, TextModel, ToolDefinition } from "../../src/backends/types.js";
import { BadRequest } from "../../src/errors/index.js";
import { FileLlamas } from "../../testkit/models.js";

const llamas = new FileLlamas({ "nano.gguf": { preset: "nano", type: "f32" } });
let model: TextModel;

before(async () => {
  await llamas.setUp();
  // The generic function-calling system prompt is long in the tiny vocabulary's tokens.
  model = await llamas.loadText("nano", { context_size: 2048 });
});
after(async () => {
  await model.dispose();
  await llamas.cleanUp();
});

const weather: ToolDefinition = {
  name: "get_weather",
  description: "The weather in a city",
  parameters: {
    type: "object",
    properties: { city: { enum: ["Paris", "Rome"] }, celsius: { type: "boolean" } },
    required: ["city"],
  },
};
const time: ToolDefinition = {
  name: "get_time",
  parameters: { type: "object", properties: { zone: { enum: ["UTC", "CET"] } } },
};
const ask: ChatMessage[] = [{ role: "user", content: "What is the weather in Paris?" }];

describe("structured output", () => {
  test("a json_schema format gives JSON that validates (enum and boolean)", async () => {
    const schema = {
      type: "object",
      properties: { answer: { enum: ["yes", "no"] }, sure: { type: "boolean" } },
      required: ["answer", "sure"],
    };
    for (const seed of [1, 2]) {
      const result = await model.chat(ask, {
        temperature: 0.8,
        seed,
        maxTokens: 200,
        format: { type: "json_schema", schema },
      });
      const value = JSON.parse(result.text) as { answer: string; sure: boolean };
      assert.deepEqual(Object.keys(value).sort(), ["answer", "sure"]);
      assert.ok(["yes", "no"].includes(value.answer));
      assert.equal(typeof value.sure, "boolean");
    }
  });

  test("stop sequences do not cut a grammar-shaped answer", async () => {
    const schema = { type: "object", properties: { answer: { enum: ["yes", "no"] } }, required: ["answer"] };
    const result = await model.chat(ask, {
      temperature: 0,
      maxTokens: 100,
      stop: ['"', ":"],
      format: { type: "json_schema", schema },
    });
    assert.equal(result.finishReason, "stop");
    assert.ok(["yes", "no"].includes((JSON.parse(result.text) as { answer: string }).answer));
  });

  test("completions take a format too", async () => {
    const result = await model.complete("Answer:", {
      temperature: 0,
      maxTokens: 100,
      format: { type: "json_schema", schema: { enum: [1, 2, 3] } },
    });
    assert.ok([1, 2, 3].includes(JSON.parse(result.text) as number));
  });
});

describe("tools", () => {
  /** A greedy chat that must call one of the two tools within `maxTokens`, and the text it streamed. */
  async function forcedCall(maxTokens: number) {
    const pieces: string[] = [];
    const result = await model.chat(ask, {
      temperature: 0,
      maxTokens,
      tools: [weather, time],
      toolChoice: "required",
      onText: (t) => pieces.push(t),
    });
    return { result, pieces };
  }

  test("tool_choice required: one well-formed call whose arguments validate, not streamed as text", async () => {
    const { result, pieces } = await forcedCall(200);
    assert.equal(result.finishReason, "tool_calls");
    assert.equal(result.text, "");
    assert.deepEqual(pieces, []);
    const [call] = result.toolCalls ?? [];
    assert.ok(call && /^call_\w+$/.test(call.id));
    const args = JSON.parse(call.arguments) as Record<string, unknown>;
    if (call.name === "get_weather") {
      assert.ok(["Paris", "Rome"].includes(args.city as string));
      assert.equal(typeof args.celsius, "boolean");
    } else {
      assert.equal(call.name, "get_time");
      assert.ok(["UTC", "CET"].includes(args.zone as string));
    }
  });

  test("a forced call cut at the token limit is no call and no text: finish length, nothing half-written", async () => {
    const { result, pieces } = await forcedCall(20);
    assert.equal(result.finishReason, "length");
    assert.equal(result.text, "");
    assert.equal(result.toolCalls, undefined);
    assert.deepEqual(pieces, []);
  });

  test("a forced call is compact JSON: no whitespace between its tokens", async () => {
    const result = await model.chat(ask, { temperature: 0, maxTokens: 200, tools: [weather], toolChoice: "required" });
    const [call] = result.toolCalls ?? [];
    assert.ok(call);
    // Each character of this vocabulary's JSON is a token: the whole call costs about its length in characters.
    assert.ok(result.usage.completionTokens <= `{"name":"get_weather","arguments":${call.arguments}}`.length + 2);
  });

  test("a named tool_choice calls exactly that function", async () => {
    for (const name of ["get_weather", "get_time"]) {
      const result = await model.chat(ask, {
        temperature: 0,
        maxTokens: 200,
        tools: [weather, time],
        toolChoice: { name },
      });
      assert.equal(result.toolCalls?.[0]?.name, name);
    }
  });

  test("tool_choice none and auto answer (auto may call, and then validly)", async () => {
    const none = await model.chat(ask, { temperature: 0, maxTokens: 8, tools: [weather], toolChoice: "none" });
    assert.equal(none.toolCalls, undefined);
    const auto = await model.chat(ask, { temperature: 0, maxTokens: 8, tools: [weather] });
    assert.ok(["stop", "length", "tool_calls"].includes(auto.finishReason));
    for (const call of auto.toolCalls ?? []) assert.equal(call.name, "get_weather");
  });

  test("the next turn: an assistant call with null content and its tool result continue the conversation", async () => {
    const first = await model.chat(ask, { temperature: 0, maxTokens: 200, tools: [weather], toolChoice: "required" });
    const call = first.toolCalls?.[0];
    assert.ok(call);
    const history: ChatMessage[] = [
      ...ask,
      { role: "assistant", content: null, toolCalls: [call] },
      { role: "tool", toolCallId: call.id, content: '{"temperature": 21}' },
    ];
    const second = await model.chat(history, { temperature: 0, maxTokens: 5, tools: [weather] });
    assert.ok(["stop", "length", "tool_calls"].includes(second.finishReason));
    assert.ok(second.usage.promptTokens > first.usage.promptTokens / 2);
    // The result reaches the prompt: a different result gives a different prompt length.
    const other = await model.chat(
      [...history.slice(0, 2), { role: "tool", toolCallId: call.id, content: '{"temperature": 21, "wind": "strong"}' }],
      { temperature: 0, maxTokens: 1, tools: [weather] },
    );
    assert.ok(other.usage.promptTokens > second.usage.promptTokens);
  });

  test("a tool message answering no call is a BadRequest naming it", async () => {
    const history: ChatMessage[] = [
      ...ask,
      {
        role: "assistant",
        content: null,
        toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Rome"}' }],
      },
      { role: "tool", toolCallId: "call_2", content: "21" },
    ];
    await assert.rejects(
      model.chat(history, { maxTokens: 1 }),
      (e: unknown) => e instanceof BadRequest && /messages\[2\]\.tool_call_id/.test(e.message),
    );
  });
});

describe("sampling fields", () => {
  const greedy = (extra: object = {}) => model.complete("The king", { temperature: 0, maxTokens: 8, ...extra });

  test("logit_bias: +100 on a token makes it the output; -100 bans the greedy first token", async () => {
    const base = await greedy();
    const word = (await model.tokenize("water")).at(-1);
    assert.ok(word !== undefined);
    const forced = await greedy({ logitBias: { [word]: 100 } });
    assert.match(forced.text, /^(\s*water)+$/);
    const first = (await model.tokenize(base.text)).find((t) => t > 2);
    assert.ok(first !== undefined);
    const banned = await greedy({ logitBias: { [first]: -100 } });
    assert.notEqual(banned.text, base.text);
    await assert.rejects(greedy({ logitBias: { "999999": 1 } }), BadRequest);
  });

  test("frequency and presence penalties change greedy output; topK = 1 and minP = 1 give the greedy text at any temperature", async () => {
    const base = await model.complete("The king", { temperature: 0, maxTokens: 24 });
    const penalised = await model.complete("The king", {
      temperature: 0,
      maxTokens: 24,
      frequencyPenalty: 2,
      presencePenalty: 2,
    });
    assert.notEqual(penalised.text, base.text);
    const greedyText = (await greedy()).text;
    assert.equal((await greedy({ temperature: 1.5, seed: 3, topK: 1 })).text, greedyText);
    assert.equal((await greedy({ temperature: 1.5, seed: 3, minP: 1 })).text, greedyText);
  });
});
