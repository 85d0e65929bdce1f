/**
 * A fake backend for the cache's unit tests and the eviction benchmark: no model files are read. Each model's load
 * time, memory figure and failures are configurable; text output is a deterministic echo; loads and disposals are
 * counted so tests can assert "one load" or "disposed once".
 *
 * Load delays run on injected timers (the cache's `Clock` fits), so a test on a manual clock simulates a 30 s load in
 * no real time. Never used by the server or the CLI.
 */
import { Aborted, Disposed, ModelCrashed, ModelLoadFailed } from "../errors/index.js";
import { MemoryFigure } from "./common.js";
import type { BackendConfig } from "../config/schema.js";
import type { Bytes, ModelDescriptor, ModelFormat } from "../models/types.js";
import type {
  Backend,
  ChatMessage,
  EmbeddingResult,
  GenerationOptions,
  GenerationResult,
  LoadOptions,
  TextModel,
} from "./types.js";
import { MIB } from "../units.js";

/** How one fake model behaves when loaded. */
export interface FakeModelBehaviour {
  /** Time a load takes, in milliseconds on the injected timers. Default 0 (resolves on the next microtask). */
  loadMs?: number;
  /** The measured memory the loaded model reports, in bytes. Default: 1 MiB. */
  memoryBytes?: Bytes;
  /** This many coming loads fail (after their load time), then loads succeed again. */
  failNext?: number;
  /** Every load fails. */
  failAlways?: boolean;
  /** Time a loaded model's dispose takes (a model host ending), in milliseconds on the injected timers. Default 0. */
  disposeMs?: number;
}

/** The part of a clock the fake needs (the cache's `Clock` satisfies it). */
export interface FakeTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: never): void;
}

export interface FakeBackendOptions {
  /** The format it claims to load. Default `gguf`. */
  format?: ModelFormat;
  /** Timers for load delays. Default: the real `setTimeout`. */
  timers?: FakeTimers;
  /** Behaviour of models without their own entry. */
  defaults?: FakeModelBehaviour;
  /** Behaviour per model, keyed by descriptor name or key. */
  models?: Record<string, FakeModelBehaviour>;
}

const realTimers: FakeTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

export class FakeBackend implements Backend {
  readonly format: ModelFormat;
  /** Loads started / succeeded / failed (configured failure) / aborted, and model disposals, in total. */
  readonly counts = { started: 0, loaded: 0, failed: 0, aborted: 0, disposed: 0 };
  /** Models loaded and not yet disposed. */
  readonly live = new Set<FakeTextModel>();
  /** True once `dispose()` ran. */
  disposed = false;
  /** What `settle()` waits for: a test holds the end of the start-up warm-up with it. Default: nothing. */
  settling: Promise<void> = Promise.resolve();
  /** Calls of `settle()`. */
  settles = 0;
  private readonly timers: FakeTimers;
  private readonly defaults: FakeModelBehaviour;
  private readonly behaviours = new Map<string, FakeModelBehaviour>();
  private readonly loadsByModel = new Map<string, number>();

  constructor(options: FakeBackendOptions = {}) {
    this.format = options.format ?? "gguf";
    this.timers = options.timers ?? realTimers;
    this.defaults = options.defaults ?? {};
    for (const [id, behaviour] of Object.entries(options.models ?? {})) this.behaviours.set(id, { ...behaviour });
  }

  /** Changes how a model (by name or key) behaves from its next load on; merges with what was set before. */
  configure(id: string, behaviour: FakeModelBehaviour): void {
    this.behaviours.set(id, { ...this.behaviours.get(id), ...behaviour });
  }

  /** Successful loads of one model (by name or key). */
  loadCount(id: string): number {
    return this.loadsByModel.get(id) ?? 0;
  }

  async load(model: ModelDescriptor, options: LoadOptions): Promise<TextModel> {
    if (this.disposed) throw new Disposed("the fake backend was disposed");
    this.counts.started++;
    const behaviour = this.behaviourOf(model);
    await this.delay(behaviour.loadMs ?? 0, options.signal);
    options.onProgress?.(1);
    if (behaviour.failAlways || this.consumeFailure(model)) {
      this.counts.failed++;
      throw new ModelLoadFailed(`fake load failure for ${model.name}`, { details: { model: model.name } });
    }
    this.counts.loaded++;
    for (const id of new Set([model.name, model.key])) this.loadsByModel.set(id, (this.loadsByModel.get(id) ?? 0) + 1);
    const loaded = new FakeTextModel(model, behaviour.memoryBytes ?? MIB, options.backend, async () => {
      if (behaviour.disposeMs) await this.delay(behaviour.disposeMs, undefined);
      this.counts.disposed++;
      this.live.delete(loaded);
    });
    this.live.add(loaded);
    return loaded;
  }

  settle(): Promise<void> {
    this.settles++;
    return this.settling;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }

  private behaviourOf(model: ModelDescriptor): FakeModelBehaviour {
    return { ...this.defaults, ...this.behaviours.get(model.key), ...this.behaviours.get(model.name) };
  }

  private consumeFailure(model: ModelDescriptor): boolean {
    for (const id of [model.name, model.key]) {
      const behaviour = this.behaviours.get(id);
      if (behaviour?.failNext && behaviour.failNext > 0) {
        behaviour.failNext--;
        return true;
      }
    }
    return false;
  }

