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
import { CHAT_FIELDS, checkChat, checkFormat, type FieldNames } from "../backends/common.js";
import {
  type ChatMessage,
  type ChatOptions,
  type GenerationOptions,
  requireCapability,
  type TokenUsage,
  type ToolCall,
  type ToolChoice,
} from "../backends/types.js";
import { BadRequest, NotImplemented } from "../errors/index.js";
import { differing, type LoadSettings, parseVariant, withLoadSettings } from "../models/load-settings.js";
import { LATEST_TAG, variantOf } from "../models/manager.js";
import type { GgufMetadata, ModelDescriptor } from "../models/types.js";
import { checkListLength, type RequestLimits, type SamplingFields, truncateTo } from "./schemas.js";
import { type AppContext, type AppDeps, type AppEnv, readBody } from "./context.js";
import {
  type Done,
  type Finished,
  generate,
  generationOptions,
  NDJSON_FRAMING,
  type GenerationRequest,
  type Reply,
  type Timing,
  type Turn,
  withTextModel,
} from "./generation.js";
import { type KeepAlive, requestKeepAlive } from "./keep-alive.js";
import {
  type ChatRequest,
  chatRequestSchema,
  type EmbeddingsRequest,
  embeddingsRequestSchema,
  type EmbedRequest,
  embedRequestSchema,
  type GenerateRequest,
  generateRequestSchema,
  type OllamaOptions,
  showRequestSchema,
  unknownOptions,
} from "./ollama-schemas.js";

/** Ollama reports every duration in nanoseconds. */
type Nanoseconds = number;

const now = () => new Date().toISOString();

/**
 * The name Ollama clients see for a model: a model of Ollama's store by its own name (`phi3:mini`,
 * `namespace/model:tag`); another by its shortest unambiguous name (what /v1/models lists), tagged `latest` when it
 * has no tag (`tiny:latest` for `llama/tiny.gguf`). Each resolves back to the model.
 */
function ollamaName(descriptor: Pick<ModelDescriptor, "name" | "store">, shortNames: Map<string, string>): string {
  if (descriptor.store === "ollama") return descriptor.name;
  const short = shortNames.get(descriptor.name) ?? descriptor.name;
  const last = short.slice(short.lastIndexOf("/") + 1);
  return last.includes(":") ? short : `${short}${LATEST_TAG}`;
}

/**
 * Resolves a name as an Ollama client sends it (`NAME`, `NAME:latest`) before anything else: an unknown name is a
 * 404 with nothing queued or loaded. A tensor model is refused by the generation's session (the cache checks before any
 * load), or with `requireCapability` by the requests that load, unload or describe a model without generating.
 */
function resolveModel(deps: AppDeps, requested: string): Promise<ModelDescriptor> {
  // The manager's one resolver takes NAME:latest, store tags, presets and aliases alike.
  return deps.runtime.models.resolve(requested);
}

/**
 * The variant of `descriptor` a request's load options ask for (`num_ctx`, `num_thread`, `num_gpu`): the model itself
 * when they match how it loads, else a cache entry of its own (models/load-settings.ts). Unknown options are logged.
 */
function requestedVariant(
  deps: AppDeps,
  descriptor: ModelDescriptor,
  options: OllamaOptions | null | undefined,
): ModelDescriptor {
  const ignored = unknownOptions(options);
  if (ignored.length > 0)
    deps.runtime.logger.debug({ model: descriptor.name, options: ignored }, "unknown Ollama options ignored");
  if (!options) return descriptor;
  const { backend } = deps.runtime.config;
  const current = withLoadSettings(backend, descriptor.load);
  const gpuOff = backend.gpu === false || backend.gpu === "false";
  const asked: LoadSettings = {
    ...(options.num_ctx != null ? { context_size: options.num_ctx } : {}),
    ...(options.num_thread != null ? { threads: options.num_thread } : {}),
    ...(options.num_gpu != null && options.num_gpu >= 0 && !gpuOff ? { gpu_layers: options.num_gpu } : {}),
  };
  return variantOf(descriptor, differing(asked, current));
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
    .map((descriptor) => ({ descriptor, name: ollamaName(descriptor, shortNames) }));
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

/** One line per loaded model (per cache entry: a file, or a variant of it with its own context), named as it loaded. */
async function runningModels(c: AppContext, deps: AppDeps): Promise<Response> {
  const ready = deps.runtime.cache.loadedModels().filter((m) => m.state === "ready" && m.format === "gguf");
  const shortNames = await deps.runtime.models.shortNames();
  const listed = await Promise.all(
    ready.map(async (info) => {
      const { base, settings } = parseVariant(info.name);
      const m = await deps.runtime.models.resolve(base).catch(() => null);
      if (!m) return null;
      const name = ollamaName(m, shortNames);
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
        context_length: settings.context_size ?? m.load?.context_size ?? deps.runtime.config.backend.context_size,
      };
    }),
  );
  return c.json({ models: listed.filter((m) => m !== null) });
}

