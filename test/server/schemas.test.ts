import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BadRequest } from "../../src/errors/index.js";
import {
  chatRequestSchema,
  completionRequestSchema,
  embeddingRequestSchema,
  formatPath,
  loadRequestSchema,
  parseBody,
} from "../../src/server/schemas.js";
import { responsesRequestSchema } from "../../src/server/responses-schemas.js";

const chat = { model: "m", messages: [{ role: "user", content: "hi" }] };

describe("request bodies: a 400 names the field", () => {
  const refusals: Array<[string, Parameters<typeof parseBody>[0], unknown, string, RegExp]> = [
    ["missing model", chatRequestSchema, { messages: chat.messages }, "model", /expected string/],
    ["no messages", chatRequestSchema, { model: "m", messages: [] }, "messages", /too small|at least/i],
    [
      "content not text",
      chatRequestSchema,
      { model: "m", messages: [{ role: "user", content: 1 }] },
      "messages[0].content",
      /expected a string or a non-empty list of content parts/,
    ],
    [
      "unknown role",
      chatRequestSchema,
      { model: "m", messages: [{ role: "robot", content: "x" }] },
      "messages[0].role",
      /system|user/,
    ],
    [
      "tool message without its call id",
      chatRequestSchema,
      { model: "m", messages: [{ role: "tool", content: "x" }] },
      "messages[0].tool_call_id",
      /expected string/,
    ],
    ["unknown field", chatRequestSchema, { ...chat, repetition_penalty: 1.2 }, "repetition_penalty", /unknown field/],
    [
      "store: true",
      chatRequestSchema,
      { ...chat, store: true },
      "store",
      /^store: true is not supported: Inferno is stateless and keeps no responses$/,
    ],
    ["logit_bias key", chatRequestSchema, { ...chat, logit_bias: { word: 1 } }, "logit_bias.word", /token ids/],
    [
      "image part",
      chatRequestSchema,
      {
        model: "m",
        messages: [{ role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image_url" }] }],
      },
      "messages[0].content[1]",
      /^messages\[0\]\.content\[1\]: image_url content parts are not supported: the model has no vision/,
    ],
    [
      "audio part",
      chatRequestSchema,
      { model: "m", messages: [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }] },
      "messages[0].content[0]",
      /input_audio content parts are not supported: the model takes no audio/,
    ],
    [
      "unknown part",
      chatRequestSchema,
      { model: "m", messages: [{ role: "user", content: [{ type: "video" }] }] },
      "messages[0].content",
      /content parts \(text, image_url, input_audio, file\)/,
    ],
    [
      "reasoning_effort",
      chatRequestSchema,
      { ...chat, reasoning_effort: "low" },
      "reasoning_effort",
      /^reasoning_effort: reasoning_effort is not supported: the models Inferno runs have no reasoning budget to set; leave it out \(or "none"\)$/,
    ],
    ["temperature out of range", chatRequestSchema, { ...chat, temperature: 3 }, "temperature", /2/],
    ["n > 1", chatRequestSchema, { ...chat, n: 2 }, "n", /only n = 1 is supported/],
    [
      "five stop strings",
      chatRequestSchema,
      { ...chat, stop: ["a", "b", "c", "d", "e"] },
      "stop",
      /Invalid input|too big|at most/i,
    ],
    ["logprobs", chatRequestSchema, { ...chat, logprobs: true }, "logprobs", /log probabilities are not supported/],
    [
      "bad keep_alive",
      chatRequestSchema,
      { ...chat, keep_alive: "forever" },
      "keep_alive",
      /expected a duration like "5m"/,
    ],
    [
      "max_tokens 0",
      completionRequestSchema,
      { model: "m", prompt: "x", max_tokens: 0 },
      "max_tokens",
      /too small|>0|positive/i,
    ],
    [
      "suffix",
      completionRequestSchema,
      { model: "m", prompt: "x", suffix: "end" },
      "suffix",
      /suffix is not supported/,
    ],
    ["prompt tokens", completionRequestSchema, { model: "m", prompt: [1, 2] }, "prompt", /Invalid input/],
    [
      "encoding",
      embeddingRequestSchema,
      { model: "m", input: "x", encoding_format: "int8" },
      "encoding_format",
      /float|base64/,
    ],
    [
      "dimensions",
      embeddingRequestSchema,
      { model: "m", input: "x", dimensions: 8 },
      "dimensions",
      /^dimensions: choosing dimensions is not supported \(embeddings have the model's own size\)$/,
    ],
    ["load keep_alive", loadRequestSchema, { keep_alive: true }, "keep_alive", /Invalid input/],
  ];
  for (const [what, schema, body, param, message] of refusals) {
    it(`${what} → ${param}`, () => {
      assert.throws(
        () => parseBody(schema, body),
        (error: unknown) => {
          assert.ok(error instanceof BadRequest);
          assert.equal(error.status, 400);
          assert.equal(error.details?.param, param);
          assert.ok(error.message.startsWith(`${param}: `), error.message);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  it("accepts OpenAI's optional fields and parses keep_alive into the one KeepAlive type", () => {
    const body = parseBody(chatRequestSchema, {
      ...chat,
      messages: [{ role: "developer", content: [{ type: "text", text: "be brief" }] }, ...chat.messages],
      max_completion_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
      logprobs: false,
      // Values that ask for nothing these models lack: no alternatives, no reasoning.
      top_logprobs: 0,
      reasoning_effort: "none",
      n: 1,
      user: "someone",
      keep_alive: "5m",
    });
    assert.deepEqual(body.keep_alive, { afterSeconds: 300 });
    assert.equal(body.max_completion_tokens, 5);
  });

  it("accepts what the OpenAI API accepts on messages: name on every role, refusals, audio ids, text parts", () => {
    const call = { id: "c1", type: "function", function: { name: "add", arguments: "{}" } };
    const body = parseBody(chatRequestSchema, {
      model: "m",
      messages: [
        { role: "system", content: "s", name: "policy" },
        { role: "user", content: [{ type: "text", text: "hi" }], name: "alice" },
        { role: "assistant", content: null, tool_calls: [call], name: "planner" },
        { role: "tool", content: "2", tool_call_id: "c1", name: "add" },
        { role: "assistant", content: null, refusal: "I cannot help with that." },
        { role: "assistant", content: [{ type: "refusal", refusal: "Nor that." }], audio: { id: "audio_1" } },
      ],
    });
    // Refusals are what the assistant said: they stay in the history as text.
    assert.deepEqual(body.messages[4], { role: "assistant", content: "I cannot help with that." });
    assert.deepEqual(body.messages[5]?.content, [{ type: "text", text: "Nor that." }]);
    assert.equal(body.messages[3]?.role === "tool" && body.messages[3].name, "add");
  });

  it("the Responses API: image and file inputs say the model cannot read them; refusals stay as text", () => {
    const input = (content: unknown) => ({ model: "m", input: [{ role: "user", content }] });
    assert.throws(
      () => parseBody(responsesRequestSchema, input([{ type: "input_image", image_url: "data:," }])),
      /input\[0\]\.content\[0\]: input_image content parts are not supported: the model has no vision/,
    );
    assert.throws(
      () => parseBody(responsesRequestSchema, { ...input("hi"), reasoning: { effort: "low" } }),
      /reasoning: reasoning is not supported: the models Inferno runs have no reasoning budget to set; leave it out$/,
    );
    const body = parseBody(responsesRequestSchema, {
      model: "m",
      input: [{ role: "assistant", content: [{ type: "refusal", refusal: "No." }] }],
    });
    assert.deepEqual(body.input, [
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "No." }] },
    ]);
  });

  it("checks a body by the schema cut to its fields with the whole schema's result and issues, past the cache's bound too", () => {
    // parseBody cuts an object schema down to the body's fields (cached per field set, up to a bound); wrapped in
    // optional() the same schema is checked whole, the reference here.
    const outcome = (schema: Parameters<typeof parseBody>[0], body: unknown) => {
      try {
        return { data: parseBody(schema, body) as unknown };
      } catch (error) {
        assert.ok(error instanceof BadRequest);
        return { message: error.message, details: error.details };
      }
    };
    const pool: Array<[string, unknown]> = [
      ["temperature", 0.5],
      ["temperature", 9],
      ["top_p", 0.9],
      ["top_k", -1],
      ["seed", 7],
      ["seed", 1.5],
      ["stop", ["x"]],
      ["stream", true],
      ["keep_alive", "5m"],
      ["keep_alive", "soon"],
      ["n", 2],
      ["user", "u"],
      ["store", true],
      ["logprobs", true],
      ["max_tokens", 4],
      ["max_tokens", 0],
      ["bogus", 1],
      ["stream_options", { include_usage: true }],
      ["min_p", 0.1],
      ["presence_penalty", 3],
    ];
    let state = 12345;
    const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31);
    for (const [schema, base] of [
      [chatRequestSchema, chat],
      [completionRequestSchema, { model: "m", prompt: "once" }],
    ] as const) {
      for (let i = 0; i < 150; i++) {
        const body: Record<string, unknown> = i % 10 === 9 ? {} : { ...base };
        for (const [key, value] of pool) if (next() % 4 === 0) body[key] = value;
        assert.deepEqual(outcome(schema, body), outcome(schema.optional(), body), JSON.stringify(body));
      }
    }
  });

  it("formats paths the way clients write them", () => {
    assert.equal(formatPath(["messages", 0, "content"]), "messages[0].content");
    assert.equal(formatPath(["stream_options", "include_usage"]), "stream_options.include_usage");
    assert.equal(formatPath([]), "");
  });
});
