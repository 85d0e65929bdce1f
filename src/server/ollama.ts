/**
 * The Ollama API (`/api/*` and `HEAD /`), for clients that speak only Ollama's protocol: the `ollama` npm client, Open
 * WebUI's Ollama connection, Continue's ollama provider. The same cache, leases and queue as the OpenAI routes serve it:
 * every model use goes through a session. Streams are JSON lines (Ollama's default; `stream: false` gives one object),
 * durations are nanoseconds, errors are `{"error": "message"}` (the one error mapper, in Ollama's dialect).
 *
 * Names: Ollama clients send `NAME:TAG`. A file `NAME.gguf` in the models folder is `NAME:latest`, and `/api/tags` lists
 * it so; a name without a tag is resolved as Inferno resolves any name. Only GGUF (text) models are served here: a
 * tensor (ONNX) model is refused with 400 before anything is loaded.
 */
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Hono } from "hono";
import { CHAT_FIELDS, checkChat, checkFormat, type FieldNames } from "../backends/chat-request.js";
import type {
  ChatMessage,
  ChatOptions,
  GenerationOptions,
  GenerationResult,
  TextModel,
  TokenUsage,
  ToolCall,
  ToolChoice,
} from "../backends/types.js";
import type { LoadedModelInfo } from "../cache/types.js";
import { BadRequest, NotImplemented } from "../errors/index.js";
import type { GgufMetadata, ModelDescriptor } from "../models/types.js";
import { boundedMaxTokens, checkListLength, type RequestLimits, truncateTo } from "./bounds.js";
import { type AppContext, type AppDeps, type AppEnv, readJson } from "./context.js";
import { type KeepAlive, requestKeepAlive } from "./keep-alive.js";
import {
  type ChatRequest,
  chatRequestSchema,
  embeddingsRequestSchema,
  embedRequestSchema,
  type GenerateRequest,
  generateRequestSchema,
  type OllamaOptions,
  showRequestSchema,
} from "./ollama-schemas.js";
import { parseBody } from "./schemas.js";
import {
  completedReason,
  type ModelSession,
  NDJSON_FRAMING,
  openSession,
  requireTextModel,
  streamSession,
  within,
} from "./session.js";

/** The tag of a plain model file: Ollama's default tag. */
const LATEST_TAG = ":latest";

/** Ollama reports every duration in nanoseconds. */
type Nanoseconds = number;

const now = () => new Date().toISOString();

/**
 * The name Ollama clients see for a model: its shortest unambiguous name (what /v1/models lists), tagged `latest`
 * (`tiny:latest` for `llama/tiny.gguf`), which resolves back to it.
 */
function ollamaName(shortName: string): string {
  return `${shortName}${LATEST_TAG}`;
}

/**
 * Resolves a name as an Ollama client sends it (`NAME`, `NAME:latest`) to a GGUF model, or refuses a tensor model —
 * before any load, so a refused request never loads or evicts anything.
 */
function resolveTextModel(deps: AppDeps, requested: string, task: string): Promise<ModelDescriptor> {
  const name = requested.endsWith(LATEST_TAG) ? requested.slice(0, -LATEST_TAG.length) : requested;
  return requireTextModel(deps, name, task);
}

/**
 * A stable identifier of one version of a model file (sha256 of its path, size and modification time): what Ollama
 * clients use a digest for — telling models and versions apart — without hashing gigabytes on every listing.
 */
function digestOf(descriptor: ModelDescriptor): string {
  const { key, fingerprint } = descriptor;
  return createHash("sha256").update(`${key}\0${fingerprint.size}\0${fingerprint.mtimeMs}`).digest("hex");
}

/** A parameter count as Ollama writes it: `8B`, `8.2B`, `137M`, `1.1M`. */
function parameterSize(count: number): string {
  const units: Array<[number, string]> = [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [scale, unit] of units) if (count >= scale) return `${Number((count / scale).toFixed(1))}${unit}`;
  return String(count);
}

