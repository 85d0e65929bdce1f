/**
 * What `inferno run MODEL [PROMPT]` does (its command line is in ../commands/run.ts), like `ollama run`: chat with a
 * GGUF model through its own chat template (`--raw` for a plain completion). With a prompt it answers once; without one
 * it is a chat, one turn per line read from stdin (`>>>` prompt on a terminal, `/bye` or end of input leaves, Ctrl-C
 * stops the current answer). When a server answers at the configured address it generates there — on the server's
 * cache, no second copy of the model — and says so; `--local` (or no server) runs the model in this process, through
 * the same runtime and cache as the server, for the command's lifetime: either way each answer is counted as a request.
 */
import { createInterface } from "node:readline";
import { physicalCores, threadCount } from "../../backends/common.js";
import { createBackends } from "../../backends/index.js";
import type { GenerationOptions, GenerationResult, TextModel } from "../../backends/types.js";
import type { Lease } from "../../cache/types.js";
import type { FlagValue, InfernoConfig } from "../../config/index.js";
import { isInfernoError, Unauthorized, UsageError } from "../../errors/index.js";
import { observeLoads } from "../../runtime/progress.js";
import { createRuntime } from "../../runtime/runtime.js";
import type { CliContext } from "../context.js";
import { configFlagValues } from "../flag-values.js";
import { COMMAND_FLAGS } from "../flags.js";
import { findServer } from "../live.js";
import { CHAT_HELP, type ChatSampling, describeParameters, parseChatCommand } from "./chat-commands.js";
import { managerFor } from "./models.js";

const FLAGS = COMMAND_FLAGS.run;
/**
 * Below this many tokens per second with more than one thread, generation has most likely collapsed under contention
 * (llama.cpp's spinning threads; see `threadCount`), and the hint names the setting that fixes it.
 */
export const LOW_TOKENS_PER_SECOND = 3;

export interface RunOptions extends Record<string, unknown> {
  model?: string;
  prompt?: string;
  raw?: boolean;
  system?: string;
  /** Always set: commands/run.ts gives the default. */
  maxTokens: string;
  temperature?: string;
  seed?: string;
  stream?: boolean;
  local?: boolean;
}

type Sampling = ChatSampling;

/** One turn to generate: chat messages, or a raw prompt. */
/** A turn of the CLI's chat: plain text messages only (no tools), as the server's chat route takes them too. */
type CliMessage = { role: "system" | "user" | "assistant"; content: string };
type Turn = { messages: CliMessage[] } | { prompt: string };

/** Where generation happens: a model loaded here, or a running server. */
interface Generator {
  readonly name: string;
  /** Load time in ms when the model was loaded by this command, else null. */
  readonly loadMs: number | null;
  generate(turn: Turn, options: GenerationOptions): Promise<GenerationResult>;
  close(): Promise<void>;
}

function parseNumber(flag: string, text: string, check: (n: number) => boolean, expected: string): number;
function parseNumber(
  flag: string,
  text: string | undefined,
  check: (n: number) => boolean,
  expected: string,
): number | undefined;
function parseNumber(
  flag: string,
  text: string | undefined,
  check: (n: number) => boolean,
  expected: string,
): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || !check(value)) {
    throw new UsageError(`${flag} expects ${expected}, found ${JSON.stringify(text)}`);
  }
  return value;
}

/** A value given positionally or by its flag, never both. */
function once(
  what: string,
  positional: string | undefined,
  flag: string | undefined,
  flagName: string,
): string | undefined {
  if (positional !== undefined && flag !== undefined) {
    throw new UsageError(`the ${what} was given twice, as an argument and with ${flagName}: give it once`);
  }
  return positional ?? flag;
}

/** A one-line progress indicator on stderr, shown only on a terminal and erased when done. */
function progressLine(ctx: CliContext, label: string): { update(fraction?: number): void; done(): void } {
  const stderr = ctx.out.stderr;
  if (!stderr.isTTY || ctx.globals.quiet) return { update: () => undefined, done: () => undefined };
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let frame = 0;
  let percent = "";
  const draw = () => stderr.write(`\r${frames[frame++ % frames.length]} ${label}${percent}\x1b[K`);
  const timer = setInterval(draw, 100);
  draw();
  return {
    update(fraction) {
      if (fraction !== undefined) percent = ` ${Math.round(fraction * 100)}%`;
    },
    done() {
      clearInterval(timer);
      stderr.write("\r\x1b[K");
    },
  };
}

