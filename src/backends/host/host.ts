/**
 * A model host seen from Inferno: the child process, its pipe, and the requests in flight on it. Whatever way the host
 * ends — asked to, killed, crashed, or by sending something that does not decode — every request in flight settles,
 * and an end nobody asked for settles `crashed`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import type { BackendConfig } from "../../config/schema.js";
import { ModelCrashed } from "../../errors/index.js";
import type { ModelFormat } from "../../models/types.js";
import { HeldEvents, withoutFlags, withoutTsx } from "../common.js";
import type { PromptStoreEvent } from "../types.js";
import {
  encodeFrame,
  type FromHost,
  FrameReader,
  fromWireError,
  HOST_FD,
  parseFromHost,
  ProtocolError,
  type ToHost,
} from "./protocol.js";

/** The host's entry module: main.ts beside this file when running from source (tsx), main.js when compiled. */
export const DEFAULT_HOST_ENTRY = fileURLToPath(
  new URL(import.meta.url.endsWith(".ts") ? "./main.ts" : "./main.js", import.meta.url),
);

/**
 * How long a host asked to exit may go without progress (disposing of its model: each prompt prefix it saves is
 * reported) before it is killed, in milliseconds; and the most its exit may take in all.
 */
const SHUTDOWN_GRACE_MS = 5000;
const SHUTDOWN_MAX_MS = 120_000;

/**
 * The watchdog. A host with work in flight (a request, or being asked to exit) that has sent nothing for
 * `PING_AFTER_MS` is sent a `ping`, which its event loop answers at once whatever llama.cpp is doing (generation and
 * loading run on llama.cpp's own threads). A host that stays silent past its bound — stopped (SIGSTOP), deadlocked, or
 * swapped out beyond use — is killed and its model counted as crashed: its requests fail with `ModelCrashed` (503 and
 * `Retry-After`), its leases end, and the next request loads it again.
 *
 * The bound scales with the work: `silenceMs` (`backend.host_timeout_seconds`) plus `SILENCE_PER_MIB_MS` for each MiB
 * of the largest request in flight, since a host does some work proportional to its input on its main thread
 * (tokenizing a prompt, compiling a JSON schema into a grammar, decoding the message).
 */
const PING_AFTER_MS = 1000;
export const DEFAULT_SILENCE_MS = 30_000;
const SILENCE_PER_MIB_MS = 1000;
const MIB = 1024 * 1024;

/**
 * Node flags for a host: the parent's own (e.g. `--max-old-space-size`), without those that cannot apply twice (an
 * inspector port, the test runner's) and without a parent's code given on the command line (`node -e`/`-p`, with its
 * `--input-type`): a host given it would run that code instead of its entry — one that starts Inferno starts a host
 * of its own, and so on. tsx (`--import tsx` when running from source) goes only to a TypeScript entry — which gets it
 * also when the parent was started some other way —, never to a compiled one: it costs a host ~35 MiB and its
 * start-up.
 */
function hostExecArgv(entry: string): string[] {
  const typescript = entry.endsWith(".ts");
  const inherited = withoutEval(process.execArgv).filter((flag) => !/^--(inspect|debug|test)/.test(flag));
  if (!typescript) return withoutTsx(inherited);
  if (!inherited.some((flag) => flag.includes("tsx"))) inherited.push("--import", import.meta.resolve("tsx"));
  return inherited;
}

/** A flag that gives code on the command line (or its type), its value in the next argument or after `=`. */
const EVAL_FLAG = /^(-e|--eval|-p|--print|-pe|--input-type)(=|$)/;

/** Node flags without code given on the command line: `-e`/`--eval`/`-p`/`--print` with their code, `--input-type`. */
export function withoutEval(flags: readonly string[]): string[] {
  return withoutFlags(flags, EVAL_FLAG, () => true);
}

