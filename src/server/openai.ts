/**
 * The OpenAI-compatible routes: models, chat completions, text completions (both streaming as server-sent events) and
 * embeddings. Every model use goes through a session: queue slot + cache lease, held exactly while the model works.
 */
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import { checkChat } from "../backends/chat-request.js";
import type {
  ChatMessage,
  ChatOptions,
  EmbedOptions,
  GenerationOptions,
  GenerationResult,
  OutputFormat,
  TextModel,
  ToolCall,
} from "../backends/types.js";
import type { ModelDescriptor } from "../models/types.js";
import { boundedMaxTokens, checkListLength, type RequestLimits } from "./bounds.js";
import { type AppContext, type AppDeps, type AppEnv, jsonResponse, readJson } from "./context.js";
import {
  type ChatRequest,
  chatRequestSchema,
  type CompletionRequest,
  completionRequestSchema,
  embeddingRequestSchema,
  parseBody,
  type SamplingFields,
} from "./schemas.js";
import {
  completedReason,
  type EventWriter,
  type ModelSession,
  openSession,
  streamSession,
  textModelOf,
  within,
} from "./session.js";

/** OpenAI's legacy completions endpoint stops after 16 tokens unless told otherwise; clients expect that. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

type OpenAIFinishReason = "stop" | "length" | "tool_calls";

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** OpenAI's: of the prompt tokens, those served from the prompt cache (not evaluated again). */
  prompt_tokens_details: { cached_tokens: number };
}

export const unixSeconds = () => Math.floor(Date.now() / 1000);
export const newId = (prefix: string) => `${prefix}-${randomUUID().replaceAll("-", "").slice(0, 24)}`;

function usageOf(results: GenerationResult[]): Usage {
  const prompt = results.reduce((sum, r) => sum + r.usage.promptTokens, 0);
  const completion = results.reduce((sum, r) => sum + r.usage.completionTokens, 0);
  const cached = results.reduce((sum, r) => sum + (r.usage.cachedPromptTokens ?? 0), 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
  };
}

/** OpenAI's finish reason; an aborted generation is an error (see completedReason). */
export function finishReasonOf(
  result: Pick<GenerationResult, "finishReason" | "usage">,
  session: ModelSession,
  deps: AppDeps,
): OpenAIFinishReason {
  return completedReason(result, session, deps);
}

/**
 * The request fields every generation shares, mapped to the backend's options; `maxTokens` is what the request asks,
 * capped here by `server.max_tokens_limit` (the backend caps it by the context). `promptCache` is `cache.prompt_cache`:
 * off, no request reuses a prompt prefix; on, a request may still ask `cache_prompt: false`.
 */
export function generationOptions(
  body: SamplingFields,
  maxTokens: number | null | undefined,
  signal: AbortSignal,
  limits: Pick<RequestLimits, "max_tokens_limit">,
  promptCache: boolean,
): GenerationOptions {
  const options: GenerationOptions = { signal };
  if (!promptCache || body.cache_prompt === false) options.cachePrompt = false;
  const bounded = boundedMaxTokens(maxTokens, limits);
  if (bounded !== undefined) options.maxTokens = bounded;
  if (body.truncate_prompt_tokens != null) options.truncatePromptTokens = body.truncate_prompt_tokens;
  if (body.temperature != null) options.temperature = body.temperature;
  if (body.top_p != null) options.topP = body.top_p;
  if (body.top_k != null) options.topK = body.top_k;
  if (body.min_p != null) options.minP = body.min_p;
  if (body.frequency_penalty != null) options.frequencyPenalty = body.frequency_penalty;
  if (body.presence_penalty != null) options.presencePenalty = body.presence_penalty;
  if (body.logit_bias != null) options.logitBias = body.logit_bias;
  if (body.seed != null) options.seed = body.seed;
  if (body.stop != null) options.stop = typeof body.stop === "string" ? [body.stop] : body.stop;
  return options;
}

type TextContent = string | Array<{ text: string }>;

function textOf(content: TextContent): string {
  return typeof content === "string" ? content : content.map((part) => part.text).join("");
}

function chatMessages(body: Pick<ChatRequest, "messages">): ChatMessage[] {
  return body.messages.map((m): ChatMessage => {
    switch (m.role) {
      case "assistant":
        return {
          role: "assistant",
          content: m.content == null ? null : textOf(m.content),
          ...(m.tool_calls && m.tool_calls.length > 0
            ? {
                toolCalls: m.tool_calls.map((c) => ({
                  id: c.id,
                  name: c.function.name,
                  arguments: c.function.arguments,
                })),
              }
            : {}),
        };
      case "tool":
        return { role: "tool", content: textOf(m.content), toolCallId: m.tool_call_id };
      default:
        // Newer OpenAI clients send instructions as "developer"; chat templates know them as "system".
        return { role: m.role === "developer" ? "system" : m.role, content: textOf(m.content) };
    }
  });
}