async function ggufMetadataOf(deps: AppDeps, descriptor: ModelDescriptor): Promise<GgufMetadata | null> {
  try {
    const metadata = await deps.runtime.models.metadata(descriptor);
    return metadata.format === "gguf" ? metadata : null;
  } catch {
    return null; // an unreadable header: listed without details; using it reports the error
  }
}

function details(metadata: GgufMetadata | null) {
  return {
    parent_model: "",
    format: "gguf",
    family: metadata?.architecture ?? "",
    families: metadata ? [metadata.architecture] : null,
    parameter_size: metadata ? parameterSize(metadata.parameterCount) : "",
    // llama.cpp's file type names (`MOSTLY_Q4_K_M`) as Ollama writes quantization levels (`Q4_K_M`).
    quantization_level: metadata ? metadata.quantization.replace(/^(MOSTLY|ALL)_/, "") : "",
  };
}

/** The GGUF models and the name each is listed by. */
async function listedModels(deps: AppDeps): Promise<Array<{ descriptor: ModelDescriptor; name: string }>> {
  const [models, shortNames] = await Promise.all([deps.runtime.models.list(), deps.runtime.models.shortNames()]);
  return models
    .filter((m) => m.format === "gguf")
    .map((descriptor) => ({ descriptor, name: ollamaName(shortNames.get(descriptor.key) ?? descriptor.name) }));
}

async function tags(c: AppContext, deps: AppDeps): Promise<Response> {
  const models = await listedModels(deps);
  const listed = await Promise.all(
    models.map(async ({ descriptor: m, name }) => ({
      name,
      model: name,
      modified_at: new Date(m.fingerprint.mtimeMs).toISOString(),
      size: m.fingerprint.size,
      digest: digestOf(m),
      details: details(await ggufMetadataOf(deps, m)),
    })),
  );
  return c.json({ models: listed });
}

async function runningModels(c: AppContext, deps: AppDeps): Promise<Response> {
  const ready = new Map<string, LoadedModelInfo>(
    deps.runtime.cache
      .loadedModels()
      .filter((m) => m.state === "ready")
      .map((m) => [m.key, m]),
  );
  const models = (await listedModels(deps)).filter(({ descriptor }) => ready.has(descriptor.key));
  const listed = await Promise.all(
    models.map(async ({ descriptor: m, name }) => {
      const info = ready.get(m.key) as LoadedModelInfo;
      return {
        name,
        model: name,
        size: info.memory_bytes,
        digest: digestOf(m),
        details: details(await ggufMetadataOf(deps, m)),
        // null while no unload is scheduled: in use, pinned, or kept forever.
        expires_at: info.expires_at,
        // Inferno measures a model's memory as one figure and does not tell VRAM apart.
        size_vram: 0,
        context_length: deps.runtime.config.backend.context_size,
      };
    }),
  );
  return c.json({ models: listed });
}

async function show(c: AppContext, deps: AppDeps): Promise<Response> {
  const body = parseBody(showRequestSchema, await readJson(c));
  const requested = body.model ?? body.name;
  if (requested === undefined) throw new BadRequest("model: expected a model name", { details: { param: "model" } });
  const descriptor = await resolveTextModel(deps, requested, "text generation");
  const metadata = await deps.runtime.models.metadata(descriptor);
  const contextSize = deps.runtime.config.backend.context_size;
  const modelInfo: Record<string, unknown> = {};
  if (metadata.format === "gguf") {
    const arch = metadata.architecture;
    Object.assign(modelInfo, {
      "general.architecture": arch,
      "general.parameter_count": metadata.parameterCount,
      ...(metadata.modelName !== undefined ? { "general.name": metadata.modelName } : {}),
      [`${arch}.context_length`]: metadata.contextLength,
      [`${arch}.embedding_length`]: metadata.embeddingLength,
      [`${arch}.block_count`]: metadata.blockCount,
      [`${arch}.attention.head_count`]: metadata.headCount,
      [`${arch}.attention.head_count_kv`]: metadata.headCountKv,
      [`${arch}.vocab_size`]: metadata.vocabularySize,
    });
  }
  return c.json({
    license: "",
    modelfile: `# Inferno serves this model from its models folder\nFROM ${descriptor.path}\nPARAMETER num_ctx ${contextSize}\n`,
    parameters: `num_ctx                        ${contextSize}`,
    template: "",
    system: "",
    details: details(metadata.format === "gguf" ? metadata : null),
    model_info: modelInfo,
    // Every GGUF model gets tools: through its chat template's own format, or Inferno's generic one.
    capabilities: ["completion", "tools", "embedding"],
    modified_at: new Date(descriptor.fingerprint.mtimeMs).toISOString(),
  });
}

