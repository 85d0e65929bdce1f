/**
 * GGUF models on llama.cpp through node-llama-cpp 3. One llama.cpp instance per GPU setting is shared by every model
 * and created on the first load; a model is a context with `parallel` sequences, and requests beyond that wait for a
 * free sequence. Prebuilt binaries only: nothing is built or downloaded at run time. node-llama-cpp is imported on the
 * first load, so commands that load no model (`--version`, `config …`) never load llama.cpp.
 */
import type * as NodeLlamaCppModule from "node-llama-cpp";
import type {
  ChatWrapper,
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaModel,
  Token,
} from "node-llama-cpp";
import { parallelCount } from "../models/load-settings.js";
import type { BackendConfig } from "../config/schema.js";
import { Aborted, isInfernoError, ModelLoadFailed } from "../errors/index.js";
import { parseGoTemplate, UnsupportedGoTemplate } from "../models/go-template.js";
import { GGUF_FIXED_OVERHEAD_BYTES } from "../models/overhead.js";
import { withLoadSettings } from "../models/load-settings.js";
import type { Bytes, ModelDefaults, ModelDescriptor } from "../models/types.js";
import {
  anySignal,
  contextLengthExceeded,
  generationTokenLimit,
  HeldEvents,
  Lifetime,
  promptTokenLimit,
  threadCount,
  throwIfAborted,
  toolMode,
  withoutTsx,
} from "./common.js";
import { goTemplateChatWrapper } from "./llama-go-template.js";
import { type PromptBinding, PromptStore, prefixValue, type SavedPrefix, sharedPrefix } from "./prompt-store.js";
import {
  chatFunctions,
  chatHistory,
  checkFormatAnswer,
  eitherGrammar,
  eitherInstructions,
  forcedCallGrammar,
  forcedCallInstructions,
  formatGrammar,
  parseEither,
  parseForcedCall,
  samplerSettings,
  samplingSeed,
  toolCallsOf,
} from "./llama-tools.js";
import {
  DEFAULT_TEMPERATURE,
  type Backend,
  type ChatMessage,
  type ChatOptions,
  type EmbeddingResult,
  type EmbedOptions,
  type FinishReason,
  type GenerationOptions,
  type GenerationResult,
  type LoadOptions,
  type PromptStoreEvent,
  type TextModel,
  type ToolCall,
} from "./types.js";

type NodeLlamaCpp = typeof NodeLlamaCppModule;
type GpuSetting = BackendConfig["gpu"];

let nodeLlamaCpp: Promise<NodeLlamaCpp> | undefined;

/** node-llama-cpp, imported once, on first use. */
function loadNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  nodeLlamaCpp ??= import("node-llama-cpp");
  return nodeLlamaCpp;
}
type LlamaGpu = "auto" | "cuda" | "vulkan" | "metal" | false;

function llamaGpu(gpu: GpuSetting): LlamaGpu {
  return gpu === false || gpu === "false" ? false : gpu;
}

/** A sequence of the pool: what it last evaluated stays in it, for the next prompt that starts the same way. */
interface PooledSequence {
  sequence: LlamaContextSequence;
  /** When it was last released (a counter): among equal prefixes, the least recently used is taken. */
  used: number;
  /** Whose evaluation it holds (`GenerationOptions.promptScope`): reused only within the same scope. */
  scope: string;
  /** Requests that reused what it holds (its value when saved: see `prefixValue`). */
  reuses: number;
  /** The saved prefix it was restored from, if its content still starts with it. */
  origin: string | undefined;
  /** The saved prefix the warm-up restored into it, until a request uses the sequence (see `generate`). */
  warm: SavedPrefix | undefined;
}

/**
 * Fewest tokens a prefix must have to be saved on unload or restored from disk: below it, evaluating the tokens costs
 * about what reading and checking a state file does.
 */
const MIN_STORED_PREFIX_TOKENS = 32;

/**
 * Free sequences of a context. A sequence keeps its evaluated tokens after a request (the prompt cache): a request
 * takes the free sequence whose tokens share the longest prefix with its prompt (see `best`), then the least recently
 * used, and node-llama-cpp evaluates only the rest (it erases the sequence from the first differing token, so nothing of an
 * earlier prompt that is not also this prompt's prefix is ever used). Waiters are served first come, first served.
 */
class SequencePool {
  private readonly waiters: Array<(entry: PooledSequence) => void> = [];
  private readonly free: PooledSequence[];
  /** Every sequence, free or taken (the unload saves what each holds). */
  private readonly all: readonly PooledSequence[];
  private clock = 0;

  constructor(sequences: LlamaContextSequence[]) {
    this.free = sequences.map((sequence) => ({
      sequence,
      used: 0,
      scope: "",
      reuses: 0,
      origin: undefined,
      warm: undefined,
    }));
    this.all = [...this.free];
  }

  /** Every sequence, free or taken. */
  sequences(): readonly PooledSequence[] {
    return this.all;
  }