/** A load's progress line, drawn from the load's first report (none when the model is already loaded). */
function loadProgress(ctx: CliContext): { update(model: string, fraction: number): void; done(): void } {
  let line: ReturnType<typeof progressLine> | null = null;
  return {
    update(model, fraction) {
      line ??= progressLine(ctx, `loading ${model}`);
      line.update(fraction);
    },
    done: () => line?.done(),
  };
}

/**
 * Runs the model in this process, through the same runtime as the server (its cache, its state file), so the command's
 * use is counted and saved like a request's: each answer is one request on the cache. The model is validated first, so
 * a broken file gets the same sentence as `models validate`, and leased right away (the first answer's request), so it
 * loads before the first prompt is read.
 */
async function localGenerator(ctx: CliContext, config: InfernoConfig, name: string): Promise<Generator> {
  const progress = loadProgress(ctx);
  // One command, one model: no spare host to keep ready, nothing else to warm; one answer at a time, so one sequence
  // when `backend.parallel` is auto (its 4 would hold 4 sequences' KV cache for nothing).
  const backend = { ...config.backend, parallel: config.backend.parallel || 1 };
  const backends = observeLoads(createBackends(backend, { spare: false }), progress.update);
  const runtime = await createRuntime(
    { ...config, backend, cache: { ...config.cache, enable_warmup: false } },
    { backends, environment: ctx.environment() },
  );
  const use = { capability: "text", task: "text generation" } as const;
  let first: Lease;
  const start = performance.now();
  try {
    const [validation] = await runtime.models.validate(name);
    if (validation && !validation.ok) throw validation.error;
    first = await runtime.cache.acquire(name, use);
  } catch (error) {
    await runtime.close();
    throw error;
  } finally {
    progress.done();
  }
  const loadMs = performance.now() - start;
  let pending: Lease | null = first;
  return {
    name: first.descriptor.name,
    loadMs,
    async generate(turn, options) {
      const lease = pending ?? (await runtime.cache.acquire(name, { ...use, signal: options.signal }));
      pending = null;
      try {
        // The cache leased a text model: it refuses other kinds for `use.capability` before any load.
        const model = lease.model as TextModel;
        return await ("messages" in turn ? model.chat(turn.messages, options) : model.complete(turn.prompt, options));
      } finally {
        lease.release();
      }
    },
    async close() {
      pending?.release();
      await runtime.close();
    },
  };
}

/** Generates on a running server; a refused API key is explained with the ways to give one. */
function serverGenerator(
  ctx: CliContext,
  server: NonNullable<Awaited<ReturnType<typeof findServer>>["server"]>,
  name: string,
): Generator {
  return {
    name,
    loadMs: null,
    async generate(turn, options) {
      try {
        return await server.client.generate(
          {
            model: name,
            ...turn,
            ...(options.maxTokens !== undefined ? { max_tokens: options.maxTokens } : {}),
            ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
            ...(options.seed !== undefined ? { seed: options.seed } : {}),
            ...(options.topP !== undefined ? { top_p: options.topP } : {}),
            ...(options.topK !== undefined ? { top_k: options.topK } : {}),
            ...(options.minP !== undefined ? { min_p: options.minP } : {}),
            ...(options.truncatePromptTokens !== undefined
              ? { truncate_prompt_tokens: options.truncatePromptTokens }
              : {}),
          },
          {
            ...(options.onText ? { onText: options.onText } : {}),
            ...(options.signal ? { signal: options.signal } : {}),
          },
        );
      } catch (error) {
        if (error instanceof Unauthorized) {
          throw new Unauthorized(
            `the server at ${server.url} refused the API key (${error.message}); give its key with --api-key KEY, ` +
              `INFERNO_SERVER__API_KEY=KEY or \`${ctx.command("config set server.api_key KEY")}\`, or run in this process with --local`,
            { cause: error },
          );
        }
        throw error;
      }
    },
    close: async () => undefined,
  };
}

/**
 * The flags given that set how the model loads (`--models-dir`, the backend flags): with them `run` loads the model in
 * this process even when a server answers, which would use its own models and settings and ignore them (`models demo
 * DIR`'s hint names `--models-dir`). With `--server` given too, the two contradict each other: a usage error.
 */