/** Hosts still running: killed when this process exits by any path that runs exit handlers. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A request: a message to the host that carries an id and is answered. */
export type HostRequest = DistributiveOmit<Extract<ToHost, { id: number }>, "id">;
export type HostAnswer = Extract<FromHost, { type: "loaded" | "result" }>;
type HostEvent = Extract<FromHost, { type: "progress" | "text" }>;

interface Pending {
  /** The request's size on the pipe: the watchdog's bound grows with it. */
  bytes: number;
  resolve(answer: HostAnswer): void;
  reject(error: Error): void;
  onEvent: ((event: HostEvent) => void) | undefined;
}

export interface HostStartOptions {
  /** The runtime the host starts at once (`init`), so a later load pays no start-up. */
  format: ModelFormat;
  gpu: BackendConfig["gpu"];
  /** The entry module. Default: `DEFAULT_HOST_ENTRY`; tests give one that misbehaves. */
  entry?: string;
  /** The watchdog's bound on silence for work of no size, in milliseconds (see `DEFAULT_SILENCE_MS`). */
  silenceMs?: number;
}

export class ModelHost {
  readonly pid: number;
  readonly gpu: BackendConfig["gpu"];
  readonly format: ModelFormat;
  /** Resolves when the host's runtime started; rejects when it could not start or the host ended first. */
  readonly ready: Promise<void>;
  /** Resolves with the reason when the host ended by itself (crash, signal, exit, undecodable message); never otherwise. */
  readonly crashed: Promise<Error>;
  /** Resolves once the process has exited, however it ended. */
  readonly exited: Promise<void>;
  /** The model's name once one is loaded, for messages. */
  modelName: string | null = null;
  /** What the model's prompt store reports (held until the hosted model subscribes). */
  readonly promptEvents = new HeldEvents<PromptStoreEvent>();

  private readonly child: ChildProcess;
  private readonly channel: Socket;
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private endReason: Error | null = null;
  /** The signal that ended the process, once it has ended by one. */
  exitSignal: NodeJS.Signals | null = null;
  /** Someone waits for `ready`. */
  private awaited = false;
  /** True once Inferno decided to end the host: its exit is then no crash. */
  private ending = false;
  private settleReady!: { resolve(): void; reject(error: Error): void };
  private readonly silenceMs: number;
  /** When the host last sent anything (monotonic ms), or when it was last given work while idle. */
  private heardAt = performance.now();
  private pinged = false;
  /** When the host last reported progress on its exit (a prompt prefix saved): a pong is no progress. */
  private progressAt = performance.now();
  private watchdog: NodeJS.Timeout | null = null;
  private resolveCrashed!: (error: Error) => void;

