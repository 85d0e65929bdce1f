/**
 * Process isolation (`backend.isolation = "process"`): every loaded model runs in its own model host, a child process
 * that runs the in-process backend of its format (./host/main.ts) and talks to Inferno over a pipe. A crash inside
 * llama.cpp — a malformed file, an abort in a kernel, SIGBUS from a model file overwritten while mapped, the OOM
 * killer — ends that host only: its requests fail with `ModelCrashed`, `crashed` settles, and the cache unloads the
 * model and loads it again on the next request.
 *
 * One spare host is kept started with its runtime initialised, so a cold load pays neither process start nor runtime
 * start; `ready()` starts it (the runtime calls it at creation, the cache before timing each load), and it is replaced
 * in the background after each use. A model's memory is what the OS measures for its host (`processMemory`),
 * re-measured every `MEMORY_REFRESH_MS` (`onMemoryChange` tells the cache).
 */
import type { BackendConfig } from "../config/schema.js";
import {
  Aborted,
  Disposed,
  isInfernoError,
  ModelCrashed,
  ModelLoadFailed,
  ModelLoadTimeout,
  messageOf,
} from "../errors/index.js";
import type { Bytes, ModelDescriptor, ModelFormat } from "../models/types.js";
import { Lifetime, MemoryFigure, throwIfAborted } from "./common.js";
import { type HostAnswer, ModelHost } from "./host/host.js";
import { processMemory } from "./host/memory.js";
import type { CallMethod } from "./host/protocol.js";
import type {
  Backend,
  ChatMessage,
  ChatOptions,
  EmbeddingResult,
  EmbedOptions,
  GenerationOptions,
  GenerationResult,
  LoadedModel,
  LoadOptions,
  PromptStoreEvent,
  TensorInput,
  TensorModel,
  TensorOutput,
  TextModel,
} from "./types.js";
import { MIB } from "../units.js";

/** How often a hosted model's memory is measured again while it is loaded, in milliseconds. */
export const MEMORY_REFRESH_MS = 5000;

/**
 * How long a host may take to start its runtime (process start, importing and initialising llama.cpp: about a second
 * on an idle machine, tens of seconds on a very busy one) before the load fails with `ModelLoadFailed`.
 */
const HOST_START_TIMEOUT_MS = 300_000;

/**
 * How long a started host may take to load a file of `sizeBytes` before it is killed and the load fails with
 * `ModelLoadTimeout`: 60 s plus one second per 20 MiB (reading at 20 MiB/s, a slow disk; a 4 GiB model gets ~4.4 min).
 */
export function loadTimeoutMs(sizeBytes: Bytes): number {
  return 60_000 + Math.ceil(sizeBytes / (20 * MIB)) * 1000;
}

export interface HostedBackendOptions {
  /** The host entry module (tests give one that misbehaves). Default: the real host. */
  entry?: string;
  /** The load bound for a file of a size. Default: `loadTimeoutMs`. */
  loadTimeoutMs?: (sizeBytes: Bytes) => number;
  /**
   * Keep a spare host ready for the next load, started again after each load. Default true; false for one-shot use (a
   * load then starts its own host, unless `ready()` started one).
   */
  spare?: boolean;
  /**
   * The watchdog's base bound, in milliseconds: a host with work in flight that sends nothing for this long (plus one
   * second per MiB of the request) is killed and its model counted as crashed (see host.ts). Default 30 s
   * (`backend.host_timeout_seconds`).
   */
  silenceMs?: number;
}

export class HostedBackend implements Backend {
  private spare: ModelHost | null = null;
  /** Hosts started and not yet ended, so dispose can make sure none is left. */
  private readonly hosts = new Set<ModelHost>();
  private disposed = false;
  private readonly timeoutOf: (sizeBytes: Bytes) => number;

  constructor(
    readonly format: ModelFormat,
    private readonly options: HostedBackendOptions = {},
  ) {
    this.timeoutOf = options.loadTimeoutMs ?? loadTimeoutMs;
  }

  /** The spare host's pid, if one is running (for tests and operators). */
  get sparePid(): number | null {
    return this.spare?.alive ? this.spare.pid : null;
  }

