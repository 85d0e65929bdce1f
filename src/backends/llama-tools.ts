/**
 * Tools and structured output on llama.cpp: the chat history in node-llama-cpp's terms (tool calls with their results
 * inside the model's turn, so the model's chat wrapper renders them in its own function-calling format), the
 * functions for `tool_choice: "auto"`, and the grammars for forced calls and structured output.
 *
 * Function-calling formats:
 * - `auto`: node-llama-cpp's chat wrapper for the model decides the format — the model's native one where
 *   node-llama-cpp knows it (Llama 3.x, Qwen, Mistral, Functionary, …), else node-llama-cpp's generic format, in which
 *   the system prompt documents the functions and the model writes `||call: name({"arg": …})`. Once the model starts a
 *   call, a grammar keeps the name among the tools and the arguments valid against the parameters schema.
 * - `required` or a named function (forced): the functions are documented in the system prompt in Inferno's generic
 *   format, and a grammar makes the model write exactly one call as `{"name": "…", "arguments": {…}}` — well formed and
 *   valid even from a random-weight model.
 */
import { randomUUID } from "node:crypto";
import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelFunctions, Llama, LlamaGrammar } from "node-llama-cpp";
import { type PairedMessage, pairToolResults, parseArguments, toolParameters } from "./chat-request.js";
import { grammarSchema } from "./json-schema.js";
import type { ChatMessage, OutputFormat, ToolCall, ToolDefinition } from "./types.js";

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

/** The tools as node-llama-cpp functions (for `auto`). */
export function chatFunctions(tools: readonly ToolDefinition[]): ChatModelFunctions {
  return Object.fromEntries(
    tools.map((tool, index) => [
      tool.name,
      { ...(tool.description ? { description: tool.description } : {}), params: toolParameters(tool, index) as never },
    ]),
  );
}

/** node-llama-cpp's function calls as tool calls with fresh ids. */
export function toolCallsOf(calls: ReadonlyArray<{ functionName: string; params: unknown }> | undefined): ToolCall[] {
  return (calls ?? []).map((c) => ({
    id: newToolCallId(),
    name: c.functionName,
    arguments: JSON.stringify(c.params ?? {}),
  }));
}

/** The system-prompt text documenting the generic forced-call format and the functions. */
export function forcedCallInstructions(tools: readonly ToolDefinition[]): string {
  const lines = tools.map((tool, index) => {
    const description = tool.description ? `: ${tool.description}` : "";
    return `- ${tool.name}${description}\n  arguments (JSON Schema): ${JSON.stringify(toolParameters(tool, index))}`;
  });
  return [
    "You call a function now. Answer with one JSON object and nothing else:",
    '{"name": "<function name>", "arguments": {<the arguments>}}',
    "Functions:",
    ...lines,
  ].join("\n");
}

/** The grammar schema of one forced call: `{"name": <one of the tools>, "arguments": <its parameters>}`. */
function forcedCallSchema(tools: readonly ToolDefinition[]): Record<string, unknown> {
  const branches = tools.map((tool, index) => ({
    type: "object",
    properties: { name: { const: tool.name }, arguments: toolParameters(tool, index) },
  }));
  return branches.length === 1 ? (branches[0] as Record<string, unknown>) : { oneOf: branches };
}

export function forcedCallGrammar(llama: Llama, tools: readonly ToolDefinition[]): Promise<LlamaGrammar> {
  return llama.createGrammarForJsonSchema(forcedCallSchema(tools) as never);
}

/** The call a forced generation wrote, or null when it was cut short (max tokens, abort) before the JSON ended. */
export function parseForcedCall(text: string): ToolCall | null {
  let value: { name?: unknown; arguments?: unknown };
  try {
    value = JSON.parse(text) as typeof value;
  } catch {
    return null;
  }
  if (typeof value.name !== "string") return null;
  return { id: newToolCallId(), name: value.name, arguments: JSON.stringify(value.arguments ?? {}) };
}

/** The grammar for a structured-output format: any JSON object, or JSON valid against the schema. */
export function formatGrammar(llama: Llama, format: OutputFormat): Promise<LlamaGrammar> {
  if (format.type === "json") return llama.getGrammarFor("json");
  return llama.createGrammarForJsonSchema(grammarSchema(format.schema, "format.schema") as never);
}