  private constructor(options: HostStartOptions) {
    const entry = options.entry ?? DEFAULT_HOST_ENTRY;
    this.gpu = options.gpu;
    this.format = options.format;
    this.silenceMs = options.silenceMs ?? DEFAULT_SILENCE_MS;
    // The host's stdout goes to Inferno's stderr: nothing a runtime prints may end up in `--json` output. Its own
    // process group (detached): a Ctrl-C in the terminal reaches the server only, which ends its hosts in order — a
    // host signalled while it was still starting (before it ignores SIGINT) or loading llama.cpp's binary would die
    // with a stack trace. It still exits when its channel to the server ends (main.ts), so none outlives the server.
    this.child = spawn(process.execPath, [...hostExecArgv(entry), entry], {
      stdio: ["ignore", 2, "inherit", "pipe"],
      detached: true,
    });
    this.pid = this.child.pid ?? -1;
    running.add(this.child);
    this.channel = this.child.stdio[HOST_FD] as Socket;
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.ready.catch(() => undefined);
    this.crashed = new Promise((resolve) => (this.resolveCrashed = resolve));
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        running.delete(this.child);
        this.end(this.exitReason(code, signal), !this.ending);
        resolve();
      });
    });
    this.child.once("error", (error) => this.end(this.crash(`could not be started: ${error.message}`), !this.ending));
    this.channel.on("data", (chunk: Buffer) => this.receive(chunk));
    this.channel.on("error", () => undefined);
    // The pipe closes when the process dies; its exit (which names the signal) usually follows at once.
    this.channel.on("close", () => {
      setTimeout(() => this.end(this.crash("lost its channel to Inferno"), !this.ending), 1000);
    });
    this.updateRef();
    this.write({ type: "init", format: options.format, gpu: options.gpu });
  }

  /** Starts a host process and its runtime (see `ready`). */
  static start(options: HostStartOptions): ModelHost {
    return new ModelHost(options);
  }

  /** `ready`, for a caller that waits on it: the host then keeps Inferno's event loop alive until it is ready. */
  whenReady(): Promise<void> {
    this.awaited = true;
    this.updateRef();
    return this.ready.finally(() => {
      this.awaited = false;
      this.updateRef();
    });
  }

  /** False once the host ended or is being ended. */
  get alive(): boolean {
    return this.endReason === null && !this.ending;
  }

  /** Sends a request; `onEvent` receives its progress and streamed text. Rejects at once when the host has ended. */
  request(message: HostRequest, onEvent?: (event: HostEvent) => void): { id: number; answer: Promise<HostAnswer> } {
    const id = this.nextId++;
    if (this.endReason) return { id, answer: Promise.reject(this.endReason) };
    const frame = encodeFrame({ ...message, id } as ToHost);
    // Silence while there was no work is no fault: the watchdog counts from when work arrives.
    if (!this.busy) this.heard();
    const answer = new Promise<HostAnswer>((resolve, reject) =>
      this.pending.set(id, { bytes: frame.length, resolve, reject, onEvent }),
    );
    this.updateRef();
    if (this.channel.writable) this.channel.write(frame);
    return { id, answer };
  }

  /** Asks the host to stop request `id` (a generation returns what it has, finish reason "abort"). */
  abort(id: number): void {
    if (this.pending.has(id)) this.write({ type: "abort", id });
  }

  /** Ends the host: it disposes its model and exits; killed if it has not within a few seconds. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.endReason === null && !this.ending) {
      this.heard();
      this.ending = true;
      this.request({ type: "dispose" }).answer.catch(() => undefined);
      const started = performance.now();
      this.progressAt = started;
      const timer = setInterval(() => {
        const now = performance.now();
        if (now - this.progressAt > SHUTDOWN_GRACE_MS || now - started > SHUTDOWN_MAX_MS) this.child.kill("SIGKILL");
      }, 250);
      await this.exited;
      clearInterval(timer);
    }
    await this.exited;
  }

  /** Kills the host at once; requests in flight reject with `reason`. Not counted as a crash. */
  kill(reason: Error): void {
    this.ending = true;
    this.end(reason, false);
  }

  private write(message: ToHost): void {
    if (this.channel.writable) this.channel.write(encodeFrame(message));
  }

  /** The host has work in flight: requests, or an exit it was asked for. */
  private get busy(): boolean {
    return this.endReason === null && (this.pending.size > 0 || this.ending);
  }

  private heard(): void {
    this.heardAt = performance.now();
    this.pinged = false;
  }

  /** The longest the host may now stay silent: the base bound plus its share for the largest request in flight. */
  get silenceBoundMs(): number {
    let bytes = 0;
    for (const pending of this.pending.values()) bytes = Math.max(bytes, pending.bytes);
    return this.silenceMs + Math.ceil(bytes / MIB) * SILENCE_PER_MIB_MS;
  }

  /** How long a busy host has sent nothing, in milliseconds (0 when it is idle). */
  get silentForMs(): number {
    return this.busy ? performance.now() - this.heardAt : 0;
  }

  /**
   * Runs while the host is busy: pings it when it is quiet, kills it when it stays silent past its bound. Started when
   * work arrives; it stops at its first tick that finds the host idle (or when the host ends), not at the end of each
   * request: back-to-back requests share one timer instead of making and clearing one each (~0.015 ms on the hop's
   * path, measured).
   */
  private watch(): void {
    if (this.busy && this.watchdog === null) {
      this.watchdog = setInterval(() => this.check(), Math.min(PING_AFTER_MS, this.silenceMs / 4));
      this.watchdog.unref();
    }
  }

  private stopWatching(): void {
    if (this.watchdog === null) return;
    clearInterval(this.watchdog);
    this.watchdog = null;
  }

  private check(): void {
    if (!this.busy) return this.stopWatching();
    const silent = this.silentForMs;
    const bound = this.silenceBoundMs;
    if (silent > bound) {
      const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;
      this.end(
        this.crash(
          `stopped answering (nothing for ${seconds(silent)} while it had work, beyond the bound of ${seconds(bound)}: backend.host_timeout_seconds); it was killed`,
        ),
        !this.ending,
      );
    } else if (silent >= PING_AFTER_MS && !this.pinged) {
      this.pinged = true;
      this.write({ type: "ping" });
    }
  }

  /** A host with requests in flight keeps Inferno's event loop alive; an idle one (a spare) does not. */
  private updateRef(): void {
    this.watch();
    const busy = (this.pending.size > 0 || this.awaited) && this.endReason === null;
    // A host that was told to end, or died, holds the loop until its exit arrives: that settles `exited`.
    const exiting = this.endReason !== null && this.child.exitCode === null && this.child.signalCode === null;
    if (busy) this.channel.ref();
    else this.channel.unref();
    if (busy || exiting) this.child.ref();
    else this.child.unref();
  }

  private receive(chunk: Buffer): void {
    if (this.endReason) return;
    this.heard();
    let messages: FromHost[];
    try {
      messages = this.reader.push(chunk).map(parseFromHost);
    } catch (error) {
      const what = error instanceof ProtocolError ? error.message : String(error);
      this.end(this.crash(`sent ${what}`), !this.ending);
      return;
    }
    for (const message of messages) this.dispatch(message);
  }

  private dispatch(message: FromHost): void {
    switch (message.type) {
      case "ready":
        this.settleReady.resolve();
        return;
      case "pong":
        return;
      case "prompt":
        this.progressAt = performance.now();
        this.promptEvents.emit(message.event);
        return;
      case "progress":
      case "text":
        this.pending.get(message.id)?.onEvent?.(message);
        return;
      case "loaded":
      case "result":
        this.settle(message.id)?.resolve(message);
        return;
      case "error":
        if (message.id === null) this.settleReady.reject(fromWireError(message.error));
        else this.settle(message.id)?.reject(fromWireError(message.error));
        return;
    }
  }

  private settle(id: number): Pending | undefined {
    const pending = this.pending.get(id);
    this.pending.delete(id);
    this.updateRef();
    return pending;
  }

  private crash(how: string): ModelCrashed {
    const model = this.modelName === null ? "" : ` of ${this.modelName}`;
    return new ModelCrashed(
      `the model host${model} (pid ${this.pid}) ${how}; it is unloaded and loads again on the next request (after cache.load_failure_cooldown_seconds when it crashed twice within that time)`,
      {
        details: {
          ...(this.modelName === null ? {} : { model: this.modelName }),
          pid: this.pid,
          retry_after_seconds: 1,
        },
      },
    );
  }

  private exitReason(code: number | null, signal: NodeJS.Signals | null): Error {
    this.exitSignal = signal;
    return this.crash(signal ? `was ended by signal ${signal}` : `exited with code ${code}`);
  }

  /** The one way a host ends: everything in flight rejects, a crash is reported, the process is made sure dead. */
  private end(reason: Error, crashed: boolean): void {
    if (this.endReason) return;
    this.endReason = reason;
    this.settleReady.reject(reason);
    for (const pending of this.pending.values()) pending.reject(reason);
    this.pending.clear();
    this.stopWatching();
    this.updateRef();
    if (crashed) this.resolveCrashed(reason);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    this.channel.destroy();
  }
}
