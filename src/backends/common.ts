/** Small pieces every backend shares: abort handling, thread counts, a lifetime that ends with dispose. */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Aborted, ContextLengthExceeded, Disposed } from "../errors/index.js";
import type { Bytes, ModelDescriptor } from "../models/types.js";

/** Throws `Aborted` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new Aborted(`${what} was aborted`, { cause: signal.reason });
}

/**
 * The context rule every text backend applies, in one place: a prompt may use the context but for one token, so that
 * a generation can always produce at least one; a generation stops when the context is full. `truncate` is the
 * request's `truncatePromptTokens` (-1 = as much as fits, n > 0 = at most n tokens). Returns how many prompt tokens
 * may be kept.
 */
export function promptTokenLimit(contextSize: number, truncate: number | undefined): number {
  const fits = Math.max(0, contextSize - 1);
  return truncate !== undefined && truncate > 0 ? Math.min(truncate, fits) : fits;
}

/** Most tokens a generation may produce after `promptTokens`: what the request asks, capped by the context left. */
export function generationTokenLimit(contextSize: number, promptTokens: number, requested: number | undefined): number {
  const room = Math.max(1, contextSize - promptTokens);
  return requested === undefined ? room : Math.max(1, Math.min(requested, room));
}

/** The refusal of a prompt (or input) of `tokens` tokens that the context cannot hold. */
export function contextLengthExceeded(
  param: string,
  tokens: number,
  contextSize: number,
  what = "a prompt",
): ContextLengthExceeded {
  const limit = Math.max(0, contextSize - 1);
  return new ContextLengthExceeded(
    `${param}: ${tokens} tokens, but the model is loaded with a context of ${contextSize} tokens (backend.context_size) and ${what} may use at most ${limit}; shorten it, raise backend.context_size, or ask for truncation (docs/api.md, "Bounded requests")`,
    { details: { param, prompt_tokens: tokens, limit_tokens: limit, context_size: contextSize } },
  );
}

/**
 * CPU threads for inference — the one rule every backend (and every model host process) uses.
 *
 * `configured > 0` is kept, capped at the logical cores this process may use (`cores`): more threads than cores only
 * slows llama.cpp down. `configured = 0` ("auto") is the physical cores less one, and at least one: llama.cpp's
 * worker threads spin-wait for each other after every step, so when a thread is descheduled for another process, all
 * the others spin through that time slice, and generation collapses. Measured on the generated models on a 2-core VM
 * shared with other work, 2 threads gave 0.00–0.03x the tokens/s of 1 thread, busy or not (`npm run bench` reports
 * auto vs 1 vs all cores, quiet and with a busy process). Leaving one core free means one competing busy process (or
 * the server's own event loop) never takes a core a spinning thread waits on; a single thread has no one to wait for.
 * `physicalCores` is what the runtime reports as cores useful for math (hyper-threads share a core's math units);
 * `cores` defaults to this machine's and is a parameter so the rule can be tested as a table.
 */
export function threadCount(configured: number, physicalCores: number, cores: number = availableParallelism()): number {
  const usable = Math.max(1, cores);
  if (configured > 0) return Math.min(configured, usable);
  return Math.max(1, Math.min(physicalCores, usable) - 1);
}

/**
 * A loaded model's measured memory when it can change (a model host is measured again while it runs): the latest
 * figure, and the listeners `onMemoryChange` subscribed, told of each new one.
 */
export class MemoryFigure {
  private readonly listeners = new Set<(bytes: Bytes) => void>();

  constructor(private current: Bytes) {}

  get bytes(): Bytes {
    return this.current;
  }

  set(bytes: Bytes): void {
    if (bytes === this.current) return;
    this.current = bytes;
    for (const listener of [...this.listeners]) listener(bytes);
  }

  subscribe(listener: (bytes: Bytes) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forgets every listener (the model is gone). */
  clear(): void {
    this.listeners.clear();
  }
}

/** Whether a process runs (one of another user's counts: signalling it is refused, not failed). */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Events to listeners, where those sent before the first listener came are held for it (a model's load-time events). */
export class HeldEvents<T> {
  private readonly listeners = new Set<(event: T) => void>();
  private held: T[] = [];

  emit = (event: T): void => {
    if (this.listeners.size === 0) this.held.push(event);
    for (const listener of [...this.listeners]) listener(event);
  };

  subscribe(listener: (event: T) => void): () => void {
    this.listeners.add(listener);
    const held = this.held;
    this.held = [];
    for (const event of held) listener(event);
    return () => this.listeners.delete(listener);
  }
}

/**
 * The lifetime of a loaded model: tracks calls in flight so `dispose()` can abort them and wait for them, and makes
 * every call after dispose throw `Disposed`. `dispose()` runs the release function once, however often it is called.
 */
export class Lifetime {
  private readonly controller = new AbortController();
  private readonly inFlight = new Set<Promise<unknown>>();
  private disposing: Promise<void> | undefined;

  constructor(private readonly descriptor: ModelDescriptor) {}

  get disposed(): boolean {
    return this.disposing !== undefined;
  }

  /** Fires when the model is disposed; combine it with a call's own signal. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Runs `work` as a tracked call; rejects with `Disposed` if the model is already disposed. */
  run<T>(work: () => Promise<T>): Promise<T> {
    if (this.disposing) {
      return Promise.reject(
        new Disposed(`model ${this.descriptor.name} was unloaded`, { details: { model: this.descriptor.name } }),
      );
    }
    const call = work();
    this.inFlight.add(call);
    const forget = () => this.inFlight.delete(call);
    call.then(forget, forget);
    return call;
  }

  /** Aborts calls in flight, waits for them to settle, then releases the model's resources (once). */
  dispose(release: () => Promise<void>): Promise<void> {
    this.disposing ??= (async () => {
      this.controller.abort(new Disposed(`model ${this.descriptor.name} was unloaded`));
      await Promise.allSettled([...this.inFlight]);
      await release();
    })();
    return this.disposing;
  }
}

/**
 * Physical CPU cores: distinct (physical id, core id) pairs in /proc/cpuinfo on Linux, else the logical CPU count.
 * Hyper-threads share a core's math units, so counting them would oversubscribe inference.
 */
export function physicalCores(): number {
  try {
    const cores = new Set<string>();
    let physical = "0";
    for (const line of readFileSync("/proc/cpuinfo", "utf8").split("\n")) {
      const [key, value] = line.split(":").map((part) => part.trim());
      if (key === "physical id") physical = value ?? "0";
      if (key === "core id") cores.add(`${physical}:${value}`);
    }
    if (cores.size > 0) return cores.size;
  } catch {
    // not Linux, or /proc unavailable
  }
  return Math.max(1, availableParallelism());
}

/** A signal that fires when any of the given ones does. */
export function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
}
