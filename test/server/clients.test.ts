/**
 * The Vercel AI SDK (`ai` + `@ai-sdk/openai`) and LangChain (`@langchain/openai`) against a live server on loopback,
 * as docs/clients.md shows them. Random weights: greedy sampling, schemas whose grammar must end.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createOpenAI } from "@ai-sdk/openai";
import { AIMessage, HumanMessage, SystemMessage, type ToolMessage } from "@langchain/core/messages";
import { tool as langchainTool } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import { generateObject, generateText, type ModelMessage, Output, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { fileContext, startTestServer, type TestServer } from "../../testkit/server.js";

let s: TestServer;
const fileScope = fileContext();
before(async () => {
  s = await startTestServer(fileScope.context, { config: { backend: { context_size: 2048 } } });
});
after(() => fileScope.cleanUp());

const Verdict = z.object({ answer: z.enum(["yes", "no", "maybe"]), confident: z.boolean() });
const City = z.object({ city: z.enum(["Paris", "Rome"]) });
/** Everyday zod: each of these emits a JSON Schema keyword (minimum, maximum, format, pattern) the grammar enforces. */
const Person = z.object({
  age: z.number().int().min(0).max(120),
  score: z.number().min(0).max(1),
  email: z.string().email(),
  code: z.string().regex(/^[a-z]{3}-\d{2}$/),
  id: z.string().uuid(),
  at: z.string().datetime(),
});

/** An AI SDK tool that answers a city's weather and records each city it was called with into `executed`. */
function weatherTool(executed: string[]) {
  return tool({
    description: "The weather in a city",
    inputSchema: City,
    execute: async ({ city }) => {
      executed.push(city);
      return { city, temperature: 21 };
    },
  });
}

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

  it("generateObject with everyday zod: .int(), .min/.max, .email(), .regex(), .uuid(), .datetime()", async () => {
    const { object, finishReason } = await generateObject({
      model: provider()("tiny"),
      schema: Person,
      prompt: "Invent a person.",
      temperature: 0,
      maxOutputTokens: 400,
    });
    assert.equal(finishReason, "stop");
    assert.deepEqual(Person.parse(object), object);
  });

  it("generateText with tools: a required call is executed and its result fed back (chat completions and responses)", async () => {
    const openai = provider();
    for (const model of [openai.chat("tiny"), openai("tiny")]) {
      const executed: string[] = [];
      const result = await generateText({
        model,
        prompt: "What is the weather in Paris?",
        tools: { weather: weatherTool(executed) },
        toolChoice: "required",
        stopWhen: stepCountIs(2),
        temperature: 0,
        maxOutputTokens: 100,
        // The items themselves, not references to earlier answers (those have their own test below).
        providerOptions: { openai: { store: false } },
      });
      assert.equal(result.steps.length, 2, "two requests: the call, then the next turn with its result");
      const [call] = result.steps[0]?.toolCalls ?? [];
      assert.equal(call?.toolName, "weather");
      assert.ok(["Paris", "Rome"].includes(executed[0] ?? ""));
      assert.deepEqual(result.steps[0]?.toolResults[0]?.output, { city: executed[0], temperature: 21 });
    }
  });
  it("a multi-turn chat on the default provider: earlier answers come back as item references, streamed or not", async () => {
    const openai = provider();
    const messages: ModelMessage[] = [{ role: "user", content: "Once upon a time" }];
    for (const turn of [0, 1, 2]) {
      const options = { model: openai("tiny"), messages, temperature: 0, maxOutputTokens: 6 };
      let reply: ModelMessage[];
      if (turn === 1) {
        const stream = streamText(options);
        await stream.consumeStream();
        reply = (await stream.response).messages;
      } else {
        reply = (await generateText(options)).response.messages;
      }
      // The AI SDK keeps each answer's item id and, with its default store: true, sends the id instead of the text.
      const itemId = (reply[0]?.content as Array<{ providerOptions?: { openai?: { itemId?: string } } }>)[0]
        ?.providerOptions?.openai?.itemId;
      assert.ok(itemId, JSON.stringify(reply));
      messages.push(...reply, { role: "user", content: "And then?" });
    }
    assert.equal(messages.length, 7);
  });

  it("generateText with tools and Output.object: each step calls the tool or answers in the schema (chat and responses)", async () => {
    const openai = provider();
    for (const model of [openai.chat("tiny"), openai("tiny")]) {
      const executed: string[] = [];
      const result = await generateText({
        model,
        prompt: "What is the weather in Paris?",
        tools: { weather: weatherTool(executed) },
        output: Output.object({ schema: Verdict }),
        stopWhen: stepCountIs(3),
        temperature: 0,
        maxOutputTokens: 120,
      });
      // Every step was answered (no 400 for tools beside a format); each call had valid input and was executed.
      const calls = result.steps.flatMap((step) => step.toolCalls);
      assert.equal(executed.length, calls.length);
      for (const city of executed) assert.ok(["Paris", "Rome"].includes(city));
      const last = result.steps.at(-1);
      if (last?.finishReason === "stop") assert.deepEqual(Verdict.parse(result.output), result.output);
      else assert.equal(last?.finishReason, "tool-calls", "greedy: the last step calls again (or answered)");
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

  it("a tool with everyday zod parameters: a required call whose arguments pass the zod schema", async () => {
    const register = langchainTool(async (person) => `registered ${person.email}`, {
      name: "register",
      description: "Register a person",
      schema: Person,
    });
    const message = await new ChatOpenAI({
      model: "tiny",
      apiKey: "not-needed",
      configuration: { baseURL: `${s.url}/v1` },
      temperature: 0,
      maxTokens: 400,
    })
      .bindTools([register], { tool_choice: "required" })
      .invoke("Register someone.");
    const [call] = message.tool_calls ?? [];
    assert.equal(call?.name, "register");
    assert.deepEqual(Person.parse(call?.args), call?.args);
  });

  it("a tool-message round trip: the call, the tool's ToolMessage (with its name) and the next turn", async () => {
    const weather = langchainTool(async ({ city }) => `21 degrees in ${city}`, {
      name: "get_weather",
      description: "The weather in a city",
      schema: City,
    });
    const question = new HumanMessage("What is the weather in Rome?");
    const called = await chat().bindTools([weather], { tool_choice: "required" }).invoke([question]);
    const [call] = called.tool_calls ?? [];
    assert.ok(call);
    const result = (await weather.invoke(call)) as ToolMessage;
    assert.equal(result.name, "get_weather", "LangChain names the tool on its message, which the server accepts");
    const answer = await chat().bindTools([weather]).invoke([question, called, result]);
    assert.equal(typeof answer.content, "string");
  });

  it("LangGraph-style named messages: agents' names on system, human and AI messages", async () => {
    const answer = await chat().invoke([
      new SystemMessage({ content: "You are a team.", name: "supervisor" }),
      new HumanMessage({ content: "Plan a trip.", name: "alice" }),
      new AIMessage({ content: "Rome, in May.", name: "planner" }),
      new HumanMessage({ content: "And then?", name: "alice" }),
    ]);
    assert.equal(typeof answer.content, "string");
    assert.ok((answer.content as string).length > 0);
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
