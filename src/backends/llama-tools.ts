/**
 * A request's tools, structured output and sampling fields on llama.cpp (sampling: see the last section). Tools and
 * structured output: the chat history in node-llama-cpp's terms (tool calls with their results inside the model's
 * turn, so the model's chat wrapper renders them in its own function-calling format), the functions for
 * `tool_choice: "auto"`, and the grammars for forced calls and structured output.
 *
 * Function-calling formats:
 * - `auto`: node-llama-cpp's chat wrapper for the model decides the format — the model's native one where
 *   node-llama-cpp knows it (Llama 3.x, Qwen, Mistral, Functionary, …), else node-llama-cpp's generic format, in which
 *   the system prompt documents the functions and the model writes `||call: name({"arg": …})`. Once the model starts a
 *   call, a grammar keeps the name among the tools and the arguments valid against the parameters schema.
 * - `required` or a named function (forced): the functions are documented in the system prompt in Inferno's generic
 *   format, and a grammar makes the model write exactly one call as compact `{"name":"…","arguments":{…}}` — well formed
 *   and valid even from a random-weight model, or cut at the token limit and then no call (and no text) at all.
 * - `auto` with a structured-output format (`either`, e.g. the AI SDK's `generateText` with tools and `Output.object`):
 *   the same generic format, and a grammar makes the model write one call or its answer as `{"answer":…}` in the format.
 */
import { randomInt, randomUUID } from "node:crypto";
import type {
  ChatHistoryItem,
  ChatModelFunctionCall,
  ChatModelFunctions,
  Llama,
  LlamaGrammar,
  LlamaModel,
  Token,
  TokenBias,
} from "node-llama-cpp";
import { type PairedMessage, pairToolResults, parseArguments, toolParameters } from "./common.js";
import { BadRequest, OutputInvalid } from "../errors/index.js";
import {
  ANSWER_KEY,
  callGrammar,
  functionParamsSchema,
  jsonObjectGrammar,
  schemaGrammar,
  schemaValidator,
} from "./json-schema.js";
import type { ChatMessage, GenerationOptions, OutputFormat, ToolCall, ToolDefinition } from "./types.js";

export function newToolCallId(): string {
  return `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

/** A tool result as the model sees it: parsed when it is JSON (so the wrapper renders it as such), else the text. */
function resultValue(content: string): unknown {
  try {
    return JSON.parse(content) as unknown;
  } catch {
    return content;
  }
}

function modelTurn(message: Extract<PairedMessage, { role: "assistant" }>): ChatHistoryItem {
  const calls = message.calls.map(({ call, result }, index): ChatModelFunctionCall => ({
    type: "functionCall",
    name: call.name,
    params: parseArguments(call.arguments, "arguments"),
    result: resultValue(result),
    ...(index === 0 ? { startsNewChunk: true } : {}),
  }));
  return { type: "model", response: [...(message.content ? [message.content] : []), ...calls] };
}

/**
 * The chat history for node-llama-cpp, ending with the model turn to generate: a new one, or — when the conversation
 * ends with tool results — the assistant turn that made the calls, which the model continues after the results.
 * `instructions` (forced calls) are added to the system prompt.
 */
export function chatHistory(messages: readonly ChatMessage[], instructions?: string): ChatHistoryItem[] {
  const paired = pairToolResults(messages);
  const history: ChatHistoryItem[] = paired.map((m) =>
    m.role === "assistant" ? modelTurn(m) : { type: m.role, text: m.content },
  );
  if (instructions !== undefined) {
    const first = history[0];
    if (first?.type === "system") history[0] = { type: "system", text: `${first.text}\n\n${instructions}` };
    else history.unshift({ type: "system", text: instructions });
  }
  const last = paired.at(-1);
  if (!(last?.role === "assistant" && last.calls.length > 0)) history.push({ type: "model", response: [] });
  return history;
}

/** The tools as node-llama-cpp functions (for `auto`), in the subset its function calling writes. */
export function chatFunctions(tools: readonly ToolDefinition[]): ChatModelFunctions {
  return Object.fromEntries(
    tools.map((tool, index) => [
      tool.name,
      {
        ...(tool.description ? { description: tool.description } : {}),
        params: functionParamsSchema(toolParameters(tool, index)) as never,
      },
    ]),
  );
}

/**
 * node-llama-cpp's function calls as tool calls with fresh ids, each checked against its tool's parameters (the
 * grammar node-llama-cpp writes them with knows fewer keywords): a call that breaks them is `OutputInvalid`.
 */
export function toolCallsOf(
  calls: ReadonlyArray<{ functionName: string; params: unknown }> | undefined,
  tools: readonly ToolDefinition[],
  text: string,
): ToolCall[] {
  return (calls ?? []).map((c) => {
    const index = tools.findIndex((t) => t.name === c.functionName);
    const tool = tools[index];
    const params = c.params ?? {};
    const reason = tool ? schemaValidator(toolParameters(tool, index))(params) : "names no tool";
    if (reason !== undefined) invalid(`the call of ${c.functionName}: ${reason}`, text || JSON.stringify(params));
    return { id: newToolCallId(), name: c.functionName, arguments: JSON.stringify(params) };
  });
}

function invalid(reason: string, text: string): never {
  throw new OutputInvalid(`the model's answer does not validate: ${reason}`, { details: { reason, text } });
}

