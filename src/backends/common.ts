/**
 * Small pieces every backend shares: abort handling, thread counts, a lifetime that ends with dispose; and the checks of
 * a chat request that need no model (below), which the server runs too.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Aborted, BadRequest, ContextLengthExceeded, Disposed } from "../errors/index.js";
import type { Bytes, ModelDescriptor } from "../models/types.js";
import { checkSchema } from "./json-schema.js";
import type { ChatMessage, ChatOptions, GenerationOptions, OutputFormat, ToolCall, ToolDefinition } from "./types.js";

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

// ---------------------------------------------------------------------------------------------------------------------
// Checks of a chat request that need no model: tool definitions, `tool_choice`, structured output schemas, and how
// tool messages answer the calls of an earlier assistant message. One home for both users: the server runs
// `checkChat` before it leases a model (bad input is a 400 with nothing loaded), and the llama backend builds its
// chat history from `pairToolResults`. Error paths use the request's own field names (`FieldNames`; by default
// OpenAI's chat completions: `messages[3].tool_call_id`, `tools[0].function.parameters`, which Ollama's chat API
// shares). Pure: plain data in, plain data out.

/** Function names a model can write and a client can match: OpenAI's rule. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function refuse(param: string, message: string): never {
  throw new BadRequest(`${param}: ${message}`, { details: { param } });
}

/** How a request spells the fields an error names (messages and tools may be spelled differently per API). */
export interface FieldNames {
  /** A message, or one of its fields (`tool_call_id`). */
  message(index: number, field?: string): string;
  /** A tool call of an assistant message, or one of its fields (`function.arguments`). */
  toolCall(messageIndex: number, callIndex: number, field?: string): string;
  /** A field of a tool definition (`function.name`, `function.parameters`). */
  tool(index: number, field: "name" | "parameters"): string;
  toolChoice: string;
  /** The path of the structured-output format's schema. */
  formatSchema: string;
}

const suffix = (field?: string) => (field ? `.${field}` : "");

/** OpenAI chat completions' names (Ollama's chat API uses the same for messages and tools). */
export const CHAT_FIELDS: FieldNames = {
  message: (index, field) => `messages[${index}]${suffix(field)}`,
  toolCall: (m, c, field) => `messages[${m}].tool_calls[${c}]${suffix(field)}`,
  tool: (index, field) => `tools[${index}].function.${field}`,
  toolChoice: "tool_choice",
  formatSchema: "response_format.json_schema.schema",
};

/** A tool's parameters schema (default: any object), checked. Throws BadRequest naming the keyword. */
export function toolParameters(
  tool: ToolDefinition,
  index: number,
  fields: FieldNames = CHAT_FIELDS,
): Record<string, unknown> {
  const schema = tool.parameters ?? { type: "object" };
  checkSchema(schema, fields.tool(index, "parameters"));
  return schema;
}

