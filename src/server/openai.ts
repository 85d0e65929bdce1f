/**
 * The OpenAI-compatible routes: models, chat completions, text completions (both streaming as server-sent events) and
 * embeddings. Every model use goes through a session: queue slot + cache lease, held exactly while the model works.
 */
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import type { ChatMessage, FinishReason, GenerationOptions, GenerationResult, TextModel } from "../backends/types.js";
import { Aborted } from "../errors/index.js";
import type { ModelDescriptor } from "../models/types.js";
import { type AppContext, type AppDeps, type AppEnv, readJson } from "./context.js";
import {
  type ChatRequest,
  chatRequestSchema,
  type CompletionRequest,
  completionRequestSchema,
  embeddingRequestSchema,
  parseBody,
} from "./schemas.js";
import { type ModelSession, openSession, type SseWriter, streamSession, textModelOf, within } from "./session.js";

/** OpenAI's legacy completions endpoint stops after 16 tokens unless told otherwise; clients expect that. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

type OpenAIFinishReason = "stop" | "length";

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

const unixSeconds = () => Math.floor(Date.now() / 1000);
const newId = (prefix: string) => `${prefix}-${randomUUID().replaceAll("-", "").slice(0, 24)}`;

function usageOf(results: GenerationResult[]): Usage {
  const prompt = results.reduce((sum, r) => sum + r.usage.promptTokens, 0);
  const completion = results.reduce((sum, r) => sum + r.usage.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/**
 * OpenAI has no "aborted" finish: a generation cut short by the client leaving is never seen, and one cut short by
 * shutdown is reported as an error rather than passed off as complete.
 */
function finishReasonOf(reason: FinishReason, session: ModelSession, deps: AppDeps): OpenAIFinishReason {
  if (reason !== "abort") return reason;
  deps.metrics.generationAborted();
  throw new Aborted("generation aborted: the request was cancelled or the server is shutting down", {
    cause: session.signal.reason,
  });
}

function generationOptions(
  body: Pick<ChatRequest, "temperature" | "top_p" | "seed" | "stop">,
  maxTokens: number | null | undefined,
  signal: AbortSignal,
): GenerationOptions {
  const options: GenerationOptions = { signal };
  if (maxTokens != null) options.maxTokens = maxTokens;
  if (body.temperature != null) options.temperature = body.temperature;
  if (body.top_p != null) options.topP = body.top_p;
  if (body.seed != null) options.seed = body.seed;
  if (body.stop != null) options.stop = typeof body.stop === "string" ? [body.stop] : body.stop;
  return options;
}

function chatMessages(body: ChatRequest): ChatMessage[] {
  return body.messages.map((m) => ({
    // Newer OpenAI clients send instructions as "developer"; chat templates know them as "system".
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string" ? m.content : m.content.map((part) => part.text).join(""),
  }));
}

function includeUsage(body: Pick<ChatRequest, "stream_options">): boolean {
  return body.stream_options?.include_usage === true;
}

async function chatCompletion(c: AppContext, deps: AppDeps): Promise<Response> {
  const body = parseBody(chatRequestSchema, await readJson(c));
  const session = await openSession(c, deps, body.model, body.keep_alive, "chat completions");
  const model = textModelOf(session, "chat completions");
  const id = newId("chatcmpl");
  const created = unixSeconds();
  const name = session.lease.descriptor.name;
  const messages = chatMessages(body);
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;

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
        ...generationOptions(body, maxTokens, session.signal),
        onText: (text) => events.send(chunk({ content: text }, null)),
      });
      events.send(chunk({}, finishReasonOf(result.finishReason, session, deps)));
      if (includeUsage(body)) {
        events.send({ id, object: "chat.completion.chunk", created, model: name, choices: [], usage: usageOf([result]) });
      }
    });
  }

  const result = await within(session, () => model.chat(messages, generationOptions(body, maxTokens, session.signal)));
  return c.json({
    id,
    object: "chat.completion",
    created,
    model: name,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: result.text, refusal: null },
        logprobs: null,
        finish_reason: finishReasonOf(result.finishReason, session, deps),
      },
    ],
    usage: usageOf([result]),
  });
}

/** Generates one completion per prompt, in order (the model runs them one after another anyway). */
async function completeEach(
  model: TextModel,
  prompts: string[],
  options: (index: number) => GenerationOptions,
): Promise<GenerationResult[]> {
  const results: GenerationResult[] = [];
  for (const [index, prompt] of prompts.entries()) results.push(await model.complete(prompt, options(index)));
  return results;
}

async function streamCompletions(
  deps: AppDeps,
  events: SseWriter,
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
      ...generationOptions(body, meta.maxTokens, session.signal),
      onText: (text) => events.send(chunk(index, text, null)),
    };
  });
  for (const [index, result] of results.entries()) {
    events.send(chunk(index, "", finishReasonOf(result.finishReason, session, deps)));
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
  const session = await openSession(c, deps, body.model, body.keep_alive, "text completions");
  const model = textModelOf(session, "text completions");
  const prompts = typeof body.prompt === "string" ? [body.prompt] : body.prompt;
  const meta = {
    id: newId("cmpl"),
    created: unixSeconds(),
    name: session.lease.descriptor.name,
    prompts,
    maxTokens: body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS,
  };

  if (body.stream) return streamSession(c, deps, session, (events) => streamCompletions(deps, events, body, session, model, meta));

  const results = await within(session, () =>
    completeEach(model, prompts, () => generationOptions(body, meta.maxTokens, session.signal)),
  );
  return c.json({
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.name,
    choices: results.map((result, index) => ({
      index,
      text: body.echo ? `${prompts[index]}${result.text}` : result.text,
      logprobs: null,
      finish_reason: finishReasonOf(result.finishReason, session, deps),
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
  const session = await openSession(c, deps, body.model, body.keep_alive, "embeddings");
  const model = textModelOf(session, "embeddings");
  const inputs = typeof body.input === "string" ? [body.input] : body.input;
  const result = await within(session, () => model.embed(inputs, session.signal));
  const encode = body.encoding_format === "base64" ? base64Vector : (v: number[]) => v;
  return c.json({
    object: "list",
    data: result.embeddings.map((vector, index) => ({ object: "embedding", index, embedding: encode(vector) })),
    model: session.lease.descriptor.name,
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  });
}

function modelObject(model: ModelDescriptor, loadedKeys: Set<string>) {
  return {
    id: model.name,
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
    const models = await deps.runtime.models.list();
    const loaded = loadedKeys(deps);
    return c.json({ object: "list", data: models.map((m) => modelObject(m, loaded)) });
  });
  routes.get("/v1/models/:name{.+}", async (c) => {
    const model = await deps.runtime.models.resolve(c.req.param("name"));
    return c.json(modelObject(model, loadedKeys(deps)));
  });
  routes.post("/v1/chat/completions", (c) => chatCompletion(c, deps));
  routes.post("/v1/completions", (c) => textCompletion(c, deps));
  routes.post("/v1/embeddings", (c) => embeddings(c, deps));
  return routes;
}
