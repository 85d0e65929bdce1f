/**
 * The OpenAI-compatible routes: models, chat completions, text completions (both streaming as server-sent events) and
 * embeddings. Every model use goes through a session: queue slot + cache lease, held exactly while the model works.
 */
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import { checkChat } from "../backends/common.js";
import type {
  ChatMessage,
  ChatOptions,
  EmbedOptions,
  GenerationResult,
  JsonSchema,
  OutputFormat,
  ToolCall,
  ToolDefinition,
} from "../backends/types.js";
import { ModelNotFound } from "../errors/index.js";
import type { ModelDescriptor } from "../models/types.js";
import {
  type ChatRequest,
  chatRequestSchema,
  checkListLength,
  type CompletionRequest,
  completionRequestSchema,
  embeddingRequestSchema,
  parseBody,
  type SamplingFields,
} from "./schemas.js";
import type { FleetModel } from "./ports.js";
import { type AppContext, type AppDeps, type AppEnv, jsonResponse, readBody } from "./context.js";
import {
  type Dialect,
  dialectRoute,
  type Finished,
  type GenerationEvent,
  generationOptions,
  type GenerationRequest,
  type Reply,
  SSE_FRAMING,
  type Turn,
  withTextModel,
} from "./generation.js";
import type { KeepAlive } from "./keep-alive.js";

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

function usageOf(results: readonly GenerationResult[]): Usage {
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

type TextContent = string | Array<{ text: string }>;

/** A message's content as one text: a string, or its text parts joined (OpenAI chat and Responses alike). */
export function textOf(content: TextContent): string {
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

/** A function tool as the backend takes it (OpenAI chat nests it in `function`; Responses does not). */
export function toolDefinition(tool: {
  name: string;
  description?: string | null | undefined;
  parameters?: JsonSchema | null | undefined;
}): ToolDefinition {
  return {
    name: tool.name,
    ...(tool.description ? { description: tool.description } : {}),
    ...(tool.parameters ? { parameters: tool.parameters } : {}),
  };
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
    options.tools = body.tools.map(({ function: f }) => toolDefinition(f));
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

/** What every OpenAI-style body (chat and text completions, Responses) says the same way. */
type OpenAIBody = SamplingFields & { model: string; keep_alive?: KeepAlive | undefined; stream?: boolean | null };

/**
 * The request an OpenAI-style body asks for: streamed only when it says `stream: true`, its sampling fields as the
 * options with `maxTokens` (see `generationOptions`), then the dialect's own options (`extra`: tools, format,
 * truncation).
 */
export function openaiGeneration(
  deps: AppDeps,
  body: OpenAIBody,
  task: string,
  turns: Turn[],
  maxTokens: number | null | undefined,
  extra: GenerationRequest["options"] = {},
): GenerationRequest {
  const { server, cache } = deps.runtime.config;
  return {
    model: body.model,
    keepAlive: body.keep_alive,
    task,
    stream: body.stream === true,
    turns,
    options: { ...generationOptions(body, maxTokens, server, cache.prompt_cache), ...extra },
  };
}

/** Parses a chat completion request: checked whole (tools, schemas, tool messages) before any model is used. */
const chatCompletion: Dialect = (input, deps) => {
  const body = parseBody(chatRequestSchema, input);
  const { server } = deps.runtime.config;
  checkListLength(body.messages, server.max_messages, "messages", "max_messages");
  const messages = chatMessages(body);
  const chat = chatOptions(body);
  checkChat(messages, chat);
  const turns = [{ messages, promptParam: "messages" }];
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  return { request: openaiGeneration(deps, body, "chat completions", turns, maxTokens, chat), reply: chatReply(body) };
};

/** A chat completion as OpenAI sends it: `chat.completion`, or `chat.completion.chunk` events. */
function chatReply(body: ChatRequest): Reply {
  const id = newId("chatcmpl");
  const created = unixSeconds();
  // Replies name the model as the client asked for it.
  const name = body.model;
  const chunk = (delta: object, finish: OpenAIFinishReason | null) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model: name,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  return {
    framing: SSE_FRAMING,
    event(event, send) {
      if (event.type === "start") send(chunk({ role: "assistant", content: "" }, null));
      else if (event.type === "text") send(chunk({ content: event.text }, null));
      else {
        const result = event.results[0] as Finished;
        // Calls are sent whole once generated (their arguments must be complete to validate), one delta each.
        for (const [index, call] of openaiToolCalls(result.toolCalls ?? []).entries()) {
          send(chunk({ tool_calls: [{ index, ...call }] }, null));
        }
        send(chunk({}, result.finishReason));
        if (includeUsage(body)) {
          send({
            id,
            object: "chat.completion.chunk",
            created,
            model: name,
            choices: [],
            usage: usageOf(event.results),
          });
        }
      }
    },
    body({ results }) {
      const result = results[0] as Finished;
      const toolCalls = result.toolCalls ?? [];
      return {
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
            finish_reason: result.finishReason,
          },
        ],
        usage: usageOf(results),
      };
    },
  };
}

function includeUsage(body: Pick<ChatRequest, "stream_options">): boolean {
  return body.stream_options?.include_usage === true;
}

/** Parses a text completion request: one turn per prompt, generated in order (the model runs them one by one anyway). */
const textCompletion: Dialect = (input, deps) => {
  const body = parseBody(completionRequestSchema, input);
  const { server } = deps.runtime.config;
  checkListLength(body.prompt, server.max_prompts, "prompt", "max_prompts");
  const prompts = typeof body.prompt === "string" ? [body.prompt] : body.prompt;
  // A list's prompts are named by index in a context_length_exceeded error.
  const turns = prompts.map((prompt, index) => ({
    prompt,
    promptParam: prompts.length > 1 ? `prompt[${index}]` : "prompt",
  }));
  const maxTokens = body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS;
  return {
    request: openaiGeneration(deps, body, "text completions", turns, maxTokens),
    reply: completionReply(body, prompts),
  };
};

/** Text completions as OpenAI sends them: `text_completion`, whole or as events. */
function completionReply(body: CompletionRequest, prompts: string[]): Reply {
  const id = newId("cmpl");
  const created = unixSeconds();
  const name = body.model;
  const chunk = (index: number, text: string, finish: OpenAIFinishReason | null) => ({
    id,
    object: "text_completion",
    created,
    model: name,
    choices: [{ index, text, logprobs: null, finish_reason: finish }],
  });
  return {
    framing: SSE_FRAMING,
    event(event: GenerationEvent, send) {
      if (event.type === "start") {
        if (body.echo) send(chunk(event.turn, prompts[event.turn] ?? "", null));
      } else if (event.type === "text") send(chunk(event.turn, event.text, null));
      else {
        for (const [index, result] of event.results.entries()) send(chunk(index, "", result.finishReason));
        if (includeUsage(body)) {
          send({ id, object: "text_completion", created, model: name, choices: [], usage: usageOf(event.results) });
        }
      }
    },
    body: ({ results }) => ({
      id,
      object: "text_completion",
      created,
      model: name,
      choices: results.map((result, index) => ({
        index,
        text: body.echo ? `${prompts[index]}${result.text}` : result.text,
        logprobs: null,
        finish_reason: result.finishReason,
      })),
      usage: usageOf(results),
    }),
  };
}

/** OpenAI's base64 encoding: the little-endian float32 bytes of the vector. */
function base64Vector(vector: number[]): string {
  const floats = Float32Array.from(vector);
  return Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString("base64");
}

async function embeddings(c: AppContext, deps: AppDeps): Promise<Response> {
  const body = await readBody(c, embeddingRequestSchema);
  checkListLength(body.input, deps.runtime.config.server.max_embedding_inputs, "input", "max_embedding_inputs");
  const inputs = typeof body.input === "string" ? [body.input] : body.input;
  const options: EmbedOptions = { inputParam: "input" };
  if (body.truncate_prompt_tokens != null) options.truncatePromptTokens = body.truncate_prompt_tokens;
  const request = { model: body.model, keepAlive: body.keep_alive, task: "embeddings" };
  const result = await withTextModel(c, deps, request, (model, signal) => model.embed(inputs, signal, options));
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
    id: names.get(model.name) ?? model.name,
    file: model.name,
    object: "model",
    created: Math.floor(model.fingerprint.mtimeMs / 1000),
    owned_by: "inferno",
    format: model.format,
    size_bytes: model.fingerprint.size,
    loaded: loadedKeys.has(model.key),
  };
}