/** A call's arguments as an object; BadRequest naming `param` when they are not a JSON object text. */
export function parseArguments(text: string, param: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text === "" ? "{}" : text);
  } catch {
    refuse(param, `expected the arguments as a JSON object text, found ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) refuse(param, "expected a JSON object");
  return value as Record<string, unknown>;
}

/** An assistant message's calls, each with the result a later tool message gave it. */
export interface AnsweredCall {
  call: ToolCall;
  /** The tool message's content. */
  result: string;
}

/** The conversation with tool messages folded into the calls they answer. */
export type PairedMessage =
  { role: "system" | "user"; content: string } | { role: "assistant"; content: string | null; calls: AnsweredCall[] };

/**
 * Folds each tool message into the call it answers: the call of the nearest earlier assistant message with that
 * `toolCallId`; without an id, the earliest unanswered call with the message's `name`, else the earliest unanswered
 * call. Tool messages must follow the assistant message (or other tool messages), and every call must be answered
 * before the next non-tool message. Throws BadRequest naming the message otherwise.
 */
export function pairToolResults(messages: readonly ChatMessage[], fields: FieldNames = CHAT_FIELDS): PairedMessage[] {
  const paired: PairedMessage[] = [];
  let open: { index: number; calls: ToolCall[]; results: Map<string, string> } | null = null;
  const closeOpen = () => {
    if (!open) return;
    const unanswered = open.calls.findIndex((c) => !open?.results.has(c.id));
    if (unanswered >= 0) {
      const call = open.calls[unanswered] as ToolCall;
      refuse(
        fields.toolCall(open.index, unanswered),
        `no tool message answers the call "${call.id}" (${call.name}); send its result as a message with role "tool" and tool_call_id "${call.id}"`,
      );
    }
    const current = open;
    paired.push({
      role: "assistant",
      content: (messages[current.index] as { content: string | null }).content,
      calls: current.calls.map((call) => ({ call, result: current.results.get(call.id) as string })),
    });
    open = null;
  };
  for (const [index, message] of messages.entries()) {
    if (message.role === "tool") {
      if (!open)
        refuse(fields.message(index), "a tool result must follow the assistant message (or tool call) it answers");
      const results: Map<string, string> = open.results;
      const unanswered = open.calls.filter((c) => !results.has(c.id));
      const call =
        message.toolCallId !== undefined
          ? unanswered.find((c) => c.id === message.toolCallId)
          : (unanswered.find((c) => c.name === message.name) ?? unanswered[0]);
      if (!call) {
        const param = fields.message(index, message.toolCallId !== undefined ? "tool_call_id" : undefined);
        const known = open.calls.map((c) => `"${c.id}"`).join(", ");
        refuse(param, `matches no unanswered tool call of ${fields.message(open.index)} (its calls: ${known})`);
      }
      results.set(call.id, message.content);
      continue;
    }
    closeOpen();
    if (message.role === "assistant" && message.toolCalls && message.toolCalls.length > 0) {
      message.toolCalls.forEach((c, i) => parseArguments(c.arguments, fields.toolCall(index, i, "function.arguments")));
      const ids = new Set(message.toolCalls.map((c) => c.id));
      if (ids.size !== message.toolCalls.length) refuse(fields.message(index), "tool call ids must be unique");
      open = { index, calls: message.toolCalls, results: new Map() };
      continue;
    }
    paired.push(message.role === "assistant" ? { role: "assistant", content: message.content, calls: [] } : message);
  }
  closeOpen();
  return paired;
}

/**
 * Whether a generation may call tools, and how: `none` (plain text), `auto`, `forced` (a grammar writes one call), or
 * `either` (`auto` with a structured-output format: a grammar writes one call or the answer in the format).
 */
export type ToolMode =
  | { mode: "none" }
  | { mode: "auto" }
  | { mode: "forced"; tools: ToolDefinition[] }
  | { mode: "either"; tools: ToolDefinition[]; format: OutputFormat };

export function toolMode(options: ChatOptions): ToolMode {
  const tools = options.tools ?? [];
  const choice = options.toolChoice ?? "auto";
  if (tools.length === 0 || choice === "none") return { mode: "none" };
  if (choice === "auto") return options.format ? { mode: "either", tools, format: options.format } : { mode: "auto" };
  if (choice === "required") return { mode: "forced", tools };
  return { mode: "forced", tools: tools.filter((t) => t.name === choice.name) };
}

/** Checks a structured-output format (its schema compiles to a grammar). `param` names the schema's field. */
export function checkFormat(format: GenerationOptions["format"], param: string): void {
  if (format?.type === "json_schema") checkSchema(format.schema, param);
}

/**
 * Everything about a chat request that can be wrong without a model: tool names and parameter schemas, a
 * `tool_choice` naming no tool, a schema that cannot compile, and tool messages that answer nothing. Throws BadRequest naming the field.
 */
export function checkChat(
  messages: readonly ChatMessage[],
  options: ChatOptions,
  fields: FieldNames = CHAT_FIELDS,
): void {
  const tools = options.tools ?? [];
  const names = new Set<string>();
  for (const [index, tool] of tools.entries()) {
    const param = fields.tool(index, "name");
    if (!FUNCTION_NAME.test(tool.name))
      refuse(param, `expected 1-64 letters, digits, "_" or "-", found ${JSON.stringify(tool.name)}`);
    if (names.has(tool.name)) refuse(param, `the function name "${tool.name}" is defined twice`);
    names.add(tool.name);
    toolParameters(tool, index, fields);
  }
  const choice = options.toolChoice;
  if (typeof choice === "object" && !names.has(choice.name)) {
    refuse(
      fields.toolChoice,
      `names the function "${choice.name}", which is not among the tools (${[...names].join(", ") || "none given"})`,
    );
  }
  if (choice === "required" && tools.length === 0) refuse(fields.toolChoice, '"required" needs at least one tool');
  checkFormat(options.format, fields.formatSchema);
  pairToolResults(messages, fields);
}

/** A flag that loads a module ahead of the entry, its value in the next argument or after `=`. */
const PRELOAD_FLAG = /^--(import|require|loader|experimental-loader)(=|$)/;

/**
 * Node flags (`process.execArgv`) without those that load tsx (`--import tsx`, `--import=…/tsx/…`, `--require` and
 * `--loader` alike): what a child running JavaScript needs of a parent run from the TypeScript source.
 */
export function withoutTsx(flags: readonly string[]): string[] {
  return withoutFlags(flags, PRELOAD_FLAG, (value) => value.includes("tsx"));
}

/**
 * Node flags without each flag `named` matches (a flag whose value comes after `=` or in the next argument) whose value
 * `drops` says goes, that value with it.
 */
export function withoutFlags(flags: readonly string[], named: RegExp, drops: (value: string) => boolean): string[] {
  const kept: string[] = [];
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i] as string;
    const separate = named.test(flag) && !flag.includes("=");
    const value = separate ? (flags[i + 1] ?? "") : flag.slice(flag.indexOf("=") + 1);
    if (named.test(flag) && drops(value)) {
      if (separate) i++;
      continue;
    }
    kept.push(flag);
  }
  return kept;
}