/** Ollama's `options`, `format` and `truncate` as the backend's generation options. */
function generationOptions(
  request: GenerationRequest,
  signal: AbortSignal,
  limits: RequestLimits,
  promptCache: boolean,
): GenerationOptions {
  const mapped: GenerationOptions = {
    signal,
    ...truncateTo(request.truncate),
    ...(promptCache ? {} : { cachePrompt: false }),
  };
  if (request.format) mapped.format = request.format;
  const { options } = request;
  // num_predict ≤ 0 (-1 "infinite", -2 "fill the context") is no number: until the end token or a full context.
  const maxTokens = boundedMaxTokens(
    options?.num_predict != null && options.num_predict > 0 ? options.num_predict : undefined,
    limits,
  );
  if (maxTokens !== undefined) mapped.maxTokens = maxTokens;
  if (!options) return mapped;
  if (options.temperature != null) mapped.temperature = options.temperature;
  if (options.top_p != null) mapped.topP = options.top_p;
  if (options.top_k != null) mapped.topK = options.top_k;
  if (options.min_p != null) mapped.minP = options.min_p;
  if (options.presence_penalty != null) mapped.presencePenalty = options.presence_penalty;
  if (options.frequency_penalty != null) mapped.frequencyPenalty = options.frequency_penalty;
  if (options.seed != null) mapped.seed = options.seed;
  if (options.stop != null) mapped.stop = typeof options.stop === "string" ? [options.stop] : options.stop;
  return mapped;
}

/** What a request that uses a model has in common, Ollama-side. */
interface GenerationRequest {
  model: string;
  stream?: boolean | null | undefined;
  keep_alive?: KeepAlive | undefined;
  options?: OllamaOptions | null | undefined;
  format?: GenerationOptions["format"];
  truncate?: boolean | null | undefined;
}

/** How the reply of one route carries text (and tool calls): `response` for /api/generate, `message` for /api/chat. */
type TextField = (text: string, toolCalls?: ToolCall[]) => Record<string, unknown>;

const responseField: TextField = (text) => ({ response: text });

/** Ollama's tool calls: the arguments as an object. The id lets a client answer a call exactly (`tool_call_id`). */
function ollamaToolCalls(calls: ToolCall[]) {
  return calls.map((call, index) => ({
    id: call.id,
    function: { index, name: call.name, arguments: JSON.parse(call.arguments) as Record<string, unknown> },
  }));
}

const messageField: TextField = (text, toolCalls) => ({
  message: {
    role: "assistant",
    content: text,
    ...(toolCalls?.length ? { tool_calls: ollamaToolCalls(toolCalls) } : {}),
  },
});

/** Ollama reports a reply that ends in tool calls as a normal stop. */
function doneReason(reason: ReturnType<typeof completedReason>): "stop" | "length" {
  return reason === "tool_calls" ? "stop" : reason;
}

/**
 * Timings of one request in Ollama's fields: getting the model (queue slot and load), then the prompt until the first
 * text, then the rest.
 */
class RequestClock {
  private readonly started = performance.now();
  private loadDone = this.started;
  private firstText: number | null = null;

  loaded(): void {
    this.loadDone = performance.now();
  }

  text(): void {
    this.firstText ??= performance.now();
  }

  stats(usage: TokenUsage) {
    const end = performance.now();
    const firstText = this.firstText ?? end;
    const ns = (from: number, to: number): Nanoseconds => Math.round((to - from) * 1e6);
    return {
      total_duration: ns(this.started, end),
      load_duration: ns(this.started, this.loadDone),
      // As Ollama counts it: the prompt tokens evaluated, not those the prompt cache held.
      prompt_eval_count: usage.promptTokens - (usage.cachedPromptTokens ?? 0),
      prompt_eval_duration: ns(this.loadDone, firstText),
      eval_count: usage.completionTokens,
      eval_duration: ns(firstText, end),
    };
  }
}