/** A model only other nodes of the fleet have (by the name they publish). */
function fleetModelObject(m: FleetModel) {
  const { id, ...rest } = m;
  return { id, file: m.name, object: "model", created: 0, owned_by: "inferno", ...rest, fleet: true };
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
    const data: object[] = models.map((m) => modelObject(m, names, loaded));
    // In a fleet, also the models only other nodes have: any node serves them (forwarded).
    const here = new Set(models.map((m) => m.name));
    for (const m of deps.runtime.fleet?.models() ?? []) if (!here.has(m.name)) data.push(fleetModelObject(m));
    return c.json({ object: "list", data });
  });
  routes.get("/v1/models/:name{.+}", async (c) => {
    const name = c.req.param("name");
    try {
      const model = await deps.runtime.models.resolve(name);
      return c.json(modelObject(model, await deps.runtime.models.shortNames(), loadedKeys(deps)));
    } catch (error) {
      const elsewhere =
        error instanceof ModelNotFound && deps.runtime.fleet?.models().find((m) => m.name === name || m.id === name);
      if (elsewhere) return c.json(fleetModelObject(elsewhere));
      throw error;
    }
  });
  routes.post("/v1/chat/completions", dialectRoute(deps, chatCompletion));
  routes.post("/v1/completions", dialectRoute(deps, textCompletion));
  routes.post("/v1/embeddings", (c) => embeddings(c, deps));
  return routes;
}