function loadFlagsOf(ctx: CliContext, flagValues: FlagValue[]): string[] {
  const flags = flagValues.filter((v) => v.key !== "server.api_key").map((v) => v.flag);
  if (flags.length > 0 && ctx.globals.server !== undefined) {
    throw new UsageError(
      `${flags.join(" and ")} set how a model loads in this process, and --server asks a running server, which loads ` +
        "with its own settings: give one or the other",
    );
  }
  return flags;
}

async function openGenerator(
  ctx: CliContext,
  config: InfernoConfig,
  name: string,
  local: boolean,
  loadFlags: string[],
): Promise<Generator> {
  if (!local) {
    const { server, url } = await findServer(ctx, config);
    if (server && loadFlags.length > 0) {
      ctx.out.info(
        `${loadFlags.join(" and ")} given: loading the model in this process, not on the running server at ${url} ` +
          "(it loads with its own settings)",
      );
    } else if (server) {
      ctx.out.info(`using the running server at ${url} (--local loads the model in this process instead)`);
      return serverGenerator(ctx, server, name);
    }
  }
  return localGenerator(ctx, config, name);
}

/** Tokens/s and load time with `--verbose`; the thread hint whenever generation crawled. */
function reportSpeed(
  ctx: CliContext,
  config: InfernoConfig,
  generator: Generator,
  result: GenerationResult,
  ms: number,
) {
  const { promptTokens, completionTokens } = result.usage;
  const perSecond = completionTokens / Math.max(ms / 1000, 1e-3);
  const load = generator.loadMs === null ? "on the server" : `loaded in ${Math.round(generator.loadMs)} ms`;
  ctx.out.debug(
    `${generator.name}: ${load}; ${promptTokens} prompt + ${completionTokens} completion tokens in ${Math.round(ms)} ms ` +
      `(${perSecond.toFixed(1)} tokens/s), finish: ${result.finishReason}`,
  );
  const threads = threadCount(config.backend.threads, physicalCores());
  if (generator.loadMs !== null && completionTokens >= 8 && perSecond < LOW_TOKENS_PER_SECOND && threads > 1) {
    ctx.out.warn(
      `generation ran at ${perSecond.toFixed(1)} tokens/s on ${threads} threads; if other programs use the CPU, fewer ` +
        `threads are often much faster: set backend.threads (\`${ctx.command("config set backend.threads 1")}\`, or --threads 1)`,
    );
  }
}

/** How to answer: with `sampling`, streamed to stdout when `stream`, until `signal` aborts. */
interface Answering {
  sampling: Sampling;
  stream: boolean;
  signal?: AbortSignal;
  /** Set when any of the answer was written. */
  shown?: { text: boolean };
}

/** Generates one answer, streamed to stdout when `stream`; `shown.text` tells whether any of it was written. */
async function answer(
  ctx: CliContext,
  generator: Generator,
  turn: Turn,
  { sampling, stream, signal, shown = { text: false } }: Answering,
) {
  const start = performance.now();
  const write = (text: string) => {
    if (text === "") return;
    shown.text = true;
    ctx.out.write(text);
  };
  const result = await generator.generate(turn, {
    ...sampling,
    ...(signal ? { signal } : {}),
    ...(stream ? { onText: write } : {}),
  });
  const ms = performance.now() - start;
  return { result, ms };
}

async function oneShot(
  ctx: CliContext,
  config: InfernoConfig,
  generator: Generator,
  turn: Turn,
  sampling: Sampling,
  stream: boolean,
) {
  const { result, ms } = await answer(ctx, generator, turn, { sampling, stream });
  if (ctx.out.json) {
    ctx.out.printJson({
      model: generator.name,
      text: result.text,
      finish_reason: result.finishReason,
      usage: { prompt_tokens: result.usage.promptTokens, completion_tokens: result.usage.completionTokens },
      load_ms: generator.loadMs === null ? null : Math.round(generator.loadMs),
      generate_ms: Math.round(ms),
    });
    return;
  }
  if (stream) ctx.out.write("\n");
  else ctx.out.print(result.text);
  reportSpeed(ctx, config, generator, result, ms);
}