/**
 * The empty request: Ollama's way to load a model without using it, or, with `keep_alive: 0`, to unload it. The
 * server's keep_alive bounds apply: when they keep the model loaded, it is a load. Returns what was done.
 */
async function loadOrUnload(
  c: AppContext,
  deps: AppDeps,
  descriptor: ModelDescriptor,
  requestedKeepAlive: KeepAlive | undefined,
): Promise<"load" | "unload"> {
  const keepAlive = requestKeepAlive(requestedKeepAlive, deps.runtime.config.server);
  if (keepAlive !== undefined && keepAlive !== "forever" && keepAlive.afterSeconds === 0) {
    await deps.runtime.cache.evict(descriptor.name);
    return "unload";
  }
  await deps.runtime.cache.load(descriptor.name, { keepAlive, signal: c.req.raw.signal });
  return "load";
}

/** /api/generate and /api/chat without a prompt: load or unload, answered with `done_reason` "load" or "unload". */
async function emptyGeneration(
  c: AppContext,
  deps: AppDeps,
  request: GenerationRequest,
  descriptor: ModelDescriptor,
  field: TextField,
): Promise<Response> {
  const reason = await loadOrUnload(c, deps, descriptor, request.keep_alive);
  return c.json({ model: request.model, created_at: now(), ...field(""), done: true, done_reason: reason });
}

/**
 * Runs one generation for /api/generate or /api/chat: a session (queue slot + lease) for the model, then either one JSON
 * reply or JSON lines — a line per piece of text, and a last line with `done: true`, the reason and the timings.
 */
async function generate(
  c: AppContext,
  deps: AppDeps,
  request: GenerationRequest,
  descriptor: ModelDescriptor,
  field: TextField,
  promptParam: string,
  run: (model: TextModel, options: GenerationOptions) => Promise<GenerationResult>,
): Promise<Response> {
  const clock = new RequestClock();
  const session = await openSession(c, deps, descriptor.name, request.keep_alive, "text generation");
  clock.loaded();
  const model = session.lease.model as TextModel; // resolveTextModel admitted GGUF models only
  const options = {
    ...generationOptions(request, session.signal, deps.runtime.config.server, deps.runtime.config.cache.prompt_cache),
    promptParam,
  };
  const final = (text: string, result: GenerationResult, s: ModelSession, toolCalls?: ToolCall[]) => ({
    model: request.model,
    created_at: now(),
    ...field(text, toolCalls),
    done: true,
    done_reason: doneReason(completedReason(result, s, deps)),
    ...clock.stats(result.usage),
  });

  if (request.stream === false) {
    const result = await within(session, () => run(model, { ...options, onText: () => clock.text() }));
    return c.json(final(result.text, result, session, result.toolCalls));
  }
  return streamSession(
    c,
    deps,
    session,
    async (events) => {
      const result = await run(model, {
        ...options,
        onText: (text) => {
          clock.text();
          events.send({ model: request.model, created_at: now(), ...field(text), done: false });
        },
      });
      if (result.toolCalls?.length) {
        events.send({ model: request.model, created_at: now(), ...field("", result.toolCalls), done: false });
      }
      events.send(final("", result, session));
    },
    NDJSON_FRAMING,
  );
}

async function generateRoute(
  c: AppContext,
  deps: AppDeps,
  schema: ReturnType<typeof generateRequestSchema>,
): Promise<Response> {
  const body: GenerateRequest = parseBody(schema, await readJson(c));
  checkFormat(body.format, "format");
  const descriptor = await resolveTextModel(deps, body.model, "text generation");
  if (body.prompt === undefined || body.prompt === "") return emptyGeneration(c, deps, body, descriptor, responseField);
  const prompt = body.prompt;
  if (body.raw) {
    if (body.system)
      throw new BadRequest("system: not used with raw: true (the prompt is sent as it is)", {
        details: { param: "system" },
      });
    return generate(c, deps, body, descriptor, responseField, "prompt", (model, options) =>
      model.complete(prompt, options),
    );
  }
  // Without raw, Ollama puts the prompt into the model's template: a one-turn chat.
  const messages: ChatMessage[] = [
    ...(body.system ? [{ role: "system" as const, content: body.system }] : []),
    { role: "user", content: prompt },
  ];
  return generate(c, deps, body, descriptor, responseField, "prompt", (model, options) =>
    model.chat(messages, options),
  );
}

