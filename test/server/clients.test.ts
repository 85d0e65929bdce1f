/**
 * The Vercel AI SDK (`ai` + `@ai-sdk/openai`) and LangChain (`@langchain/openai`) against a live server on loopback,
 * as docs/clients.md shows them. Random weights: greedy sampling, schemas whose grammar must end.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createOpenAI } from "@ai-sdk/openai";
import { tool as langchainTool } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import { generateObject, generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { fileContext, startTestServer, type TestServer } from "../helpers/server.js";

let s: TestServer;
const fileScope = fileContext();
before(async () => {
  s = await startTestServer(fileScope.context, { config: { backend: { context_size: 2048 } } });
});
after(() => fileScope.cleanUp());

const Verdict = z.object({ answer: z.enum(["yes", "no", "maybe"]), confident: z.boolean() });
const City = z.object({ city: z.enum(["Paris", "Rome"]) });

describe("Vercel AI SDK", () => {
  const provider = () => createOpenAI({ baseURL: `${s.url}/v1`, apiKey: "not-needed" });

  it("generateText and streamText with the default openai(...) provider (over /v1/responses)", async () => {
    const openai = provider();
    const { text, usage, finishReason } = await generateText({
      model: openai("tiny"),
      prompt: "Once upon a time",
      temperature: 0,
      maxOutputTokens: 8,
    });
    assert.ok(text.length > 0);
    assert.equal(finishReason, "length");
    assert.ok((usage.outputTokens ?? 0) > 0);
    const stream = streamText({
      model: openai("tiny"),
      prompt: "Once upon a time",
      temperature: 0,
      maxOutputTokens: 8,
    });
    let streamed = "";
    for await (const delta of stream.textStream) streamed += delta;
    assert.equal(streamed, text);
  });

  it("generateObject with a zod schema (default provider: text.format json_schema)", async () => {
    const { object } = await generateObject({
      model: provider()("tiny"),
      schema: Verdict,
      prompt: "Is the sky blue?",
      temperature: 0,
      maxOutputTokens: 100,
    });
    assert.deepEqual(Verdict.parse(object), object);
  });

  it("generateText with tools: a required call is executed and its result fed back (chat completions and responses)", async () => {
    const openai = provider();
    for (const model of [openai.chat("tiny"), openai("tiny")]) {
      const executed: string[] = [];
      const result = await generateText({
        model,
        prompt: "What is the weather in Paris?",
        tools: {
          weather: tool({
            description: "The weather in a city",
            inputSchema: City,
            execute: async ({ city }) => {
              executed.push(city);
              return { city, temperature: 21 };
            },
          }),
        },
        toolChoice: "required",
        stopWhen: stepCountIs(2),
        temperature: 0,
        maxOutputTokens: 100,
        // Stateless server: the Responses provider must send the items themselves, not references to stored ones.
        providerOptions: { openai: { store: false } },
      });
      assert.equal(result.steps.length, 2, "two requests: the call, then the next turn with its result");
      const [call] = result.steps[0]?.toolCalls ?? [];
      assert.equal(call?.toolName, "weather");
      assert.ok(["Paris", "Rome"].includes(executed[0] ?? ""));
      assert.deepEqual(result.steps[0]?.toolResults[0]?.output, { city: executed[0], temperature: 21 });
    }
  });
});

describe("LangChain ChatOpenAI", () => {
  const chat = () =>
    new ChatOpenAI({
      model: "tiny",
      apiKey: "not-needed",
      configuration: { baseURL: `${s.url}/v1` },
      temperature: 0,
      maxTokens: 100,
    });

  it("invoke and stream", async () => {
    const llm = new ChatOpenAI({
      model: "tiny",
      apiKey: "not-needed",
      configuration: { baseURL: `${s.url}/v1` },
      temperature: 0,
      maxTokens: 8,
    });
    const message = await llm.invoke("Once upon a time");
    assert.equal(typeof message.content, "string");
    assert.ok((message.content as string).length > 0);
    let streamed = "";
    for await (const chunk of await llm.stream("Once upon a time")) streamed += chunk.content as string;
    assert.equal(streamed, message.content);
  });

  it("bindTools: a required call with valid arguments", async () => {
    const weather = langchainTool(async ({ city }) => `21 degrees in ${city}`, {
      name: "get_weather",
      description: "The weather in a city",
      schema: City,
    });
    const message = await chat()
      .bindTools([weather], { tool_choice: "required" })
      .invoke("What is the weather in Rome?");
    const [call] = message.tool_calls ?? [];
    assert.equal(call?.name, "get_weather");
    assert.deepEqual(City.parse(call?.args), call?.args);
    assert.ok(call?.id);
  });

  it("withStructuredOutput: a zod schema, by JSON schema and by function calling", async () => {
    for (const method of ["jsonSchema", "functionCalling"] as const) {
      const verdict = await chat()
        .withStructuredOutput(Verdict, { name: "verdict", method })
        .invoke("Is the sky blue?");
      assert.deepEqual(Verdict.parse(verdict), verdict, method);
    }
  });
});