/**
 * The chat: one user turn per line of stdin, the history kept; `/bye`, Ctrl-D or end of input leaves. A history that
 * outgrows the model's context loses its oldest turns (the system prompt and the new line stay), as `ollama run` does,
 * instead of ending the chat. On a terminal a turn that fails (a single line longer than the context, a server that
 * refused) is reported and the chat goes on; piped input stops at the first failure with its exit code, as a script
 * expects.
 */
async function chatLoop(
  ctx: CliContext,
  config: InfernoConfig,
  generator: Generator,
  options: { raw: boolean; system?: string; sampling: Sampling; stream: boolean },
) {
  const input = ctx.io.stdin;
  if (!input) throw new UsageError("no prompt given and no input to read one from: give PROMPT");
  const terminal = input.isTTY === true;
  const rl = createInterface({ input, output: ctx.io.stdout, terminal, prompt: ">>> " });
  const history: CliMessage[] = options.system ? [{ role: "system", content: options.system }] : [];
  const sampling: Sampling = { ...options.sampling };
  let current: AbortController | null = null;
  rl.on("SIGINT", () => {
    if (current) {
      current.abort();
      return;
    }
    ctx.io.stdout.write("\n(use /bye or Ctrl-D to leave)\n");
    rl.prompt();
  });
  if (terminal) ctx.out.info(`chatting with ${generator.name}: /? lists commands, /bye or Ctrl-D leaves`);
  const prompt = () => terminal && rl.prompt();
  prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text.startsWith("/")) {
        if ((await chatCommand(ctx, config, generator, text, history, sampling)) === "bye") break;
        prompt();
        continue;
      }
      if (text === "") {
        prompt();
        continue;
      }
      const turn: Turn = options.raw ? { prompt: text } : { messages: [...history, { role: "user", content: text }] };
      current = new AbortController();
      const turnSampling: Sampling = options.raw ? sampling : { ...sampling, truncatePromptTokens: -1 };
      let answered: Awaited<ReturnType<typeof answer>>;
      const shown = { text: false };
      try {
        answered = await answer(ctx, generator, turn, {
          sampling: turnSampling,
          stream: options.stream,
          signal: current.signal,
          shown,
        });
      } catch (error) {
        if (!terminal || !isInfernoError(error)) throw error;
        // The error on a line of its own, after any part of the answer that streamed.
        if (shown.text) ctx.out.write("\n");
        ctx.out.error(error);
        prompt();
        continue;
      } finally {
        current = null;
      }
      const { result, ms } = answered;
      if (options.stream) ctx.out.write("\n");
      else ctx.out.print(result.text);
      if (result.finishReason === "abort") ctx.out.info("(stopped)");
      if (!options.raw) {
        history.push({ role: "user", content: text }, { role: "assistant", content: result.text });
        // Cut short by the context, not by --max-tokens: the history had left it little room. Older turns make room for
        // the next answer (the model cut the oldest turns only as far as the prompt had to fit).
        if (result.finishReason === "length" && result.usage.completionTokens < (sampling.maxTokens ?? Infinity)) {
          dropOlderHalf(history);
          ctx.out.info("(the conversation filled the model's context: its older half is left out from now on)");
        }
      }
      reportSpeed(ctx, config, generator, result, ms);
      if (terminal) ctx.io.stdout.write("\n");
      prompt();
    }
  } finally {
    rl.close();
  }
}

/**
 * Applies one slash command of the chat to its history and sampling (see chat-commands.ts); "bye" when it leaves.
 * What it prints goes to stdout: it is the chat's own output, like the answers.
 */
async function chatCommand(
  ctx: CliContext,
  config: InfernoConfig,
  generator: Generator,
  line: string,
  history: CliMessage[],
  sampling: Sampling,
): Promise<"bye" | "continue"> {
  const command = parseChatCommand(line);
  const say = (text: string) => ctx.io.stdout.write(`${text}\n`);
  switch (command.kind) {
    case "bye":
      return "bye";
    case "help":
      say(CHAT_HELP);
      break;
    case "clear":
      history.splice(0, history.length, ...history.filter((m) => m.role === "system"));
      say("Cleared the conversation.");
      break;
    case "set-parameter":
      (sampling[command.key] as number) = command.value;
      say(`Set parameter '${command.name}' to '${command.value}'.`);
      break;
    case "set-system":
      history.splice(
        0,
        history.length,
        { role: "system", content: command.text },
        ...history.filter((m) => m.role !== "system"),
      );
      say("Set system message.");
      break;
    case "show":
      say(await shown(ctx, config, generator, command.what, history, sampling));
      break;
    case "usage":
      say(command.message);
      break;
  }
  return "continue";
}