  /**
   * Starts the spare host for `config`'s GPU setting if there is none (process start and the runtime's start-up), and
   * resolves once it is ready, so the next load pays neither. Rejects with `ModelLoadFailed` when the host cannot start
   * its runtime within the bound (it is then stopped; the next call starts another).
   */
  async ready(config: Pick<BackendConfig, "gpu">): Promise<void> {
    if (this.disposed) throw new Disposed("the backend was disposed");
    const host = this.spareFor(config.gpu);
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(hostStartTimeout()), HOST_START_TIMEOUT_MS);
    });
    try {
      await Promise.race([host.whenReady(), bound]);
    } catch (error) {
      // Disposed meanwhile (a Ctrl-C in the first seconds of `serve`): the host was ended on purpose, nothing failed.
      if (this.disposed) throw new Disposed("the backend was disposed while its runtime started");
      // A host ignores SIGINT and runs in its own process group, so a SIGINT that ends one is a terminal's Ctrl-C that
      // reached it in the moment between its fork and its own group (libuv blocks signals there, and the pending one
      // ends the child at exec): the server is being stopped by the same Ctrl-C, and nothing failed.
      if (host.exitSignal === "SIGINT") throw new Disposed("the model host was interrupted (Ctrl-C) while it started");
      host.kill(error instanceof Error ? error : new Error(String(error)));
      throw hostStartFailed(config.gpu, error);
    } finally {
      clearTimeout(timer);
    }
  }

  async load(descriptor: ModelDescriptor, options: LoadOptions): Promise<LoadedModel> {
    if (this.disposed) throw new Disposed("the backend was disposed");
    const { backend: config, signal } = options;
    throwIfAborted(signal, `loading ${descriptor.name}`);
    const host = this.takeHost(config.gpu);
    host.modelName = descriptor.name;
    try {
      const loaded = await this.loadIn(host, descriptor, options);
      const memory = (await processMemory(host.pid)) ?? loaded.memoryBytes;
      const Model = loaded.kind === "text" ? HostedTextModel : HostedTensorModel;
      return new Model(descriptor, host, memory);
    } catch (error) {
      host.kill(error instanceof Error ? error : new Error(String(error)));
      throw error;
    } finally {
      this.replenish(config.gpu);
    }
  }

  /** The spare host for a GPU setting: the current one if it is alive and suits, else a new one (the old one ends). */
  private spareFor(gpu: BackendConfig["gpu"]): ModelHost {
    if (this.spare?.alive && this.spare.gpu === gpu) return this.spare;
    void this.spare?.shutdown();
    this.spare = this.startHost(gpu);
    return this.spare;
  }

  /** See `Backend.settle`: the spare being started (after a load, on the next turn: see `replenish`), once it is ready. */
  async settle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    const spare = this.spare;
    if (spare?.alive && !this.disposed) await this.ready({ gpu: spare.gpu }).catch(() => undefined);
  }

  /** The spare for a load, taken (no longer the spare). */
  private takeHost(gpu: BackendConfig["gpu"]): ModelHost {
    const host = this.spareFor(gpu);
    this.spare = null;
    return host;
  }

  private startHost(gpu: BackendConfig["gpu"]): ModelHost {
    const host = ModelHost.start({
      format: this.format,
      gpu,
      ...(this.options.entry ? { entry: this.options.entry } : {}),
      ...(this.options.silenceMs === undefined ? {} : { silenceMs: this.options.silenceMs }),
    });
    this.hosts.add(host);
    void host.exited.then(() => {
      this.hosts.delete(host);
      if (this.spare === host) this.spare = null;
    });
    return host;
  }

  /**
   * Starts a new spare in the background when there is none — once the load's caller has had its turn: starting a
   * process blocks this event loop for tens of milliseconds (forking a large process), which belongs to no load and
   * should not delay the first request to the model just loaded.
   */
  private replenish(gpu: BackendConfig["gpu"]): void {
    setImmediate(() => {
      if (this.disposed || this.options.spare === false || this.spare?.alive) return;
      this.spare = this.startHost(gpu);
    });
  }

  /** Starts the runtime (if the host is new) and loads, within the time bound; abort and timeout kill the host. */
  private loadIn(
    host: ModelHost,
    descriptor: ModelDescriptor,
    options: LoadOptions,
  ): Promise<Extract<HostAnswer, { type: "loaded" }>> {
    const { name } = descriptor;
    const boundMs = this.timeoutOf(descriptor.fingerprint.size);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (error: Error | null, loaded?: Extract<HostAnswer, { type: "loaded" }>) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(loaded as Extract<HostAnswer, { type: "loaded" }>);
      };
      /** Kills the host and fails the load with `error` (abort, a bound passed). */
      const stop = (error: Error) => {
        host.kill(error);
        finish(error);
      };
      const onAbort = () => stop(new Aborted(`loading ${name} was aborted`, { cause: options.signal?.reason }));
      options.signal?.addEventListener("abort", onAbort, { once: true });
      // Starting the host has its own, fixed bound; the load's bound runs from the load request on.
      timer = setTimeout(() => stop(hostStartTimeout()), HOST_START_TIMEOUT_MS);
      host
        .whenReady()
        .catch((error: unknown) => {
          throw hostStartFailed(options.backend.gpu, error);
        })
        .then(() => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            stop(
              new ModelLoadTimeout(
                `the model host did not load ${name} within ${Math.round(boundMs / 1000)} s; it was stopped`,
                {
                  details: { model: name, timeout_ms: boundMs, size_bytes: descriptor.fingerprint.size, pid: host.pid },
                },
              ),
            );
          }, boundMs);
          const load = {
            type: "load" as const,
            descriptor,
            config: options.backend,
            ...(options.promptStore ? { promptStore: options.promptStore } : {}),
          };
          const request = host.request(load, (event) => {
            if (event.type === "progress") options.onProgress?.(event.fraction);
          });
          return request.answer;
        })
        .then(
          (answer) => finish(null, answer as Extract<HostAnswer, { type: "loaded" }>),
          (error: unknown) => finish(this.loadError(descriptor, error)),
        );
    });
  }

  /** A host that dies while loading is a load failure of that file (a malformed model, usually), not a crash. */
  private loadError(descriptor: ModelDescriptor, error: unknown): Error {
    if (error instanceof ModelCrashed) {
      return new ModelLoadFailed(
        `could not load ${descriptor.name}: ${error.message.replace(/; it is unloaded.*$/, "")}`,
        {
          cause: error,
          details: { model: descriptor.name, path: descriptor.path },
        },
      );
    }
    if (isInfernoError(error)) return error;
    return new ModelLoadFailed(`could not load ${descriptor.name}: ${messageOf(error)}`, {
      cause: error,
      details: { model: descriptor.name, path: descriptor.path },
    });
  }

  /** Ends the spare and any host whose model was not disposed. Idempotent. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.spare = null;
    await Promise.all([...this.hosts].map((host) => host.shutdown()));
  }
}

function hostStartTimeout(): ModelLoadFailed {
  return new ModelLoadFailed(`the model host did not start within ${HOST_START_TIMEOUT_MS / 1000} s`);
}

/** A host that could not start its runtime (the bound above, a runtime that fails to start, a process that died). */
function hostStartFailed(gpu: BackendConfig["gpu"], error: unknown): ModelLoadFailed {
  if (error instanceof ModelLoadFailed) return error;
  return new ModelLoadFailed(`the model host could not start its runtime (gpu = ${String(gpu)}): ${messageOf(error)}`, {
    cause: error,
  });
}