  /** The free sequence that best fits a prompt (see the class), or null if the signal fired while waiting. */
  acquire(prompt: readonly Token[], scope: string, signal: AbortSignal): Promise<PooledSequence | null> {
    const best = this.best(prompt, scope);
    if (best) {
      this.free.splice(this.free.indexOf(best), 1);
      return Promise.resolve(best);
    }
    if (signal.aborted) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter = (entry: PooledSequence) => {
        signal.removeEventListener("abort", onAbort);
        resolve(entry);
      };
      const onAbort = () => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(null);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /**
   * The free sequence with the longest shared prefix among those where the prompt reuses at least half of what the
   * sequence holds (an empty one always qualifies), so a conversation does not take over another's sequence for a
   * few common tokens; else the least recently used. Ties go to the least recently used. A sequence of another scope
   * shares nothing.
   */
  private best(prompt: readonly Token[], scope: string): PooledSequence | undefined {
    let best: { entry: PooledSequence; shared: number } | undefined;
    let oldest: PooledSequence | undefined;
    for (const entry of this.free) {
      if (!oldest || entry.used < oldest.used) oldest = entry;
      const held = entry.sequence.contextTokens;
      const shared = entry.scope === scope ? sharedPrefix(held, prompt) : 0;
      if (shared * 2 < held.length) continue;
      if (!best || shared > best.shared || (shared === best.shared && entry.used < best.entry.used)) {
        best = { entry, shared };
      }
    }
    return best?.entry ?? oldest;
  }

  /** Empties the free sequences (what the warm-up evaluated is no prefix worth keeping). */
  async clearFree(): Promise<void> {
    for (const entry of this.free) {
      if (!entry.sequence.disposed && entry.sequence.nextTokenIndex > 0) await entry.sequence.clearHistory();
      emptied(entry);
    }
  }

  /** Returns a sequence; `clear` empties it first (after a failed generation, whose state is not trusted). */
  async release(entry: PooledSequence, clear: boolean): Promise<void> {
    if (clear && !entry.sequence.disposed) {
      await entry.sequence.clearHistory();
      emptied(entry);
    }
    entry.used = ++this.clock;
    const next = this.waiters.shift();
    if (next) next(entry);
    else this.free.push(entry);
  }
}

/** A sequence's bookkeeping once what it held is gone. */
function emptied(entry: PooledSequence): void {
  entry.reuses = 0;
  entry.origin = undefined;
  entry.warm = undefined;
}

/**
 * How many of a prompt's tokens a sequence will not evaluate again: node-llama-cpp keeps the sequence's tokens up to
 * the first that differs (at most all but the prompt's last token, which is evaluated to sample from). A model that
 * cannot erase the end of its state (recurrent, hybrid, sliding-window attention) goes back to node-llama-cpp's last
 * checkpoint at or before that point and evaluates from there; with no checkpoint, the whole prompt again.
 */
function reusableTokens(sequence: LlamaContextSequence, prompt: readonly Token[]): number {
  const shared = Math.min(sharedPrefix(sequence.contextTokens, prompt), Math.max(0, prompt.length - 1));
  if (shared === 0 || shared >= sequence.nextTokenIndex || !sequence.needsCheckpoints) return shared;
  const cost = sequence.getRestoreToPrefixIndexEvaluationSize(shared - 1);
  // The whole kept prefix evaluated again: no checkpoint held it.
  return cost >= shared - 1 ? 0 : shared - cost;
}

const STOP_REASONS: Record<string, FinishReason> = {
  eogToken: "stop",
  stopGenerationTrigger: "stop",
  customStopTrigger: "stop",
  functionCalls: "stop",
  maxTokens: "length",
  abort: "abort",
};

/** Whether a generation ended by itself (not cut at the token limit or aborted): only such answers must validate. */
function finished(stopReason: string): boolean {
  return STOP_REASONS[stopReason] === "stop";
}

/**
 * Settings for a generation under a grammar: without the request's stop sequences, which would cut the answer the
 * grammar shapes (a JSON text ends where the grammar ends it). node-llama-cpp samples under a grammar by checking the
 * token the samplers chose and, when the grammar refuses it, applying the grammar to every candidate before the
 * samplers run again (AddonSampler::sample), so top-k, top-p and min-p never leave it without a valid token.
 */
function underGrammar<T extends { customStopTriggers?: unknown }>(settings: T, grammar: boolean): T {
  if (!grammar) return settings;
  const { customStopTriggers: _, ...rest } = settings;
  return rest as T;
}

/** What `warm` evaluates: a few tokens, enough for a whole pass over the weights. */
const WARM_PROMPT = "Hello";
/**
 * `warm` generates up to this many tokens per generation: one token never runs the per-token decode (a batch of one
 * after the prompt), whose first run re-plans llama.cpp's compute graph and whose JavaScript is the hot loop.
 */
const WARM_TOKENS = 8;
/**
 * Rounds of `warm` (a completion and a chat each): V8 optimises the generation code after a few runs, not one
 * (measured on the nano model: the first request after one round took 1.5–1.9× the steady state, after four 1.3×).
 * Later rounds only while the warm-up has taken less than `WARM_BUDGET_MS`: on a large model one round is long, and
 * compiled code matters little beside its compute.
 */
const WARM_ROUNDS = 4;
const WARM_BUDGET_MS = 250;

function emptyAbort(): GenerationResult {
  return { text: "", finishReason: "abort", usage: { promptTokens: 0, completionTokens: 0 } };
}

type Settings = ReturnType<LlamaTextModel["settings"]> & {
  onTextChunk: (text: string) => void;
  onToken: (tokens: readonly unknown[]) => void;
};

interface RunResult {
  text: string;
  stopReason: string;
  toolCalls?: ToolCall[];
}

/**
 * A chat cut to fit the context. Refused when it does not fit and the request did not ask for truncation; else the
 * oldest messages after the leading system messages are dropped — as few as needed (found by bisection, so a long
 * history costs a few renders, not one per message), never the last message, never starting at a tool result whose
 * call was dropped. Refused all the same when the system messages and the last message alone do not fit.
 */
function fitChat<H>(
  messages: ChatMessage[],
  render: (kept: ChatMessage[]) => { history: H; tokens: Token[] },
  contextSize: number,
  options: GenerationOptions,
): { history: H; tokens: Token[] } {
  const limit = promptTokenLimit(contextSize, options.truncatePromptTokens);
  const whole = render(messages);
  if (whole.tokens.length <= limit) return whole;
  const param = options.promptParam ?? "messages";
  if (options.truncatePromptTokens === undefined) throw contextLengthExceeded(param, whole.tokens.length, contextSize);
  const first = messages.findIndex((m) => m.role !== "system");
  const system = first < 0 ? messages : messages.slice(0, first);
  const starts: number[] = [];
  for (let i = Math.max(first, 0) + 1; i < messages.length; i++) if (messages[i]?.role !== "tool") starts.push(i);
  const keptFrom = (start: number) => render([...system, ...messages.slice(start)]);
  const shortest = starts.length > 0 ? keptFrom(starts[starts.length - 1] as number) : whole;
  if (starts.length === 0 || shortest.tokens.length > limit) {
    throw contextLengthExceeded(param, shortest.tokens.length, contextSize, "the system messages and the last message");
  }
  // The first start whose rest fits: starts[high] always fits.
  let low = 0;
  let high = starts.length - 1;
  let best = shortest;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    const candidate = keptFrom(starts[middle] as number);
    if (candidate.tokens.length <= limit) {
      best = candidate;
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  return best;
}

class LlamaTextModel implements TextModel {
  readonly kind = "text";
  private readonly lifetime: Lifetime;
  private readonly pool: SequencePool;
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  /** Embedding calls run one at a time on the one embedding context. */
  private embeddingQueue: Promise<unknown> = Promise.resolve();
  /**
   * The model's chat wrapper, resolved once: resolving it renders the model's Jinja chat template dozens of times to
   * find its format (measured ~0.2–2 s per chat on a nano model when LlamaChat resolved it per request).
   */
  private resolvedChatWrapper: ChatWrapper | undefined;

  constructor(
    private readonly lib: NodeLlamaCpp,
    readonly descriptor: ModelDescriptor,
    readonly memoryBytes: Bytes,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly config: BackendConfig,
    private readonly threads: number,
    /** Where prefixes are saved on unload and restored from; null: none (`cache.prompt_cache_mb = 0`). */
    private readonly store: PromptStore | null,
    private readonly storeEvents: HeldEvents<PromptStoreEvent>,
  ) {
    this.lifetime = new Lifetime(descriptor);
    const sequences: LlamaContextSequence[] = [];
    while (context.sequencesLeft > 0) sequences.push(context.getSequence());
    this.pool = new SequencePool(sequences);
  }

  get disposed(): boolean {
    return this.lifetime.disposed;
  }

  complete(prompt: string, requested: GenerationOptions = {}): Promise<GenerationResult> {
    const options = withDefaults(this.descriptor.defaults, requested);
    return this.generate(
      options,
      () => this.fitCompletionPrompt(prompt, options),
      async (sequence, settings, input) => {
        const grammar = options.format ? await formatGrammar(this.model.llama, options.format) : undefined;
        const completion = new this.lib.LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
        try {
          const { response, metadata } = await completion.generateCompletionWithMeta(input.prompt, {
            ...underGrammar(settings, grammar !== undefined),
            maxTokens: generationTokenLimit(sequence.contextSize, input.tokens.length, options.maxTokens),
            ...(grammar ? { grammar } : {}),
          });
          if (options.format && finished(metadata.stopReason)) checkFormatAnswer(options.format, response);
          return { text: response, stopReason: metadata.stopReason };
        } finally {
          completion.dispose({ disposeSequence: false });
        }
      },
    );
  }

  /**
   * The completion prompt as it will be evaluated, counted as LlamaCompletion feeds it (the leading space folded into
   * the BOS token): refused when the context cannot hold it, or cut to its end when the request asks for truncation.
   */
  private fitCompletionPrompt(
    prompt: string,
    options: GenerationOptions,
  ): { prompt: string | Token[]; tokens: Token[] } {
    const bos =
      this.model.tokens.shouldPrependBosToken && this.model.tokens.bos !== null ? [this.model.tokens.bos] : [];
    const tokens = this.model.tokenize(prompt, false, "trimLeadingSpace");
    const limit = promptTokenLimit(this.context.contextSize, options.truncatePromptTokens);
    const count = tokens.length + bos.length;
    if (count <= limit) return { prompt, tokens: [...bos, ...tokens] };
    if (options.truncatePromptTokens === undefined) {
      throw contextLengthExceeded(options.promptParam ?? "prompt", count, this.context.contextSize);
    }
    const kept = tokens.slice(tokens.length - Math.max(0, limit - bos.length));
    return { prompt: kept, tokens: [...bos, ...kept] };
  }

  /**
   * Chat with the model's chat wrapper. Tools: `auto` hands them to node-llama-cpp's function calling in the
   * wrapper's format; a forced choice makes a grammar write one call in the generic format (see llama-tools.ts), whose
   * JSON is not streamed as text.
   */
  async chat(requestedMessages: ChatMessage[], requested: ChatOptions = {}): Promise<GenerationResult> {
    const options = withDefaults(this.descriptor.defaults, requested);
    const system = this.descriptor.defaults?.system;
    // A preset's (or Modelfile's) system message, when the request sends none.
    const messages: ChatMessage[] =
      system !== undefined && !requestedMessages.some((m) => m.role === "system")
        ? [{ role: "system", content: system }, ...requestedMessages]
        : requestedMessages;
    const tools = toolMode(options);
    const instructions =
      tools.mode === "forced"
        ? forcedCallInstructions(tools.tools)
        : tools.mode === "either"
          ? eitherInstructions(tools.tools, tools.format)
          : undefined;
    const functions = tools.mode === "auto" ? chatFunctions(options.tools ?? []) : undefined;
    // A call's JSON is never streamed as text; `either`'s answer is sent once it is known to be no call.
    const generation: GenerationOptions =
      tools.mode === "forced" || tools.mode === "either" ? { ...options, onText: undefined } : options;
    // The prompt as the model's chat template renders it (with the functions documented, when offered), refused or cut
    // to fit the context before a sequence is taken: its tokens choose the sequence (see SequencePool).
    const fitted = () => {
      const rendered = (kept: ChatMessage[]) => {
        const history = chatHistory(kept, instructions);
        const { contextText } = this.chatWrapper().generateContextState({
          chatHistory: history,
          ...(functions ? { availableFunctions: functions, documentFunctionParams: true } : {}),
        });
        return { history, tokens: contextText.tokenize(this.model.tokenizer) };
      };
      return fitChat(messages, rendered, this.context.contextSize, options);
    };
    return this.generate(generation, fitted, async (sequence, baseSettings, { history, tokens }) => {
      const chat = new this.lib.LlamaChat({
        contextSequence: sequence,
        autoDisposeSequence: false,
        chatWrapper: this.chatWrapper(),
      });
      try {
        const settings = {
          ...baseSettings,
          maxTokens: generationTokenLimit(sequence.contextSize, tokens.length, options.maxTokens),
          // The history was made to fit: LlamaChat must not shorten it on its own (its default drops old turns).
          contextShift: { size: 1 },
        };
        if (functions) {
          const { response, functionCalls, metadata } = await chat.generateResponse(history, {
            ...settings,
            functions,
            documentFunctionParams: true,
            ...(options.parallelToolCalls === false ? { maxParallelFunctionCalls: 1 } : {}),
          });
          const toolCalls = toolCallsOf(functionCalls, options.tools ?? [], response);
          return { text: response, stopReason: metadata.stopReason, toolCalls };
        }
        const grammar =
          tools.mode === "forced"
            ? await forcedCallGrammar(this.model.llama, tools.tools)
            : tools.mode === "either"
              ? await eitherGrammar(this.model.llama, tools.tools, tools.format)
              : options.format
                ? await formatGrammar(this.model.llama, options.format)
                : undefined;
        const { response, metadata } = await chat.generateResponse(history, {
          ...underGrammar(settings, grammar !== undefined),
          ...(grammar ? { grammar } : {}),
        });
        const done = finished(metadata.stopReason);
        if (tools.mode === "forced") {
          // A call cut short is no call, and never the assistant's text.
          if (!done) return { text: "", stopReason: metadata.stopReason };
          return { text: "", stopReason: metadata.stopReason, toolCalls: [parseForcedCall(response, tools.tools)] };
        }
        if (tools.mode === "either") {
          const written = parseEither(response, done, tools.tools, tools.format);
          if (written.text) options.onText?.(written.text);
          return { ...written, stopReason: metadata.stopReason };
        }
        if (options.format && done) checkFormatAnswer(options.format, response);
        return { text: response, stopReason: metadata.stopReason };
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    });
  }

  async warm(signal?: AbortSignal): Promise<void> {
    const options = { maxTokens: WARM_TOKENS, temperature: 0, ...(signal ? { signal } : {}) };
    const started = performance.now();
    for (let round = 0; round < WARM_ROUNDS && !signal?.aborted; round++) {
      if (round > 0 && performance.now() - started > WARM_BUDGET_MS) break;
      await this.complete(WARM_PROMPT, options);
      await this.chat([{ role: "user", content: WARM_PROMPT }], options);
    }
    await this.pool.clearFree();
    await this.lifetime.run(() => this.restoreHottest(signal ?? this.lifetime.signal));
  }

  onPromptStore(listener: (event: PromptStoreEvent) => void): () => void {
    return this.storeEvents.subscribe(listener);
  }

  /** The most valuable saved prefixes, one per sequence, restored now (the warm-up's), so no request waits for them. */
  private async restoreHottest(signal: AbortSignal): Promise<void> {
    if (!this.store) return;
    for (const prefix of this.store.list().slice(0, this.pool.sequences().length)) {
      const { tokens, scope } = prefix.record;
      const pooled = await this.pool.acquire(tokens as Token[], scope, signal);
      if (!pooled) return;
      try {
        if (pooled.sequence.nextTokenIndex === 0 && (await this.restore(pooled, prefix, false))) pooled.warm = prefix;
      } finally {
        await this.pool.release(pooled, false);
      }
    }
  }

  /**
   * Restores the saved prefix that shares the most with the prompt into the sequence, when that is worth a file read:
   * at least `MIN_STORED_PREFIX_TOKENS` usable, more than the sequence already holds, and at least half of the saved
   * state used.
   */
  private async restoreForPrompt(pooled: PooledSequence, prompt: readonly Token[]): Promise<void> {
    if (!this.store || prompt.length <= MIN_STORED_PREFIX_TOKENS) return;
    const found = this.store.best(prompt, pooled.scope);
    if (!found) return;
    const usable = Math.min(found.shared, prompt.length - 1);
    if (usable < MIN_STORED_PREFIX_TOKENS || found.shared * 2 < found.prefix.record.tokens.length) return;
    if (usable <= reusableTokens(pooled.sequence, prompt)) return;
    await this.restore(pooled, found.prefix, true);
  }

  /** Loads a saved prefix into a sequence (see PromptStore.restore); a refused one leaves the sequence empty. */
  private async restore(
    pooled: PooledSequence,
    prefix: SavedPrefix,
    counted: boolean,
    reported = true,
  ): Promise<boolean> {
    const { sequence } = pooled;
    const reuses = prefix.record.reuses;
    const restored = await (this.store as PromptStore).restore(
      prefix,
      async (path) => {
        await sequence.loadStateFromFile(path, { acceptRisk: true });
        return sequence.contextTokens;
      },
      counted,
      reported,
    );
    if (restored) {
      pooled.scope = prefix.record.scope;
      pooled.reuses = reuses;
      pooled.origin = prefix.name;
    } else {
      if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
      emptied(pooled);
    }
    return restored;
  }

  /**
   * Puts back the prefix the warm-up restored into a sequence that a request asking for no reuse (`cachePrompt:
   * false`, as the server's own warm-up requests do) took before any request used it: with one sequence, those would
   * otherwise leave the first request of the day to read it from disk again. Best effort.
   */
  private async restoreWarm(pooled: PooledSequence, prefix: SavedPrefix): Promise<void> {
    try {
      if (pooled.sequence.nextTokenIndex > 0) await pooled.sequence.clearHistory();
      emptied(pooled);
      // Not reported again: the figures count prefixes brought back from disk, and this one already was.
      if (await this.restore(pooled, prefix, false, false)) pooled.warm = prefix;
    } catch {
      // The sequence is as a failed restore leaves it (empty): the next request evaluates its prompt.
    }
  }

  /**
   * Saves what the sequences hold (at least `MIN_STORED_PREFIX_TOKENS` tokens), most valuable first, when the model
   * unloads. A save that fails is reported and skipped: the model unloads all the same.
   */
  private async savePrefixes(): Promise<void> {
    const store = this.store;
    if (!store) return;
    const value = (e: PooledSequence) => prefixValue({ reuses: e.reuses, tokens: e.sequence.contextTokens.length });
    const worth = this.pool
      .sequences()
      .filter((e) => !e.sequence.disposed && e.sequence.contextTokens.length >= MIN_STORED_PREFIX_TOKENS)
      .sort((a, b) => value(b) - value(a));
    for (const entry of worth) {
      const { sequence } = entry;
      try {
        const save = async (path: string) => void (await sequence.saveStateToFile(path));
        await store.save(sequence.contextTokens, entry.scope, entry.reuses, save, entry.origin);
      } catch (error) {
        process.emitWarning(
          `${this.descriptor.name}: a prompt prefix could not be saved: ${(error as Error).message}`,
          {
            code: "INFERNO_PROMPT_STORE",
          },
        );
      }
    }
  }

  /**
   * A preset's Jinja template, else an Ollama Modelfile's Go template (when it keeps to the subset Inferno runs: one
   * warning names what it uses otherwise), else the file's own.
   */
  private chatWrapper(): ChatWrapper {
    const { template, goTemplate } = this.descriptor.defaults ?? {};
    if (this.resolvedChatWrapper) return this.resolvedChatWrapper;
    if (template) this.resolvedChatWrapper = new this.lib.JinjaTemplateChatWrapper({ template });
    else if (goTemplate) {
      try {
        this.resolvedChatWrapper = goTemplateChatWrapper(this.lib, parseGoTemplate(goTemplate));
      } catch (error) {
        if (!(error instanceof UnsupportedGoTemplate)) throw error;
        process.emitWarning(
          `${this.descriptor.name}: the Modelfile's TEMPLATE uses ${error.construct}, which Inferno does not run; ` +
            "the model file's own chat template is used",
          { code: "INFERNO_GO_TEMPLATE" },
        );
      }
    }
    this.resolvedChatWrapper ??= this.lib.resolveChatWrapper(this.model);
    return this.resolvedChatWrapper;
  }

  /**
   * Runs one generation on a pooled sequence, with the shared option mapping and token accounting (completion tokens
   * are counted as they are sampled). `prepare` makes the prompt's tokens (fitted to the context), which choose the
   * sequence: the prefix it already holds is reused (counted in `usage.cachedPromptTokens`) unless the request says
   * `cachePrompt: false`, which empties the sequence first.
   */
  private generate<P extends { tokens: Token[] }>(
    options: GenerationOptions,
    prepare: () => P,
    run: (sequence: LlamaContextSequence, settings: Settings, prompt: P) => Promise<RunResult>,
  ) {
    return this.lifetime.run(async (): Promise<GenerationResult> => {
      const signal = anySignal(options.signal, this.lifetime.signal);
      // Built first: a bad field (an unknown token id) fails before a sequence is taken.
      const sampler = samplerSettings(options, this.model, this.context.contextSize, this.lib.TokenBias);
      const prompt = prepare();
      const reuse = options.cachePrompt !== false;
      const scope = options.promptScope ?? "";
      const pooled = await this.pool.acquire(reuse ? prompt.tokens : [], scope, signal);
      if (!pooled) return emptyAbort();
      const { sequence } = pooled;
      const warm = pooled.warm;
      pooled.warm = undefined;
      let cachedPromptTokens = 0;
      const progress = { text: "", completionTokens: 0 };
      const usage = () => ({
        promptTokens: prompt.tokens.length,
        completionTokens: progress.completionTokens,
        cachedPromptTokens,
      });
      const settings: Settings = {
        ...this.settings(options, signal),
        ...sampler,
        onTextChunk: (text: string) => {
          progress.text += text;
          options.onText?.(text);
        },
        onToken: (tokens: readonly unknown[]) => {
          progress.completionTokens += tokens.length;
        },
      };
      let failed = false;
      try {
        if (pooled.scope !== scope) {
          // Another caller's evaluation: nothing of it may serve this one.
          if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
          emptied(pooled);
          pooled.scope = scope;
        }
        if (reuse) {
          await this.restoreForPrompt(pooled, prompt.tokens);
          cachedPromptTokens = reusableTokens(sequence, prompt.tokens);
        } else if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
        if (cachedPromptTokens > 0) pooled.reuses++;
        else emptied(pooled);
        const { text, stopReason, toolCalls } = await run(sequence, settings, prompt);
        const finishReason = STOP_REASONS[stopReason] ?? "stop";
        if (toolCalls && toolCalls.length > 0 && finishReason !== "abort") {
          return { text, finishReason: "tool_calls", usage: usage(), toolCalls };
        }
        return { text, finishReason, usage: usage() };
      } catch (error) {
        failed = true;
        // An abort that lands while llama.cpp evaluates (not samples) surfaces as an error: still an abort.
        if (signal.aborted) return { text: progress.text, finishReason: "abort", usage: usage() };
        throw error;
      } finally {
        if (!reuse && warm && !failed && !this.lifetime.signal.aborted) await this.restoreWarm(pooled, warm);
        await this.pool.release(pooled, failed);
      }
    });
  }

  private settings(options: GenerationOptions, signal: AbortSignal) {
    return {
      temperature: options.temperature ?? DEFAULT_TEMPERATURE,
      ...(options.topP !== undefined ? { topP: options.topP } : {}),
      seed: samplingSeed(options.seed),
      ...(options.stop && options.stop.length > 0 ? { customStopTriggers: options.stop } : {}),
      signal,
      stopOnAbortSignal: true,
    };
  }

  embed(inputs: string[], signal?: AbortSignal, options: EmbedOptions = {}): Promise<EmbeddingResult> {
    return this.lifetime.run(async () => {
      const context = await this.embeddingContext();
      const work = this.embeddingQueue.then(async () => {
        // Every input is measured (and refused or cut) before the first is embedded: a refusal costs no evaluation.
        const fitted = inputs.map((input, index) =>
          this.fitEmbeddingInput(context, input, index, inputs.length, options),
        );
        const embeddings: number[][] = [];
        let promptTokens = 0;
        for (const input of fitted) {
          throwIfAborted(anySignal(signal, this.lifetime.signal), "embedding");
          promptTokens += input.tokens;
          embeddings.push([...(await context.getEmbeddingFor(input.input)).vector]);
        }
        return { embeddings, promptTokens };
      });
      this.embeddingQueue = work.catch(() => undefined);
      return work;
    });
  }

  /**
   * An embedding input as the embedding context evaluates it (with the model's begin/end tokens): llama.cpp needs it
   * shorter than the context. Refused, or cut to its beginning when the request asks for truncation.
   */
  private fitEmbeddingInput(
    context: LlamaEmbeddingContext,
    input: string,
    index: number,
    count: number,
    options: EmbedOptions,
  ): { input: string | Token[]; tokens: number } {
    const length = context.calculateInputLength(input);
    // The embedding context is made with the same size option as the generation context, so it holds as many tokens.
    const contextSize = this.context.contextSize;
    const limit = promptTokenLimit(contextSize, options.truncatePromptTokens);
    if (length <= limit) return { input, tokens: length };
    const param = options.inputParam ?? "input";
    const where = count === 1 ? param : `${param}[${index}]`;
    if (options.truncatePromptTokens === undefined) {
      throw contextLengthExceeded(where, length, contextSize, "an embedding input");
    }
    const tokens = this.model.tokenize(input);
    const kept = tokens.slice(0, Math.max(0, tokens.length - (length - limit)));
    return { input: kept, tokens: context.calculateInputLength(kept) };
  }

  private embeddingContext(): Promise<LlamaEmbeddingContext> {
    this.embedding ??= this.model.createEmbeddingContext({
      contextSize: this.config.context_size,
      batchSize: this.config.batch_size,
      threads: this.threads,
    });
    return this.embedding;
  }

  tokenize(text: string): Promise<number[]> {
    return this.lifetime.run(async () => [...this.model.tokenize(text)]);
  }

  dispose(): Promise<void> {
    return this.lifetime.dispose(async () => {
      await this.savePrefixes();
      const embedding = await this.embedding?.catch(() => undefined);
      await embedding?.dispose();
      await this.context.dispose();
      await this.model.dispose();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/**
 * llama.cpp's instance per GPU setting, one per process, created on first use. Every `getLlama` first forks a Node
 * process to check that the prebuilt binary runs here (node-llama-cpp does it on Linux, with this process's flags): a
 * process that builds several runtimes one after the other (a library user, the CLI's tests) pays it once, and one run
 * from source forks it without tsx (see `withoutTsxFlags`). node-llama-cpp disposes the instance itself before the
 * process exits.
 */
const llamaInstances = new Map<string, Promise<Llama>>();

/**
 * Runs `start` with this process's Node flags cleared of tsx's, restored when it settles: node-llama-cpp forks its
 * binary check (plain JavaScript) with them, and under tsx (run from source: `npm start`, the tests) that was a second
 * tsx start, ~0.3 s on a quiet machine and seconds on a busy one, before every first load. Whatever else forks
 * meanwhile names its flags itself (model hosts: `hostExecArgv`; the state and advice workers register tsx).
 */
async function withoutTsxFlags<T>(start: () => Promise<T>): Promise<T> {
  const flags = process.execArgv;
  const cleared = withoutTsx(flags);
  // Not under tsx, or another start cleared them already (and restores them).
  if (cleared.length === flags.length) return start();
  process.execArgv = cleared;
  try {
    return await start();
  } finally {
    process.execArgv = flags;
  }
}

function sharedLlama(gpu: GpuSetting): Promise<Llama> {
  const key = String(llamaGpu(gpu));
  let instance = llamaInstances.get(key);
  if (!instance) {
    instance = loadNodeLlamaCpp().then(({ getLlama, LlamaLogLevel }) =>
      withoutTsxFlags(() =>
        getLlama({
          gpu: llamaGpu(gpu),
          build: "never",
          skipDownload: true,
          progressLogs: false,
          logLevel: LlamaLogLevel.error,
        }),
      ),
    );
    instance.catch(() => llamaInstances.delete(key));
    llamaInstances.set(key, instance);
  }
  return instance;
}

/**
 * What a saved sequence state is bound to: the model file's version, the context settings that shape the state (the
 * sequence count among them), and the llama.cpp release. A state of any other binding is never loaded (see
 * prompt-store.ts).
 */
function promptBinding(
  llama: Llama,
  descriptor: ModelDescriptor,
  model: LlamaModel,
  context: LlamaContext,
): PromptBinding {
  const { size, mtimeMs } = descriptor.fingerprint;
  return {
    model: { key: descriptor.key, size, mtimeMs },
    context: {
      contextSize: context.contextSize,
      batchSize: context.batchSize,
      // llama.cpp refuses a state saved with another sequence count ("n_stream mismatch"), and `inferno run` loads
      // one where `inferno serve` loads several.
      sequences: context.totalSequences,
      flashAttention: String(context.flashAttention),
      kvCacheKeyType: String(context.kvCacheKeyType),
      kvCacheValueType: String(context.kvCacheValueType),
      gpuLayers: model.gpuLayers,
    },
    runtime: `llama.cpp ${llama.llamaCppRelease.release} (${llama.gpu === false ? "cpu" : llama.gpu})`,
  };
}

/** Context memory figures kept per file version and context settings (see `LlamaBackend.contextMemory`). */
const CONTEXT_MEMORY_CACHE_SIZE = 256;

export class LlamaBackend implements Backend {
  readonly format = "gguf";
  private readonly contextMemoryFigures = new Map<string, Bytes>();

  /**
   * Starts llama.cpp for this GPU setting (its one-time start-up, apart from any model's load time; a model host runs
   * it for its spare start).
   */
  async ready(config: Pick<BackendConfig, "gpu">): Promise<void> {
    await this.started(config);
  }

  private async started(config: Pick<BackendConfig, "gpu">): Promise<Llama> {
    try {
      return await sharedLlama(config.gpu);
    } catch (error) {
      // node-llama-cpp names no reason when none of its prebuilt binaries for this GPU type loads (no driver or runtime).
      const reason =
        (error as Error).constructor.name === "NoBinaryFoundError"
          ? `no llama.cpp build for ${String(config.gpu)} runs on this machine (its driver or runtime is missing); ` +
            `use gpu = "auto" to take what runs, or false for the CPU`
          : (error as Error).message;
      throw new ModelLoadFailed(`llama.cpp could not start (gpu = ${String(config.gpu)}): ${reason}`, {
        cause: error,
      });
    }
  }

  async load(descriptor: ModelDescriptor, options: LoadOptions): Promise<TextModel> {
    const { signal } = options;
    // A variant (a preset's or a request's context size, threads, GPU layers) loads with its own settings.
    const config = withLoadSettings(options.backend, descriptor.load);
    throwIfAborted(signal, `loading ${descriptor.name}`);
    const llama = await this.started(config);
    const threads = threadCount(config.threads, llama.cpuMathCores);
    llama.maxThreads = threads;
    let model: LlamaModel | undefined;
    try {
      model = await llama.loadModel({
        modelPath: descriptor.path,
        useMmap: config.mmap,
        gpuLayers: llamaGpu(config.gpu) === false ? 0 : (config.gpu_layers ?? "auto"),
        ...(signal ? { loadSignal: signal } : {}),
        ...(options.onProgress ? { onLoadProgress: options.onProgress } : {}),
      });
      throwIfAborted(signal, `loading ${descriptor.name}`);
      const context = await model.createContext({
        contextSize: config.context_size,
        batchSize: config.batch_size,
        sequences: parallelCount(config.parallel),
        threads,
        ...(signal ? { createSignal: signal } : {}),
      });
      throwIfAborted(signal, `loading ${descriptor.name}`);
      // What node-llama-cpp counts (weights, context) and what it leaves out, as the pre-load estimate counts it.
      const memory =
        model.size + (await this.contextMemory(descriptor, model, context, config)) + GGUF_FIXED_OVERHEAD_BYTES;
      const events = new HeldEvents<PromptStoreEvent>();
      const store = options.promptStore
        ? await PromptStore.open(options.promptStore, promptBinding(llama, descriptor, model, context), events.emit)
        : null;
      const lib = await loadNodeLlamaCpp();
      return new LlamaTextModel(lib, descriptor, memory, model, context, config, threads, store, events);
    } catch (error) {
      await model?.dispose().catch(() => undefined);
      if (signal?.aborted) throw new Aborted(`loading ${descriptor.name} was aborted`, { cause: error });
      if (isInfernoError(error)) throw error;
      throw new ModelLoadFailed(`llama.cpp could not load ${descriptor.name}: ${(error as Error).message}`, {
        cause: error,
        details: { model: descriptor.name, path: descriptor.path },
      });
    }
  }

  /**
   * The context's RAM + VRAM as node-llama-cpp accounts it (KV cache for all sequences and compute buffers). It finds
   * them by simulating the context in llama.cpp, which costs 5–10 ms of a small model's ~110 ms load: the figure is kept
   * for the file's version and the context's settings, so a model the cache evicts and loads again skips it.
   */
  private async contextMemory(
    descriptor: ModelDescriptor,
    model: LlamaModel,
    context: LlamaContext,
    config: BackendConfig,
  ): Promise<Bytes> {
    const settings = {
      contextSize: context.contextSize,
      modelGpuLayers: model.gpuLayers,
      batchSize: context.batchSize,
      sequences: parallelCount(config.parallel),
      useMmap: config.mmap,
    };
    const { path, fingerprint } = descriptor;
    const key = JSON.stringify([path, fingerprint.size, fingerprint.mtimeMs, settings]);
    const known = this.contextMemoryFigures.get(key);
    if (known !== undefined) return known;
    const { cpuRam, gpuVram } = await model.fileInsights.estimateContextResourceRequirementsV2(settings);
    const figures = this.contextMemoryFigures;
    if (figures.size >= CONTEXT_MEMORY_CACHE_SIZE) figures.delete(figures.keys().next().value as string);
    figures.set(key, cpuRam + gpuVram);
    return cpuRam + gpuVram;
  }

  /**
   * Nothing of its own to release: models are disposed by their holders, and the llama.cpp instance is the process's
   * (`sharedLlama`).
   */
  async dispose(): Promise<void> {}
}

/**
 * A request's options over a preset's (or Modelfile's) defaults: what the request sets wins; the system message and
 * template are not generation options (see `chat` and `chatWrapper`).
 */
function withDefaults<T extends GenerationOptions>(defaults: ModelDefaults | undefined, options: T): T {
  if (!defaults) return options;
  const { system: _system, template: _template, goTemplate: _goTemplate, ...sampling } = defaults;
  const merged: Record<string, unknown> = { ...sampling };
  for (const [key, value] of Object.entries(options)) if (value !== undefined) merged[key] = value;
  return merged as T;
}