/** What `/show info`, `/show parameters` and `/show system` print. */
async function shown(
  ctx: CliContext,
  config: InfernoConfig,
  generator: Generator,
  what: "info" | "parameters" | "system",
  history: CliMessage[],
  sampling: Sampling,
): Promise<string> {
  if (what === "system") return history.find((m) => m.role === "system")?.content ?? "No system message was specified.";
  if (what === "parameters") {
    const lines = describeParameters(sampling);
    return lines.length === 0 ? "No parameters were set." : ["Parameters:", ...lines.map((l) => `  ${l}`)].join("\n");
  }
  const where = generator.loadMs === null ? "on the running server" : "loaded in this process";
  const rows: Array<[string, string]> = [
    ["name", generator.name],
    ["runs", where],
  ];
  // The file's header, read here (the server's models are this machine's files too); a remote server's may be unknown.
  const info = await managerFor(config, ctx)
    .info(generator.name)
    .catch(() => null);
  if (info?.metadata.format === "gguf") {
    const m = info.metadata;
    rows.push(
      ["architecture", m.architecture],
      ["parameters", String(m.parameterCount)],
      ["quantization", m.quantization],
      ["context length", String(m.contextLength)],
      ["embedding length", String(m.embeddingLength)],
      ["file", info.path],
    );
  }
  return ["Model", ...rows.map(([k, v]) => `  ${k.padEnd(18)} ${v}`)].join("\n");
}

/** Removes the older half of a chat history's turns (whole user + assistant pairs); leading system messages stay. */
function dropOlderHalf(history: CliMessage[]): void {
  const system = history.findIndex((m) => m.role !== "system");
  if (system < 0) return;
  const turns = Math.floor((history.length - system) / 2);
  history.splice(system, 2 * Math.ceil(turns / 2));
}

export async function runCommand(
  ctx: CliContext,
  modelArg: string | undefined,
  promptArg: string | undefined,
  options: RunOptions,
): Promise<void> {
  const name = once("model", modelArg, options.model, "--model");
  const prompt = once("prompt", promptArg, options.prompt, "--prompt");
  if (name === undefined)
    throw new UsageError(
      `no model given: ${ctx.command("run MODEL [PROMPT]")} (\`${ctx.command("models list")}\` lists them)`,
    );
  const sampling: Sampling = {
    maxTokens: parseNumber(
      "--max-tokens",
      options.maxTokens,
      (n) => Number.isInteger(n) && n > 0,
      "a positive whole number",
    ),
  };
  const temperature = parseNumber("--temperature", options.temperature, (n) => n >= 0, "a number >= 0");
  const seed = parseNumber("--seed", options.seed, (n) => Number.isInteger(n) && n >= 0, "a whole number >= 0");
  if (temperature !== undefined) sampling.temperature = temperature;
  if (seed !== undefined) sampling.seed = seed;
  if (options.raw && options.system !== undefined)
    throw new UsageError("--system is for chat; --raw completes the prompt as written");
  const flagValues = configFlagValues(options, FLAGS);
  const config = await ctx.loadConfig(flagValues);
  const stream = !ctx.out.json && (options.stream ?? ctx.out.isTTY);
  const generator = await openGenerator(ctx, config, name, options.local === true, loadFlagsOf(ctx, flagValues));
  try {
    if (prompt === undefined) {
      if (ctx.out.json) throw new UsageError("--json needs a PROMPT (the chat prints plain text)");
      await chatLoop(ctx, config, generator, {
        raw: options.raw === true,
        ...(options.system ? { system: options.system } : {}),
        sampling,
        stream,
      });
      return;
    }
    const messages: CliMessage[] = [
      ...(options.system ? [{ role: "system" as const, content: options.system }] : []),
      { role: "user", content: prompt },
    ];
    await oneShot(ctx, config, generator, options.raw ? { prompt } : { messages }, sampling, stream);
  } finally {
    await generator.close();
  }
}
