/**
 * The Backend contract: how a model file becomes a loaded model. The cache knows only this interface; llama.cpp
 * (GGUF), ONNX Runtime and the fake test backend implement it.
 */
import type { BackendConfig } from "../config/schema.js";
import type { Bytes, ModelDescriptor, ModelFormat } from "../models/types.js";

export interface GenerationOptions {
  /** Most tokens to generate (default: until the model stops or the context is full, capped by the backend). */
  maxTokens?: number;
  /** Sampling temperature; 0 = greedy. Default 0.8 for GGUF models. */
  temperature?: number;
  topP?: number;
  /** Seed for sampling; the same seed, prompt and settings give the same text. */
  seed?: number;
  /** Generation ends before any of these strings; the stop string is not part of the text. */
  stop?: string[];
  /** Aborts generation; the result so far is returned with finishReason "abort". */
  signal?: AbortSignal;
  /** Called with each piece of text as it is generated (streaming). */
  onText?: (text: string) => void;
}

export type FinishReason = "stop" | "length" | "abort";

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  usage: TokenUsage;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
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
  /** Measured memory held by this model once loaded (bytes), used to replace the cache's pre-load estimate. */
  readonly memoryBytes: Bytes;
  readonly disposed: boolean;
  dispose(): Promise<void>;
}

/** A text generation model (GGUF on llama.cpp). Up to `backend.parallel` calls run at once; more queue. */
export interface TextModel extends LoadedModelBase {
  readonly kind: "text";
  complete(prompt: string, options?: GenerationOptions): Promise<GenerationResult>;
  /** Chat completion using the model's own chat template. */
  chat(messages: ChatMessage[], options?: GenerationOptions): Promise<GenerationResult>;
  /** Embeddings from the model itself, one vector per input. */
  embed(inputs: string[], signal?: AbortSignal): Promise<EmbeddingResult>;
  tokenize(text: string): Promise<number[]>;
}

/** A tensor model (ONNX): named inputs in, named outputs out. */
export interface TensorModel extends LoadedModelBase {
  readonly kind: "tensor";
  run(inputs: Record<string, TensorInput>, signal?: AbortSignal): Promise<Record<string, TensorOutput>>;
}

export type LoadedModel = TextModel | TensorModel;

export interface LoadOptions {
  backend: BackendConfig;
  /** Aborting it abandons the load: the promise rejects with `Aborted` and anything half-loaded is freed. */
  signal?: AbortSignal;
  /** Load progress from 0 to 1, when the backend can tell. */
  onProgress?: (fraction: number) => void;
}

/** What kind of loaded model each format gives: the capability a request is checked against before any load. */
export const FORMAT_KIND: Readonly<Record<ModelFormat, LoadedModel["kind"]>> = { gguf: "text", onnx: "tensor" };

export interface Backend {
  /** The model format this backend loads. */
  readonly format: ModelFormat;
  /**
   * Starts the runtime itself (llama.cpp's one-time start-up) if it has not started yet; resolves when it is ready.
   * The runtime calls it at creation, in parallel with the restore; the cache awaits it before timing a load, so load
   * times never include the start-up. Optional: backends with nothing to start leave it out.
   */
  ready?(config: BackendConfig): Promise<void>;
  load(model: ModelDescriptor, options: LoadOptions): Promise<LoadedModel>;
  /** Releases shared resources (e.g. the llama.cpp instance). Idempotent. */
  dispose(): Promise<void>;
}

/** Backends by the format they load. */
export type BackendRegistry = Partial<Record<ModelFormat, Backend>>;