/** What every hosted model shares: calls over the host's pipe, the measured memory, the end of the host on dispose. */
abstract class HostedModel {
  readonly crashed: Promise<Error>;
  private readonly lifetime: Lifetime;
  private readonly memory: MemoryFigure;
  protected readonly promptEvents: ModelHost["promptEvents"];
  private readonly refresh: NodeJS.Timeout;
  /** Why the host died, once it did: every later call fails with it (retryable), even after the cache unloaded it. */
  private crashError: Error | null = null;

  constructor(
    readonly descriptor: ModelDescriptor,
    private readonly host: ModelHost,
    memoryBytes: Bytes,
  ) {
    this.lifetime = new Lifetime(descriptor);
    this.memory = new MemoryFigure(memoryBytes);
    this.crashed = host.crashed;
    this.promptEvents = host.promptEvents;
    this.refresh = setInterval(() => void this.measure(), MEMORY_REFRESH_MS);
    this.refresh.unref();
    void host.crashed.then((error) => {
      this.crashError = error;
      clearInterval(this.refresh);
    });
  }

  /** The host's memory as the OS measured it last. */
  get memoryBytes(): Bytes {
    return this.memory.bytes;
  }

  onMemoryChange(listener: (bytes: Bytes) => void): () => void {
    return this.memory.subscribe(listener);
  }

