/**
 * The Backend contract: how a model file becomes a loaded model. The cache knows only this interface; llama.cpp
 * (GGUF), ONNX Runtime and the fake test backend implement it.
 */
import type { BackendConfig } from "../config/schema.js";
import { ModelCapabilityMissing } from "../errors/index.js";
import type { Bytes, ModelDescriptor, ModelFormat } from "../models/types.js";

/**
 * A JSON Schema as plain data (the subset Inferno compiles to a grammar is listed in the README, "Structured output";
 * a schema using anything else is refused before any load).
 */
export type JsonSchema = { [key: string]: unknown };

/**
 * Constrains the generated text with a grammar. `json`: any JSON object; `json_schema`: JSON that validates against
 * `schema`. The text is still returned as text: callers parse it.
 */
export type OutputFormat = { type: "json" } | { type: "json_schema"; schema: JsonSchema };

/** Sampling temperature when a request sets none (llama.cpp's and Ollama's default); 0 would mean greedy decoding. */
export const DEFAULT_TEMPERATURE = 0.8;

/**
 * Options for one generation. Plain data only (no functions besides `signal` and `onText`, no class instances): the
 * process-isolated backend forwards everything else unchanged to the host process that runs llama.cpp.
 */
export interface GenerationOptions {
  /**
   * Most tokens to generate. The backend caps it (and its default: until the model stops) by what the loaded context
   * leaves after the prompt, so a generation always ends with the context full at the latest (`finishReason`
   * "length"); a server limit (`server.max_tokens_limit`) is the caller's to apply.
   */
  maxTokens?: number;
  /**
   * What to do with a prompt the context cannot hold (with room for one generated token). Absent: refuse it with
   * `ContextLengthExceeded`, before any token is evaluated. Set: truncate instead — `-1` keeps as much as the context
   * holds, `n > 0` at most `n` prompt tokens. A text completion keeps the end of its prompt; a chat drops its oldest
   * messages (system messages and the last message stay; if those alone do not fit, it is refused all the same).
   */
  truncatePromptTokens?: number;
  /** The request field the prompt came from, named by a `ContextLengthExceeded` error (`prompt`, `messages`). */
  promptParam?: string;
  /** Sampling temperature; 0 = greedy. Default `DEFAULT_TEMPERATURE` for GGUF models. */
  temperature?: number;
  /** Nucleus sampling: sample only from the most likely tokens whose probabilities add up to this (0 < topP <= 1). */
  topP?: number;
  /** Sample only from this many most likely tokens; 0 = no limit. */
  topK?: number;
  /** Drop tokens less likely than `minP` times the most likely token's probability (0..1; 0 = off). */
  minP?: number;
  /**
   * OpenAI's frequency penalty (-2..2): subtracted from a token's logit once per time it already occurs in the
   * generated text. 0 = off.
   */
  frequencyPenalty?: number;
  /** OpenAI's presence penalty (-2..2): subtracted once from the logit of every token already generated. 0 = off. */
  presencePenalty?: number;
  /**
   * llama.cpp's (and Ollama's) repeat penalty: the logit of a token already generated is divided by it (multiplied
   * when negative). 1 = off; Ollama's default is 1.1.
   */
  repeatPenalty?: number;
  /** Generated tokens the penalties look back over (Ollama's `repeat_last_n`); default and -1: all of them; 0 = off. */
  repeatLastN?: number;
  /**
   * Added to the logits of these token ids before sampling (OpenAI's `logit_bias`). Keys are token ids as decimal
   * strings (as OpenAI sends them, and so they survive JSON); values -100..100, where -100 bans the token and 100
   * makes it all but certain.
   */
  logitBias?: Record<string, number>;
  /** Seed for sampling; the same seed, prompt and settings give the same text. */
  seed?: number;
  /** Generation ends before any of these strings; the stop string is not part of the text. */
  stop?: string[];
  /** Grammar-constrained output (JSON, or JSON following a schema). Not combined with tools that may be called. */
  format?: OutputFormat;
  /**
   * Reuse the evaluated prefix a sequence holds from an earlier request (llama.cpp's `cache_prompt`; default true): only
   * the tokens after the longest shared prefix are evaluated, and the answer is the same either way. false: the whole
   * prompt is evaluated.
   */
  cachePrompt?: boolean;
  /**
   * Who may share evaluated prefixes with this request (`cache.prompt_cache_per_key`: a hash of the caller's API key).
   * A sequence or saved prefix evaluated under one scope is never reused under another. Absent: the shared scope.
   */
  promptScope?: string;
  /** Aborts generation; the result so far is returned with finishReason "abort". */
  signal?: AbortSignal;
  /** Called with each piece of text as it is generated (streaming). */
  onText?: (text: string) => void;
}

/** A function the model may call. */
export interface ToolDefinition {
  /** The function's name, as the model must write it (letters, digits, `_` and `-`). */
  name: string;
  description?: string;
  /** JSON Schema of the arguments object (default: any object). Calls are generated to validate against it. */
  parameters?: JsonSchema;
}

