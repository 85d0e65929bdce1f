/** What the rest of Inferno knows about a model file, without loading it. */
import type { BackendConfig, StoreName } from "../config/schema.js";
import type { LoadSettings, Sequences } from "./load-settings.js";

export type { Sequences };

export type ModelFormat = "gguf" | "onnx";

/**
 * The longest model name Inferno resolves, in characters: no path on Linux is longer (PATH_MAX). A longer name is
 * refused before anything keeps it (issue 23: 2 MiB names were kept in events and logs).
 */
export const MAX_MODEL_NAME_CHARS = 4096;

/** Bytes, as a plain number (files and memory here stay far below 2^53). */
export type Bytes = number;
/** Milliseconds since the Unix epoch (wall clock). */
export type EpochMilliseconds = number;

/** Identifies one version of a model file: a change of size or mtime means the file changed. */
export interface Fingerprint {
  size: Bytes;
  mtimeMs: EpochMilliseconds;
  /** Hex sha256 of the whole file, only when asked for (`--hash`); absent otherwise. */
  sha256?: string;
}

/** Whether two fingerprints describe the same version of a file (size and mtime; a hash is not needed to tell). */
export function sameFileVersion(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** One model file, resolved. */
export interface ModelDescriptor {
  /** Display name: the path relative to the models directory, with `/` separators (e.g. `llama/tiny.gguf`). */
  name: string;
  /** The cache key: the canonical real path of the file. Every spelling of one file has the same key. */
  key: string;
  /**
   * Absolute path to open: the real path (equal to `key`), except for a split GGUF, opened by its first part's path as
   * found, since llama.cpp finds the other parts beside it by name.
   */
  path: string;
  format: ModelFormat;
  fingerprint: Fingerprint;
  /** The store the model was found in (`model_stores`); absent for a file in a models directory. */
  store?: StoreName;
  /**
   * How this variant loads, over `[backend]` (a preset's or a request's context size, threads, GPU layers, parallel):
   * `key` and `name` then end with the suffix that spells them (see load-settings.ts). Absent: as configured.
   */
  load?: LoadSettings;
  /**
   * What a preset (`[models."NAME"]`) or an Ollama Modelfile gives every request that does not say otherwise: a system
   * message, a chat template, sampling defaults. Applied by the backend to the model it loads (the key then names the
   * preset, so two presets of one file are two entries).
   */
  defaults?: ModelDefaults;
}

/** A model's defaults (see `ModelDescriptor.defaults`). Plain data: it crosses to a model host. */
export interface ModelDefaults {
  system?: string;
  /** A Jinja chat template used instead of the file's own. */
  template?: string;
  /**
   * An Ollama Modelfile's `TEMPLATE` (Go text/template syntax), run instead of the file's own chat template when it
   * keeps to the subset ../models/go-template.ts runs (otherwise the file's own is used). `template` wins over it.
   */
  goTemplate?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
  stop?: string[];
  maxTokens?: number;
}

export interface GgufMetadata {
  format: "gguf";
  version: number;
  architecture: string;
  /** Model name from the header (`general.name`), when present. */
  modelName?: string;
  parameterCount: number;
  /** llama.cpp file type name, e.g. `F32`, `F16`, `Q8_0`, `MOSTLY_Q4_K_M`. */
  quantization: string;
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  vocabularySize: number;
  tensorCount: number;
  /** Total bytes of tensor data. */
  tensorBytes: Bytes;
  hasChatTemplate: boolean;
}

export interface OnnxTensorInfo {
  name: string;
  /** Element type, e.g. `float32`, `int64`. */
  type: string;
  /** Dimensions; symbolic dimensions are strings, unknown ones null. */
  shape: Array<number | string | null>;
}

export interface OnnxMetadata {
  format: "onnx";
  inputs: OnnxTensorInfo[];
  outputs: OnnxTensorInfo[];
  /** The default-domain opset version. */
  opset: number;
  irVersion: number;
  producer?: string;
}

export type ModelMetadata = GgufMetadata | OnnxMetadata;

export interface ModelInfo extends ModelDescriptor {
  metadata: ModelMetadata;
}

/**
 * What the cache needs from model discovery. `ModelManager` implements it with the filesystem; the cache's unit tests
 * implement it in memory.
 */
export interface ModelSource {
  /** Resolves a user-supplied name to one model, or throws ModelNotFound / ModelAmbiguous / ModelOutsideModelsDir. */
  resolve(name: string): Promise<ModelDescriptor>;
  /** Every discoverable model. */
  list(): Promise<ModelDescriptor[]>;
  /**
   * The descriptor for a name the source already knows, without I/O (the cache's synchronous hit path); undefined when
   * it would have to look (then `resolve` is used). Optional.
   */
  lookup?(name: string): ModelDescriptor | undefined;
  /**
   * Whether the models directory (every store) can be read now. False when it is absent or unreadable: the cache then
   * leaves saved statistics alone rather than take every model for deleted. Optional: sources that cannot tell omit it.
   */
  available?(): Promise<boolean>;
  /** The current size+mtime of a model's file by key, or null when the file is gone. */
  fingerprint(key: string): Promise<Fingerprint | null>;
  /**
   * Bytes a model is expected to take once loaded with these backend settings (auto `parallel` counting the sequences
   * that fit `roomBytes`, default Infinity: see `sequences`). The cache asks before every load, so a source may also
   * check the file here and throw ModelInvalid (`ModelManager` verifies store blobs' digests).
   */
  estimateMemory(model: ModelDescriptor, backend: BackendConfig, roomBytes?: Bytes): Promise<Bytes>;
  /**
   * The sequences a load of `model` with `backend` gets when `roomBytes` of memory are left to it (`backend.parallel = 0`,
   * auto, takes fewer when they do not fit); null when the model has no sequences (not GGUF). Optional: without it a
   * load takes the machine rule's number. The cache asks before each load's estimate and loads with the count.
   */
  sequences?(model: ModelDescriptor, backend: BackendConfig, roomBytes: Bytes): Promise<Sequences | null>;
  /**
   * The model's header metadata, if the source can tell. Optional: the cache asks once per load and stores a few
   * facts in the state file; `ModelManager` answers from the header it already read for `estimateMemory`.
   */
  metadata?(model: ModelDescriptor): Promise<ModelMetadata>;
}