async function show(c: AppContext, deps: AppDeps): Promise<Response> {
  const body = await readBody(c, showRequestSchema);
  const requested = body.model ?? body.name;
  if (requested === undefined) throw new BadRequest("model: expected a model name", { details: { param: "model" } });
  const descriptor = await resolveModel(deps, requested);
  requireCapability(descriptor, "text", "text generation");
  const metadata = await deps.runtime.models.metadata(descriptor);
  const contextSize = descriptor.load?.context_size ?? deps.runtime.config.backend.context_size;
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
    // A Modelfile's Go TEMPLATE (run when it keeps to the subset Inferno runs) and a preset's or Modelfile's system.
    template: descriptor.defaults?.goTemplate ?? "",
    system: descriptor.defaults?.system ?? "",
    details: details(metadata.format === "gguf" ? metadata : null),
    model_info: modelInfo,
    // Every GGUF model gets tools: through its chat template's own format, or Inferno's generic one.
    capabilities: ["completion", "tools", "embedding"],
    modified_at: new Date(descriptor.fingerprint.mtimeMs).toISOString(),
  });
}

/** Ollama's `options`, `format` and `truncate` as the backend's generation options. */
function ollamaOptions(request: OllamaRequest, limits: RequestLimits, promptCache: boolean): GenerationOptions {
  const { options } = request;
  // num_predict ≤ 0 (-1 "infinite", -2 "fill the context") is no number: until the end token or a full context.
  const numPredict = options?.num_predict != null && options.num_predict > 0 ? options.num_predict : undefined;
  const mapped: GenerationOptions = {
    ...truncateTo(request.truncate),
    ...generationOptions(samplingOf(options), numPredict, limits, promptCache),
  };
  // Ollama's own penalty fields (1 is its "off"): node-llama-cpp's repeatPenalty.
  if (options?.repeat_penalty != null && options.repeat_penalty !== 1) mapped.repeatPenalty = options.repeat_penalty;
  if (options?.repeat_last_n != null) mapped.repeatLastN = options.repeat_last_n;
  if (request.format) mapped.format = request.format;
  return mapped;
}

/** The sampling options Ollama shares with OpenAI, by their common names. */
function samplingOf(options: OllamaOptions | null | undefined): SamplingFields {
  if (!options) return {};
  const { temperature, top_p, top_k, min_p, presence_penalty, frequency_penalty, seed, stop } = options;
  return { temperature, top_p, top_k, min_p, presence_penalty, frequency_penalty, seed, stop };
}