/**
 * Whether the model calls tools: `auto` = it decides; `none` = never (plain text); `required` = at least one call,
 * forced by a grammar; `{name}` = exactly a call of that function, forced by a grammar.
 */
export type ToolChoice = "auto" | "none" | "required" | { name: string };

/** Options of a chat generation: the generation options plus tools. */
export interface ChatOptions extends GenerationOptions {
  tools?: ToolDefinition[];
  /** Default `auto` when there are tools. */
  toolChoice?: ToolChoice;
  /** Whether the model may call several functions in one reply (default true); false stops after the first call. */
  parallelToolCalls?: boolean;
}

/** A function call the model made. */
export interface ToolCall {
  /** Unique in the conversation; a tool message answers it by this id. */
  id: string;
  name: string;
  /** The arguments as a JSON object text (validates against the tool's parameters schema). */
  arguments: string;
}

export type FinishReason = "stop" | "length" | "abort" | "tool_calls";

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  /**
   * Of the prompt tokens, those not evaluated because a sequence already held them (the prompt cache); the rest were
   * evaluated. Backends without a prompt cache leave it out (none cached).
   */
  cachedPromptTokens?: number;
}

export interface GenerationResult {
  /** The text the model wrote (without any tool calls); "" when it only called tools. */
  text: string;
  /** "tool_calls" when the reply ends with calls the caller should run and answer. */
  finishReason: FinishReason;
  usage: TokenUsage;
  /** Present (non-empty) when the model called tools. */
  toolCalls?: ToolCall[];
}

/**
 * One message of a conversation. An assistant message may carry the tool calls it made (and then `content` may be
 * null); a `tool` message carries a call's result and names the call by `toolCallId` (or, as Ollama clients send it,
 * only by the function's `name`: then it answers the earliest unanswered call of that name, else the earliest one).
 */
export type ChatMessage =
  | { role: "system" | "user"; content: string }
  | { role: "assistant"; content: string | null; toolCalls?: ToolCall[] }
  | { role: "tool"; content: string; toolCallId?: string; name?: string };

/** Options of an embedding call. Plain data (they cross to a model host). */
export interface EmbedOptions {
  /**
   * What to do with an input longer than the embedding context holds. Absent: refuse the call with
   * `ContextLengthExceeded` (naming the input) before any input is embedded. Set: keep the beginning of each long
   * input — `-1` as much as the context holds, `n > 0` at most `n` tokens.
   */
  truncatePromptTokens?: number;
  /** The request field the inputs came from (`input`, `prompt`); an error names `input[2]` for the third of several. */
  inputParam?: string;
}

export interface EmbeddingResult {
  embeddings: number[][];
  promptTokens: number;
}

/** A named input tensor for ONNX models. */
export interface TensorInput {
  type: "float32" | "int64" | "int32" | "uint8" | "bool";
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array | number[] | bigint[] | boolean[];
  dims: number[];
}

export interface TensorOutput {
  type: string;
  data: ArrayLike<number | bigint | boolean>;
  dims: number[];
}

/** A loaded model's handle. `dispose()` is idempotent; any use after it throws `Disposed`. */
export interface LoadedModelBase extends AsyncDisposable {
  readonly descriptor: ModelDescriptor;
  /**
   * Measured memory held by this model once loaded (bytes), used to replace the cache's pre-load estimate. A hosted
   * model re-measures its host process while it runs, so the figure may change (see `onMemoryChange`).
   */
  readonly memoryBytes: Bytes;
  readonly disposed: boolean;
  /**
   * Calls `listener` with each new `memoryBytes` figure (the cache moves its accounting to it); returns the unsubscribe
   * function. Listeners end with the model. Backends whose figure never changes leave it out.
   */
  onMemoryChange?(listener: (bytes: Bytes) => void): () => void;
  /** Settles with a typed error when the model's runtime dies by itself (its model host crashed or was killed); never settles otherwise. Backends without hosts leave it out. */
  readonly crashed?: Promise<Error>;
  /** The process id of the model's host, so an operator can find it. Backends without hosts leave it out. */
  readonly pid?: number;
  dispose(): Promise<void>;
}

/** A text generation model (GGUF on llama.cpp). Up to `backend.parallel` calls run at once; more queue. */
export interface TextModel extends LoadedModelBase {
  readonly kind: "text";
  complete(prompt: string, options?: GenerationOptions): Promise<GenerationResult>;
  /** Chat completion using the model's own chat template (and its function-calling format, when it has one). */
  chat(messages: ChatMessage[], options?: ChatOptions): Promise<GenerationResult>;
  /** Embeddings from the model itself, one vector per input. */
  embed(inputs: string[], signal?: AbortSignal, options?: EmbedOptions): Promise<EmbeddingResult>;
  tokenize(text: string): Promise<number[]>;
  /**
   * Pays the one-time costs of a model's first generations before any request does: the first evaluation on its
   * context (llama.cpp's compute graph, the weights paged in), the chat template's format found, and the generation
   * code compiled in the process that runs it. Greedy short completions and chats whose results are dropped (llama.cpp:
   * up to 8 tokens each, a few rounds within a quarter of a second); then the sequences are emptied and the model's hottest saved prompt prefixes restored into them (see backends/prompt-store.ts). The cache's warm-up
   * calls it after loading, so the first request after `/ready` runs as fast as the next ones. Backends with nothing
   * to warm leave it out.
   */
  warm?(signal?: AbortSignal): Promise<void>;
  /**
   * Calls `listener` with what the model's prompt store does (prefixes saved on unload, restored, evicted by the budget,
   * quarantined); events from before the first listener are held for it. Returns the unsubscribe function. Backends
   * without a prompt store leave it out.
   */
  onPromptStore?(listener: (event: PromptStoreEvent) => void): () => void;
}