  private delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const abort = () => {
        this.timers.clearTimeout(handle as never);
        this.counts.aborted++;
        reject(new Aborted("load aborted"));
      };
      if (signal?.aborted) {
        this.counts.aborted++;
        reject(new Aborted("load aborted"));
        return;
      }
      const handle = this.timers.setTimeout(() => {
        signal?.removeEventListener("abort", abort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }
}

/**
 * A loaded fake model: echoes prompts word by word, embeds text as a stable hash vector, counts its warm-ups and
 * generations. Tests may change its `memoryBytes` (a re-measured figure) and `crash()` it (its runtime dying by itself).
 */
export class FakeTextModel implements TextModel {
  readonly kind = "text";
  disposed = false;
  /** Calls of `warm()`. */
  warmed = 0;
  /** Calls of `complete()` and `chat()`. */
  generations = 0;
  readonly crashed: Promise<Error>;
  private crashError: Error | null = null;
  private resolveCrashed!: (error: Error) => void;
  private readonly memory: MemoryFigure;

  constructor(
    readonly descriptor: ModelDescriptor,
    memoryBytes: Bytes,
    /** The settings it was loaded with (tests check they were passed through). */
    readonly backendConfig: BackendConfig,
    private readonly onDispose: () => Promise<void>,
  ) {
    this.memory = new MemoryFigure(memoryBytes);
    this.crashed = new Promise((resolve) => (this.resolveCrashed = resolve));
  }

  get memoryBytes(): Bytes {
    return this.memory.bytes;
  }

  /** A new measured figure (as a model host's re-measurement gives): `onMemoryChange` listeners hear of it. */
  set memoryBytes(bytes: Bytes) {
    this.memory.set(bytes);
  }

  onMemoryChange(listener: (bytes: Bytes) => void): () => void {
    return this.memory.subscribe(listener);
  }

  /** Simulates the model's runtime dying: `crashed` settles and every later call throws `ModelCrashed`. */
  crash(): void {
    if (this.crashError) return;
    this.crashError = new ModelCrashed(`fake model ${this.descriptor.name} crashed`, {
      details: { retry_after_seconds: 1 },
    });
    this.resolveCrashed(this.crashError);
  }

  async complete(prompt: string, options: GenerationOptions = {}): Promise<GenerationResult> {
    this.assertUsable();
    this.generations++;
    return echo(prompt, options);
  }

  async chat(messages: ChatMessage[], options: GenerationOptions = {}): Promise<GenerationResult> {
    this.assertUsable();
    this.generations++;
    const lastUser = [...messages].reverse().find((m) => m.role === "user");
    return echo(lastUser?.content ?? "", options);
  }

  async embed(inputs: string[], signal?: AbortSignal): Promise<EmbeddingResult> {
    this.assertUsable();
    if (signal?.aborted) throw new Aborted("embedding aborted");
    return { embeddings: inputs.map(hashVector), promptTokens: inputs.reduce((n, text) => n + words(text).length, 0) };
  }

  async tokenize(text: string): Promise<number[]> {
    this.assertUsable();
    return words(text).map((word) => hash(word) % 32000);
  }

  async warm(): Promise<void> {
    this.assertUsable();
    this.warmed++;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.memory.clear();
    await this.onDispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  private assertUsable(): void {
    if (this.crashError) throw this.crashError;
    if (this.disposed) throw new Disposed(`model ${this.descriptor.name} was disposed`);
  }
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}

/** Echoes the prompt one word (token) at a time, honouring maxTokens, stop strings, abort and streaming. */
function echo(prompt: string, options: GenerationOptions): GenerationResult {
  const tokens = words(prompt);
  const limit = options.maxTokens ?? tokens.length;
  let text = "";
  let finishReason: GenerationResult["finishReason"] = "stop";
  let emitted = 0;
  for (const [i, token] of tokens.entries()) {
    if (options.signal?.aborted) {
      finishReason = "abort";
      break;
    }
    if (emitted >= limit) {
      finishReason = "length";
      break;
    }
    const piece = i === 0 ? token : ` ${token}`;
    const stopAt = firstStop(text + piece, options.stop);
    if (stopAt !== null) {
      const rest = (text + piece).slice(text.length, stopAt);
      if (rest) options.onText?.(rest);
      text = (text + piece).slice(0, stopAt);
      break;
    }
    text += piece;
    emitted++;
    options.onText?.(piece);
  }
  return { text, finishReason, usage: { promptTokens: tokens.length, completionTokens: emitted } };
}

function firstStop(text: string, stops: string[] | undefined): number | null {
  const found = (stops ?? []).map((s) => text.indexOf(s)).filter((i) => i >= 0);
  return found.length > 0 ? Math.min(...found) : null;
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** An 8-dimensional unit vector derived from the text: equal texts embed equally, different ones (almost surely) not. */
function hashVector(text: string): number[] {
  const raw = Array.from({ length: 8 }, (_, i) => (hash(`${i}:${text}`) / 0xffffffff) * 2 - 1);
  const norm = Math.hypot(...raw) || 1;
  return raw.map((x) => x / norm);
}