/** `response_format` as the backend's output format (`text`: none). */
function outputFormat(format: ChatRequest["response_format"]): OutputFormat | undefined {
  if (!format || format.type === "text") return undefined;
  if (format.type === "json_object") return { type: "json" };
  return { type: "json_schema", schema: format.json_schema.schema ?? {} };
}

/** Tools, tool choice and output format of a chat request (checked by `checkChat` before any load). */
function chatOptions(body: ChatRequest): ChatOptions {
  const options: ChatOptions = {};
  if (body.tools && body.tools.length > 0) {
    options.tools = body.tools.map(({ function: f }) => ({
      name: f.name,
      ...(f.description ? { description: f.description } : {}),
      ...(f.parameters ? { parameters: f.parameters } : {}),
    }));
  }
  const choice = body.tool_choice;
  if (choice != null) options.toolChoice = typeof choice === "string" ? choice : { name: choice.function.name };
  if (body.parallel_tool_calls != null) options.parallelToolCalls = body.parallel_tool_calls;
  const format = outputFormat(body.response_format);
  if (format) options.format = format;
  return options;
}

function openaiToolCalls(calls: readonly ToolCall[]) {
  return calls.map((call) => ({
    id: call.id,
    type: "function" as const,
    function: { name: call.name, arguments: call.arguments },
  }));
}

async function chatCompletion(c: AppContext, deps: AppDeps): Promise<Response> {
  const body = parseBody(chatRequestSchema, await readJson(c));
  const { server } = deps.runtime.config;
  checkListLength(body.messages, server.max_messages, "messages", "max_messages");
  const messages = chatMessages(body);
  const chat = chatOptions(body);
  checkChat(messages, chat);
  const session = await openSession(c, deps, body.model, body.keep_alive, "chat completions");
  const model = textModelOf(session, "chat completions");
  const id = newId("chatcmpl");
  const created = unixSeconds();
  // Replies name the model as the client asked for it.
  const name = body.model;
  const options = {
    ...generationOptions(
      body,
      body.max_completion_tokens ?? body.max_tokens,
      session.signal,
      server,
      deps.runtime.config.cache.prompt_cache,
    ),
    promptParam: "messages",
    ...chat,
  };

  if (body.stream) {
    return streamSession(c, deps, session, async (events) => {
      const chunk = (delta: object, finish: OpenAIFinishReason | null) => ({
        id,
        object: "chat.completion.chunk",
        created,
        model: name,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      });
      events.send(chunk({ role: "assistant", content: "" }, null));
      const result = await model.chat(messages, {
        ...options,
        onText: (text) => events.send(chunk({ content: text }, null)),
      });
      const finish = finishReasonOf(result, session, deps);
      // Calls are sent whole once generated (their arguments must be complete to validate), one delta each.
      for (const [index, call] of openaiToolCalls(result.toolCalls ?? []).entries()) {
        events.send(chunk({ tool_calls: [{ index, ...call }] }, null));
      }
      events.send(chunk({}, finish));
      if (includeUsage(body)) {
        events.send({
          id,
          object: "chat.completion.chunk",
          created,
          model: name,
          choices: [],
          usage: usageOf([result]),
        });
      }
    });
  }

  const result = await within(session, () => model.chat(messages, options));
  const toolCalls = result.toolCalls ?? [];
  return jsonResponse(c, {
    id,
    object: "chat.completion",
    created,
    model: name,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: toolCalls.length > 0 && result.text === "" ? null : result.text,
          refusal: null,
          ...(toolCalls.length > 0 ? { tool_calls: openaiToolCalls(toolCalls) } : {}),
        },
        logprobs: null,
        finish_reason: finishReasonOf(result, session, deps),
      },
    ],
    usage: usageOf([result]),
  });
}

function includeUsage(body: Pick<ChatRequest, "stream_options">): boolean {
  return body.stream_options?.include_usage === true;
}

/** Generates one completion per prompt, in order (the model runs them one after another anyway). */
async function completeEach(
  model: TextModel,
  prompts: string[],
  options: (index: number) => GenerationOptions,
): Promise<GenerationResult[]> {
  const results: GenerationResult[] = [];
  for (const [index, prompt] of prompts.entries()) {
    // A list's prompts are named by index in a context_length_exceeded error.
    const promptParam = prompts.length > 1 ? `prompt[${index}]` : "prompt";
    results.push(await model.complete(prompt, { ...options(index), promptParam }));
  }
  return results;
}