  get pid(): number {
    return this.host.pid;
  }

  get disposed(): boolean {
    return this.lifetime.disposed;
  }

  private async measure(): Promise<void> {
    if (!this.host.alive) return;
    const fromOs = await processMemory(this.host.pid);
    if (fromOs !== null) {
      this.memory.set(fromOs);
      return;
    }
    const rss = await this.host.request({ type: "memory" }).answer.catch(() => null);
    if (rss?.type === "result" && typeof rss.value === "number") this.memory.set(rss.value);
  }

  /** Calls a method of the model in the host; the signal becomes an abort message, streamed text comes to `onText`. */
  protected call<T>(
    method: CallMethod,
    args: unknown[],
    signal?: AbortSignal,
    onText?: (text: string) => void,
  ): Promise<T> {
    if (this.crashError) return Promise.reject(this.crashError);
    return this.lifetime.run(async () => {
      const { id, answer } = this.host.request(
        { type: "call", method, args, stream: onText !== undefined },
        (event) => {
          if (event.type === "text") onText?.(event.text);
        },
      );
      // The call's own signal and the model's lifetime each abort it: a listener on each (no combined signal to build
      // per call, which costs more than the two listeners).
      const signals = signal ? [signal, this.lifetime.signal] : [this.lifetime.signal];
      let aborted = false;
      const onAbort = () => {
        if (!aborted) this.host.abort(id);
        aborted = true;
      };
      if (signals.some((s) => s.aborted)) onAbort();
      else for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
      try {
        return ((await answer) as Extract<HostAnswer, { type: "result" }>).value as T;
      } finally {
        for (const s of signals) s.removeEventListener("abort", onAbort);
      }
    });
  }

  /** Generation options as they cross: every plain field as it is; the signal and the text callback stay here. */
  protected generate(
    method: "complete" | "chat",
    input: unknown,
    options: GenerationOptions,
  ): Promise<GenerationResult> {
    const { signal, onText, ...plain } = options;
    return this.call(method, [input, plain], signal, onText);
  }

  dispose(): Promise<void> {
    return this.lifetime.dispose(async () => {
      clearInterval(this.refresh);
      this.memory.clear();
      await this.host.shutdown();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

class HostedTextModel extends HostedModel implements TextModel {
  readonly kind = "text";

  complete(prompt: string, options: GenerationOptions = {}): Promise<GenerationResult> {
    return this.generate("complete", prompt, options);
  }

  chat(messages: ChatMessage[], options: ChatOptions = {}): Promise<GenerationResult> {
    return this.generate("chat", messages, options);
  }

  embed(inputs: string[], signal?: AbortSignal, options: EmbedOptions = {}): Promise<EmbeddingResult> {
    return this.call("embed", [inputs, options], signal);
  }

  tokenize(text: string): Promise<number[]> {
    return this.call("tokenize", [text]);
  }

  warm(signal?: AbortSignal): Promise<void> {
    return this.call("warm", [], signal);
  }

  onPromptStore(listener: (event: PromptStoreEvent) => void): () => void {
    return this.promptEvents.subscribe(listener);
  }
}

class HostedTensorModel extends HostedModel implements TensorModel {
  readonly kind = "tensor";

  run(inputs: Record<string, TensorInput>, signal?: AbortSignal): Promise<Record<string, TensorOutput>> {
    return this.call("run", [inputs], signal);
  }
}