/** Error paths in /api/chat's spelling: OpenAI's for messages, tools and tool_choice; the schema is `format` itself. */
const OLLAMA_CHAT_FIELDS: FieldNames = { ...CHAT_FIELDS, format: "format", formatSchema: "format" };

/** Ollama's chat messages as the backend's: tool calls with ids (made up where the client sent none), tool results. */
function chatHistory(messages: NonNullable<ChatRequest["messages"]>): ChatMessage[] {
  return messages.map((m, index): ChatMessage => {
    const content = m.content ?? "";
    if (m.role === "tool") {
      return {
        role: "tool",
        content,
        ...(m.tool_call_id ? { toolCallId: m.tool_call_id } : {}),
        ...(m.tool_name ? { name: m.tool_name } : {}),
      };
    }
    if (m.role !== "assistant") return { role: m.role, content };
    const toolCalls = (m.tool_calls ?? []).map((call, i) => ({
      id: call.id ?? `call_${index}_${i}`,
      name: call.function.name,
      arguments:
        typeof call.function.arguments === "string"
          ? call.function.arguments
          : JSON.stringify(call.function.arguments ?? {}),
    }));
    return toolCalls.length > 0
      ? { role: "assistant", content: m.content ?? null, toolCalls }
      : { role: "assistant", content };
  });
}

function chatOptions(body: ChatRequest): Omit<ChatOptions, keyof GenerationOptions> {
  const tools = (body.tools ?? []).map((t) => ({
    name: t.function.name,
    ...(t.function.description !== undefined ? { description: t.function.description } : {}),
    ...(t.function.parameters !== undefined ? { parameters: t.function.parameters } : {}),
  }));
  const choice = body.tool_choice;
  const toolChoice: ToolChoice | undefined =
    choice == null ? undefined : typeof choice === "string" ? choice : { name: choice.function.name };
  return { ...(tools.length > 0 ? { tools } : {}), ...(toolChoice ? { toolChoice } : {}) };
}

async function chatRoute(
  c: AppContext,
  deps: AppDeps,
  schema: ReturnType<typeof chatRequestSchema>,
): Promise<Response> {
  const body: ChatRequest = parseBody(schema, await readJson(c));
  checkListLength(body.messages, deps.runtime.config.server.max_messages, "messages", "max_messages");
  const history = chatHistory(body.messages ?? []);
  const tools = chatOptions(body);
  // Tools, tool_choice, the format's schema and the tool messages are checked before anything is loaded.
  checkChat(history, { ...tools, ...(body.format ? { format: body.format } : {}) }, OLLAMA_CHAT_FIELDS);
  const descriptor = await resolveTextModel(deps, body.model, "chat");
  if (history.length === 0) return emptyGeneration(c, deps, body, descriptor, messageField);
  return generate(c, deps, body, descriptor, messageField, "messages", (model, options) =>
    model.chat(history, { ...options, ...tools }),
  );
}

/** Unit length, as Ollama returns /api/embed vectors (cosine similarity becomes a dot product). */
function normalized(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
  return norm === 0 ? vector : vector.map((x) => x / norm);
}

async function embedWith(
  c: AppContext,
  deps: AppDeps,
  request: { model: string; keep_alive?: KeepAlive | undefined; truncate?: boolean | null | undefined },
  inputs: string[],
  param: string,
) {
  const descriptor = await resolveTextModel(deps, request.model, "embeddings");
  if (inputs.length === 0) {
    await loadOrUnload(c, deps, descriptor, request.keep_alive);
    return null;
  }
  const clock = new RequestClock();
  const session = await openSession(c, deps, descriptor.name, request.keep_alive, "embeddings");
  clock.loaded();
  const model = session.lease.model as TextModel;
  const result = await within(session, () =>
    model.embed(inputs, session.signal, { inputParam: param, ...truncateTo(request.truncate) }),
  );
  return { result, clock };
}