function functionLines(tools: readonly ToolDefinition[]): string[] {
  return tools.map((tool, index) => {
    const description = tool.description ? `: ${tool.description}` : "";
    return `- ${tool.name}${description}\n  arguments (JSON Schema): ${JSON.stringify(toolParameters(tool, index))}`;
  });
}

/** The system-prompt text documenting the generic forced-call format and the functions. */
export function forcedCallInstructions(tools: readonly ToolDefinition[]): string {
  return [
    "You call a function now. Answer with one JSON object and nothing else:",
    '{"name":"<function name>","arguments":{<the arguments>}}',
    "Functions:",
    ...functionLines(tools),
  ].join("\n");
}

/** The system-prompt text of `either`: one call in the generic forced-call format, or the answer in the format. */
export function eitherInstructions(tools: readonly ToolDefinition[], format: OutputFormat): string {
  const answer = format.type === "json" ? "a JSON object" : `JSON valid against ${JSON.stringify(format.schema)}`;
  return [
    "Answer with one JSON object and nothing else: either a function call,",
    '{"name":"<function name>","arguments":{<the arguments>}}',
    `or, when you need no function, your answer as {"${ANSWER_KEY}":<your answer>}, where your answer is ${answer}.`,
    "Functions:",
    ...functionLines(tools),
  ].join("\n");
}

/** Grammars compiled for a llama.cpp instance, by their text (the last few dozen kept). */
const grammars = new WeakMap<Llama, Map<string, Promise<LlamaGrammar>>>();
const GRAMMARS_KEPT = 64;

function grammar(llama: Llama, text: string): Promise<LlamaGrammar> {
  let kept = grammars.get(llama);
  if (!kept) grammars.set(llama, (kept = new Map()));
  let compiled = kept.get(text);
  if (!compiled) {
    compiled = llama.createGrammar({ grammar: text });
    compiled.catch(() => kept.delete(text));
    if (kept.size >= GRAMMARS_KEPT) kept.delete(kept.keys().next().value as string);
    kept.set(text, compiled);
  }
  return compiled;
}

/** The grammar of one forced call: `{"name":<one of the tools>,"arguments":<its parameters>}`, compact. */
export function forcedCallGrammar(llama: Llama, tools: readonly ToolDefinition[]): Promise<LlamaGrammar> {
  return grammar(
    llama,
    callGrammar(tools.map((tool, index) => ({ name: tool.name, parameters: toolParameters(tool, index), index }))),
  );
}

/** The grammar of `either`: one call among the tools, or `{"answer":…}` holding the answer in the format. */
export function eitherGrammar(
  llama: Llama,
  tools: readonly ToolDefinition[],
  format: OutputFormat,
): Promise<LlamaGrammar> {
  const calls = tools.map((tool, index) => ({ name: tool.name, parameters: toolParameters(tool, index), index }));
  return grammar(
    llama,
    callGrammar(calls, { schema: format.type === "json" ? true : format.schema, path: "format.schema" }),
  );
}

/**
 * What an `either` generation wrote: a call, or the answer's text (the JSON inside `{"answer":…}`, as the grammar wrote
 * it). A generation cut short gives no call, and the answer written so far when it had begun one.
 */
export function parseEither(
  text: string,
  finished: boolean,
  tools: readonly ToolDefinition[],
  format: OutputFormat,
): { text: string; toolCalls?: ToolCall[] } {
  const opening = `{"${ANSWER_KEY}":`;
  const answer = text.startsWith(opening);
  if (!finished) return { text: answer ? text.slice(opening.length) : "" };
  if (!answer) return { text: "", toolCalls: [parseForcedCall(text, tools)] };
  const inner = text.slice(opening.length, -1);
  checkFormatAnswer(format, inner);
  return { text: inner };
}

/**
 * The call a forced generation wrote. Only a generation that ended by itself is read: one cut short (max tokens,
 * abort) gives no call and no text. A finished answer that is no valid call is `OutputInvalid`.
 */
export function parseForcedCall(text: string, tools: readonly ToolDefinition[]): ToolCall {
  let value: { name?: unknown; arguments?: unknown };
  try {
    value = JSON.parse(text) as typeof value;
  } catch {
    invalid("not JSON", text);
  }
  const index = tools.findIndex((t) => t.name === value.name);
  const tool = tools[index];
  if (!tool) invalid(`names no tool: ${JSON.stringify(value.name)}`, text);
  const reason = schemaValidator(toolParameters(tool, index))(value.arguments);
  if (reason !== undefined) invalid(`the arguments of ${tool.name}: ${reason}`, text);
  return { id: newToolCallId(), name: tool.name, arguments: JSON.stringify(value.arguments) };
}