/** What a request that uses a model has in common, Ollama-side. */
interface OllamaRequest {
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
function doneReason(reason: Finished["finishReason"]): "stop" | "length" {
  return reason === "tool_calls" ? "stop" : reason;
}

const ns = (from: number, to: number): Nanoseconds => Math.round((to - from) * 1e6);

/**
 * Timings of one request in Ollama's fields: getting the model (queue slot and load), then the prompt until the first
 * text, then the rest.
 */
function durations(timing: Timing, usage: TokenUsage) {
  const firstText = timing.firstText ?? timing.ended;
  return {
    total_duration: ns(timing.started, timing.ended),
    load_duration: ns(timing.started, timing.loaded),
    // As Ollama counts it: the prompt tokens evaluated, not those the prompt cache held.
    prompt_eval_count: usage.promptTokens - (usage.cachedPromptTokens ?? 0),
    prompt_eval_duration: ns(timing.loaded, firstText),
    eval_count: usage.completionTokens,
    eval_duration: ns(firstText, timing.ended),
  };
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
  request: OllamaRequest,
  descriptor: ModelDescriptor,
  field: TextField,
  task = "text generation",
): Promise<Response> {
  requireCapability(descriptor, "text", task);
  const reason = await loadOrUnload(c, deps, descriptor, request.keep_alive);
  return c.json({ model: request.model, created_at: now(), ...field(""), done: true, done_reason: reason });
}

/**
 * One generation for /api/generate or /api/chat as Ollama answers it: one JSON reply, or JSON lines — a line per piece
 * of text, and a last line with `done: true`, the reason and the timings.
 */
function ollamaReply(request: OllamaRequest, field: TextField): Reply {
  const final = (text: string, done: Done, toolCalls?: ToolCall[]) => {
    const result = done.results[0] as Finished;
    return {
      model: request.model,
      created_at: now(),
      ...field(text, toolCalls),
      done: true,
      done_reason: doneReason(result.finishReason),
      ...durations(done.timing, result.usage),
    };
  };
  return {
    framing: NDJSON_FRAMING,
    timesFirstText: true,
    event(event, send) {
      if (event.type === "text") send({ model: request.model, created_at: now(), ...field(event.text), done: false });
      else if (event.type === "done") {
        const calls = event.results[0]?.toolCalls;
        if (calls?.length) send({ model: request.model, created_at: now(), ...field("", calls), done: false });
        send(final("", event));
      }
    },
    body: (done) => final(done.results[0]?.text ?? "", done, done.results[0]?.toolCalls),
  };
}

/** The generation request of /api/generate or /api/chat: one turn, with /api/chat's tools. */
function ollamaGeneration(
  deps: AppDeps,
  body: OllamaRequest,
  descriptor: ModelDescriptor,
  task: string,
  turn: Turn,
  tools: Omit<ChatOptions, keyof GenerationOptions> = {},
): GenerationRequest {
  return {
    model: descriptor.name,
    keepAlive: body.keep_alive,
    task,
    stream: body.stream !== false,
    turns: [turn],
    options: { ...ollamaOptions(body, deps.runtime.config.server, deps.runtime.config.cache.prompt_cache), ...tools },
  };
}

async function generateRoute(c: AppContext, deps: AppDeps, body: GenerateRequest): Promise<Response> {
  checkFormat(body.format, "format");
  const descriptor = requestedVariant(deps, await resolveModel(deps, body.model), body.options);
  if (body.prompt === undefined || body.prompt === "") return emptyGeneration(c, deps, body, descriptor, responseField);
  const prompt = body.prompt;
  if (body.raw && body.system)
    throw new BadRequest("system: not used with raw: true (the prompt is sent as it is)", {
      details: { param: "system" },
    });
  // Without raw, Ollama puts the prompt into the model's template: a one-turn chat.
  const turn: Turn = body.raw
    ? { prompt, promptParam: "prompt" }
    : {
        messages: [
          ...(body.system ? [{ role: "system" as const, content: body.system }] : []),
          { role: "user", content: prompt },
        ],
        promptParam: "prompt",
      };
  const request = ollamaGeneration(deps, body, descriptor, "text generation", turn);
  return generate(c, deps, request, ollamaReply(body, responseField));
}

/** Error paths in /api/chat's spelling: OpenAI's for messages, tools and tool_choice; the schema is `format` itself. */
const OLLAMA_CHAT_FIELDS: FieldNames = { ...CHAT_FIELDS, formatSchema: "format" };

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

async function chatRoute(c: AppContext, deps: AppDeps, body: ChatRequest): Promise<Response> {
  checkListLength(body.messages, deps.runtime.config.server.max_messages, "messages", "max_messages");
  const history = chatHistory(body.messages ?? []);
  const tools = chatOptions(body);
  // Tools, tool_choice, the format's schema and the tool messages are checked before anything is loaded.
  checkChat(history, { ...tools, ...(body.format ? { format: body.format } : {}) }, OLLAMA_CHAT_FIELDS);
  const descriptor = requestedVariant(deps, await resolveModel(deps, body.model), body.options);
  if (history.length === 0) return emptyGeneration(c, deps, body, descriptor, messageField, "chat");
  const turn: Turn = { messages: history, promptParam: "messages" };
  const request = ollamaGeneration(deps, body, descriptor, "chat", turn, tools);
  return generate(c, deps, request, ollamaReply(body, messageField));
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
  const descriptor = await resolveModel(deps, request.model);
  if (inputs.length === 0) {
    requireCapability(descriptor, "text", "embeddings");
    await loadOrUnload(c, deps, descriptor, request.keep_alive);
    return null;
  }
  const started = performance.now();
  let loaded = started;
  const generation = { model: descriptor.name, keepAlive: request.keep_alive, task: "embeddings" };
  const result = await withTextModel(c, deps, generation, (model, signal) => {
    loaded = performance.now();
    return model.embed(inputs, signal, { inputParam: param, ...truncateTo(request.truncate) });
  });
  const timing: Timing = { started, loaded, firstText: null, ended: performance.now() };
  return { result, timing };
}

async function embed(c: AppContext, deps: AppDeps, body: EmbedRequest): Promise<Response> {
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
  const { result, timing } = done;
  return c.json({
    model: body.model,
    embeddings: result.embeddings.map(normalized),
    total_duration: ns(timing.started, timing.ended),
    load_duration: ns(timing.started, timing.loaded),
    prompt_eval_count: result.promptTokens,
  });
}

/** The older single-input route: raw (not normalized) vectors, as Ollama returns them there. */
async function embeddings(c: AppContext, deps: AppDeps, body: EmbeddingsRequest): Promise<Response> {
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
  routes.post("/api/generate", async (c) => generateRoute(c, deps, await readBody(c, schemas.generate)));
  routes.post("/api/chat", async (c) => chatRoute(c, deps, await readBody(c, schemas.chat)));
  routes.post("/api/embed", async (c) => embed(c, deps, await readBody(c, schemas.embed)));
  routes.post("/api/embeddings", async (c) => embeddings(c, deps, await readBody(c, schemas.embeddings)));

  routes.post("/api/pull", () => notImplemented(deps, "pull (download)"));
  routes.post("/api/push", () => notImplemented(deps, "push (upload)"));
  routes.post("/api/create", () => notImplemented(deps, "create"));
  routes.post("/api/copy", () => notImplemented(deps, "copy"));
  routes.delete("/api/delete", () => notImplemented(deps, "delete"));
  // HEAD requests reach GET handlers (hono), so GET answers Ollama's `HEAD /api/blobs/:digest`.
  routes.on(["POST", "GET"], "/api/blobs/:digest", () => notImplemented(deps, "store blobs for creating"));
  return routes;
}