/** A tensor model (ONNX): named inputs in, named outputs out. */
export interface TensorModel extends LoadedModelBase {
  readonly kind: "tensor";
  run(inputs: Record<string, TensorInput>, signal?: AbortSignal): Promise<Record<string, TensorOutput>>;
}

export type LoadedModel = TextModel | TensorModel;

/**
 * Where a model's evaluated prefixes are saved when it unloads and restored from when it loads (see
 * backends/prompt-store.ts). Plain data: it crosses to a model host in the load message.
 */
export interface PromptStoreSettings {
  /** The cache directory (`cache.cache_dir`); states go under `<cacheDir>/prompts/`. */
  cacheDir: string;
  /** `cache.prompt_cache_mb` in bytes, > 0: the most the directory's states may take. */
  budgetBytes: Bytes;
}

/** What a model's prompt store did: the cache's `prefix` events and statistics. */
export interface PromptStoreEvent {
  action: "saved" | "restored" | "evicted" | "quarantined";
  /** The prefix's length in tokens (0 when unknown: a file quarantined at a scan). */
  tokens: number;
  /** Its state file's size. */
  bytes: Bytes;
  /** Bytes of every saved state in the directory after it. */
  diskBytes: Bytes;
  /** Why it was quarantined, or evicted (`budget`, `superseded`). */
  reason?: string;
}

export interface LoadOptions {
  backend: BackendConfig;
  /** Save prefixes on unload and restore them (GGUF models). Absent: no prompt store. */
  promptStore?: PromptStoreSettings;
  /** Aborting it abandons the load: the promise rejects with `Aborted` and anything half-loaded is freed. */
  signal?: AbortSignal;
  /** Load progress from 0 to 1, when the backend can tell. */
  onProgress?: (fraction: number) => void;
}

/** What kind of loaded model each format gives: the capability a request is checked against before any load. */
export const FORMAT_KIND: Readonly<Record<ModelFormat, LoadedModel["kind"]>> = { gguf: "text", onnx: "tensor" };

/**
 * "A tensor model cannot do a text task", said once: the refusal of a model whose format does not give the kind of
 * model `task` needs (`task` as the request names it: "chat completions", "embeddings"…). The cache raises it on
 * `acquire({ capability })` before anything is loaded or evicted; a request that only loads or describes a model
 * checks with `requireCapability`.
 */
export function capabilityMissing(
  descriptor: Pick<ModelDescriptor, "name" | "format">,
  task: string,
): ModelCapabilityMissing {
  return new ModelCapabilityMissing(
    `model ${descriptor.name} is an ${descriptor.format.toUpperCase()} ${FORMAT_KIND[descriptor.format]} model and cannot do ${task}`,
    { details: { param: "model", model: descriptor.name } },
  );
}

/** Throws `capabilityMissing` unless `descriptor`'s format gives a model of the kind `needed`. */
export function requireCapability(
  descriptor: Pick<ModelDescriptor, "name" | "format">,
  needed: LoadedModel["kind"],
  task: string,
): void {
  if (FORMAT_KIND[descriptor.format] !== needed) throw capabilityMissing(descriptor, task);
}

export interface Backend {
  /** The model format this backend loads. */
  readonly format: ModelFormat;
  /**
   * Starts the runtime itself (llama.cpp's one-time start-up) if it has not started yet; resolves when it is ready.
   * The runtime calls it at creation, in parallel with the restore; the cache awaits it before timing a load, so load
   * times never include the start-up. Optional: backends with nothing to start leave it out.
   */
  ready?(config: BackendConfig): Promise<void>;
  /**
   * Resolves once what the backend started in the background for the next load has finished starting (with model
   * hosts: the spare host that replaces the one a load took), or failed to; starts nothing itself. The start-up
   * warm-up awaits it before it ends: until then that start competes with requests for the CPU. Optional: backends that
   * start nothing in the background leave it out.
   */
  settle?(): Promise<void>;
  load(model: ModelDescriptor, options: LoadOptions): Promise<LoadedModel>;
  /** Releases shared resources (e.g. the llama.cpp instance). Idempotent. */
  dispose(): Promise<void>;
}

/** Backends by the format they load. */
export type BackendRegistry = Partial<Record<ModelFormat, Backend>>;