/** The grammar for a structured-output format: any JSON object, or JSON valid against the schema; compact. */
export function formatGrammar(llama: Llama, format: OutputFormat): Promise<LlamaGrammar> {
  return grammar(llama, format.type === "json" ? jsonObjectGrammar() : schemaGrammar(format.schema, "format.schema"));
}

/** Checks a finished structured answer: `OutputInvalid` when it is not JSON of the format. */
export function checkFormatAnswer(format: OutputFormat, text: string): void {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    invalid("not JSON", text);
  }
  if (format.type === "json") {
    if (typeof value !== "object" || value === null || Array.isArray(value)) invalid("not a JSON object", text);
    return;
  }
  const reason = schemaValidator(format.schema)(value);
  if (reason !== undefined) invalid(reason, text);
}

// ---------------------------------------------------------------------------------------------------------------------
// Sampling
//
// OpenAI's and Ollama's sampling fields on node-llama-cpp's sampler: top-k, min-p, frequency and presence penalties
// (llama.cpp's penalties sampler subtracts `count × frequency + presence` from a generated token's logit, as OpenAI
// defines them) and logit bias (added to the logit; -100 bans the token, except end-of-generation tokens, which
// node-llama-cpp never bans).

/** llama.cpp reads this seed as "draw one at random" (LLAMA_DEFAULT_SEED): no seed a request names may become it. */
const LLAMA_RANDOM_SEED = 2 ** 32 - 1;

/**
 * The seed of a generation. A request that names none gets one drawn at random, as Ollama does: node-llama-cpp's own
 * default is the time in whole seconds, so requests within a second sampled the same answer (retries, regenerate and
 * best-of-N loops got copies). A named seed reproduces its answer exactly (same prompt, model and settings); any integer
 * is taken modulo 2^32 - 1, so negative and large seeds are reproducible too.
 */
export function samplingSeed(seed: number | undefined): number {
  if (seed === undefined) return randomInt(0, LLAMA_RANDOM_SEED);
  return ((Math.trunc(seed) % LLAMA_RANDOM_SEED) + LLAMA_RANDOM_SEED) % LLAMA_RANDOM_SEED;
}

/** OpenAI's logit bias of -100 means "never"; node-llama-cpp's `"never"` does exactly that. */
const BAN = -100;

/** Number of tokens in the model's vocabulary, from its GGUF header. */
function vocabularySize(model: LlamaModel): number {
  const metadata = model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } };
  return metadata.tokenizer?.ggml?.tokens?.length ?? Number.POSITIVE_INFINITY;
}

/** node-llama-cpp's `TokenBias` class, handed in: this module never imports node-llama-cpp itself (it loads lazily). */
export type TokenBiasClass = typeof TokenBias;

function tokenBias(Bias: TokenBiasClass, model: LlamaModel, biases: Record<string, number>): TokenBias {
  const bias = Bias.for(model);
  const size = vocabularySize(model);
  for (const [key, value] of Object.entries(biases)) {
    const token = Number(key);
    if (!Number.isInteger(token) || token < 0 || token >= size) {
      throw new BadRequest(
        `logit_bias: token id ${JSON.stringify(key)} is not in this model's vocabulary (0..${size - 1})`,
        {
          details: { param: "logit_bias" },
        },
      );
    }
    bias.set(token as Token, value <= BAN ? "never" : { logit: value });
  }
  return bias;
}

/**
 * The sampler settings for the optional fields. The penalties look back over the last `repeatLastN` generated tokens
 * (default: everything generated in this request, `lastTokens` = the context size; 0 switches them off).
 */
export function samplerSettings(
  options: GenerationOptions,
  model: LlamaModel,
  contextSize: number,
  Bias: TokenBiasClass,
) {
  const penalties =
    options.frequencyPenalty !== undefined ||
    options.presencePenalty !== undefined ||
    options.repeatPenalty !== undefined;
  const lastTokens = options.repeatLastN === undefined || options.repeatLastN < 0 ? contextSize : options.repeatLastN;
  return {
    ...(options.topK !== undefined ? { topK: options.topK } : {}),
    ...(options.minP !== undefined ? { minP: options.minP } : {}),
    ...(penalties
      ? {
          repeatPenalty: {
            lastTokens,
            frequencyPenalty: options.frequencyPenalty ?? 0,
            presencePenalty: options.presencePenalty ?? 0,
            ...(options.repeatPenalty !== undefined ? { penalty: options.repeatPenalty } : {}),
          },
        }
      : {}),
    ...(options.logitBias && Object.keys(options.logitBias).length > 0
      ? { tokenBias: tokenBias(Bias, model, options.logitBias) }
      : {}),
  };
}