async function embed(c: AppContext, deps: AppDeps, schema: ReturnType<typeof embedRequestSchema>): Promise<Response> {
  const body = parseBody(schema, await readJson(c));
  checkListLength(body.input, deps.runtime.config.server.max_embedding_inputs, "input", "max_embedding_inputs");
  const inputs =
    body.input === undefined
      ? []
      : typeof body.input === "string"
        ? body.input === ""
          ? []
          : [body.input]
        : body.input;
  const done = await embedWith(c, deps, body, inputs, "input");
  if (done === null) return c.json({ model: body.model, embeddings: [] });
  const { result, clock } = done;
  const stats = clock.stats({ promptTokens: result.promptTokens, completionTokens: 0 });
  return c.json({
    model: body.model,
    embeddings: result.embeddings.map(normalized),
    total_duration: stats.total_duration,
    load_duration: stats.load_duration,
    prompt_eval_count: result.promptTokens,
  });
}

/** The older single-input route: raw (not normalized) vectors, as Ollama returns them there. */
async function embeddings(
  c: AppContext,
  deps: AppDeps,
  schema: ReturnType<typeof embeddingsRequestSchema>,
): Promise<Response> {
  const body = parseBody(schema, await readJson(c));
  const inputs = body.prompt === undefined || body.prompt === "" ? [] : [body.prompt];
  const done = await embedWith(c, deps, body, inputs, "prompt");
  return c.json({ embedding: done?.result.embeddings[0] ?? [] });
}

/** Ollama's model management, which Inferno leaves to the file system. */
function notImplemented(deps: AppDeps, action: string): never {
  throw new NotImplemented(
    `Inferno does not ${action} models: it serves the GGUF files in its models folder (${deps.runtime.config.models_dir}); put a .gguf file there to add a model`,
  );
}

export function ollamaRoutes(deps: AppDeps): Hono<AppEnv> {
  const { backend } = deps.runtime.config;
  const schemas = {
    generate: generateRequestSchema(backend),
    chat: chatRequestSchema(backend),
    embed: embedRequestSchema(backend),
    embeddings: embeddingsRequestSchema(backend),
  };
  const routes = new Hono<AppEnv>();

  // Ollama clients check that a server answers with `HEAD /`. GET / is left to other routes (hono answers HEAD with
  // the GET handlers, so this handler sees both and passes GET on).
  routes.get("/", async (c, next) => {
    if (c.req.method === "HEAD") return c.body(null, 200);
    await next();
  });
  routes.get("/api/version", (c) => c.json({ version: deps.version }));
  routes.get("/api/tags", (c) => tags(c, deps));
  routes.get("/api/ps", (c) => runningModels(c, deps));
  routes.post("/api/show", (c) => show(c, deps));
  routes.post("/api/generate", (c) => generateRoute(c, deps, schemas.generate));
  routes.post("/api/chat", (c) => chatRoute(c, deps, schemas.chat));
  routes.post("/api/embed", (c) => embed(c, deps, schemas.embed));
  routes.post("/api/embeddings", (c) => embeddings(c, deps, schemas.embeddings));

  routes.post("/api/pull", () => notImplemented(deps, "pull (download)"));
  routes.post("/api/push", () => notImplemented(deps, "push (upload)"));
  routes.post("/api/create", () => notImplemented(deps, "create"));
  routes.post("/api/copy", () => notImplemented(deps, "copy"));
  routes.delete("/api/delete", () => notImplemented(deps, "delete"));
  // HEAD requests reach GET handlers (hono), so GET answers Ollama's `HEAD /api/blobs/:digest`.
  routes.on(["POST", "GET"], "/api/blobs/:digest", () => notImplemented(deps, "store blobs for creating"));
  return routes;
}