async function streamCompletions(
  deps: AppDeps,
  events: EventWriter,
  body: CompletionRequest,
  session: ModelSession,
  model: TextModel,
  meta: { id: string; created: number; name: string; prompts: string[]; maxTokens: number },
): Promise<void> {
  const chunk = (index: number, text: string, finish: OpenAIFinishReason | null) => ({
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.name,
    choices: [{ index, text, logprobs: null, finish_reason: finish }],
  });
  const results = await completeEach(model, meta.prompts, (index) => {
    if (body.echo) events.send(chunk(index, meta.prompts[index] ?? "", null));
    return {
      ...generationOptions(
        body,
        meta.maxTokens,
        session.signal,
        deps.runtime.config.server,
        deps.runtime.config.cache.prompt_cache,
      ),
      onText: (text) => events.send(chunk(index, text, null)),
    };
  });
  for (const [index, result] of results.entries()) {
    events.send(chunk(index, "", finishReasonOf(result, session, deps)));
  }
  if (includeUsage(body)) {
    events.send({
      id: meta.id,
      object: "text_completion",
      created: meta.created,
      model: meta.name,
      choices: [],
      usage: usageOf(results),
    });
  }
}

async function textCompletion(c: AppContext, deps: AppDeps): Promise<Response> {
  const body = parseBody(completionRequestSchema, await readJson(c));
  checkListLength(body.prompt, deps.runtime.config.server.max_prompts, "prompt", "max_prompts");
  const session = await openSession(c, deps, body.model, body.keep_alive, "text completions");
  const model = textModelOf(session, "text completions");
  const prompts = typeof body.prompt === "string" ? [body.prompt] : body.prompt;
  const meta = {
    id: newId("cmpl"),
    created: unixSeconds(),
    name: body.model,
    prompts,
    maxTokens: body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS,
  };

  if (body.stream)
    return streamSession(c, deps, session, (events) => streamCompletions(deps, events, body, session, model, meta));

  const results = await within(session, () =>
    completeEach(model, prompts, () =>
      generationOptions(
        body,
        meta.maxTokens,
        session.signal,
        deps.runtime.config.server,
        deps.runtime.config.cache.prompt_cache,
      ),
    ),
  );
  return jsonResponse(c, {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.name,
    choices: results.map((result, index) => ({
      index,
      text: body.echo ? `${prompts[index]}${result.text}` : result.text,
      logprobs: null,
      finish_reason: finishReasonOf(result, session, deps),
    })),
    usage: usageOf(results),
  });
}

/** OpenAI's base64 encoding: the little-endian float32 bytes of the vector. */
function base64Vector(vector: number[]): string {
  const floats = Float32Array.from(vector);
  return Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString("base64");
}

async function embeddings(c: AppContext, deps: AppDeps): Promise<Response> {
  const body = parseBody(embeddingRequestSchema, await readJson(c));
  checkListLength(body.input, deps.runtime.config.server.max_embedding_inputs, "input", "max_embedding_inputs");
  const session = await openSession(c, deps, body.model, body.keep_alive, "embeddings");
  const model = textModelOf(session, "embeddings");
  const inputs = typeof body.input === "string" ? [body.input] : body.input;
  const options: EmbedOptions = { inputParam: "input" };
  if (body.truncate_prompt_tokens != null) options.truncatePromptTokens = body.truncate_prompt_tokens;
  const result = await within(session, () => model.embed(inputs, session.signal, options));
  const encode = body.encoding_format === "base64" ? base64Vector : (v: number[]) => v;
  return jsonResponse(c, {
    object: "list",
    data: result.embeddings.map((vector, index) => ({ object: "embedding", index, embedding: encode(vector) })),
    model: body.model,
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  });
}

/** A model as OpenAI lists it: `id` is its shortest unambiguous name (what clients send back), `file` its path. */
function modelObject(model: ModelDescriptor, names: Map<string, string>, loadedKeys: Set<string>) {
  return {
    id: names.get(model.key) ?? model.name,
    file: model.name,
    object: "model",
    created: Math.floor(model.fingerprint.mtimeMs / 1000),
    owned_by: "inferno",
    format: model.format,
    size_bytes: model.fingerprint.size,
    loaded: loadedKeys.has(model.key),
  };
}

function loadedKeys(deps: AppDeps): Set<string> {
  return new Set(
    deps.runtime.cache
      .loadedModels()
      .filter((m) => m.state === "ready")
      .map((m) => m.key),
  );
}

export function openaiRoutes(deps: AppDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.get("/v1/models", async (c) => {
    const [models, names] = await Promise.all([deps.runtime.models.list(), deps.runtime.models.shortNames()]);
    const loaded = loadedKeys(deps);
    return c.json({ object: "list", data: models.map((m) => modelObject(m, names, loaded)) });
  });
  routes.get("/v1/models/:name{.+}", async (c) => {
    const model = await deps.runtime.models.resolve(c.req.param("name"));
    return c.json(modelObject(model, await deps.runtime.models.shortNames(), loadedKeys(deps)));
  });
  routes.post("/v1/chat/completions", (c) => chatCompletion(c, deps));
  routes.post("/v1/completions", (c) => textCompletion(c, deps));
  routes.post("/v1/embeddings", (c) => embeddings(c, deps));
  return routes;
}
