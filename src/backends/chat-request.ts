/**
 * Checks of a chat request that need no model: tool definitions, `tool_choice`, structured output schemas, and how
 * tool messages answer the calls of an earlier assistant message. One home for both users: the server runs
 * `checkChat` before it leases a model (bad input is a 400 with nothing loaded), and the llama backend builds its
 * chat history from `pairToolResults`. Error paths use the request's own field names (`FieldNames`; by default
 * OpenAI's chat completions: `messages[3].tool_call_id`, `tools[0].function.parameters`, which Ollama's chat API
 * shares). Pure: plain data in, plain data out.
 */
import { BadRequest } from "../errors/index.js";
import { checkSchema } from "./json-schema.js";
import type { ChatMessage, ChatOptions, GenerationOptions, ToolCall, ToolDefinition } from "./types.js";

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
  /** The structured-output format field and the path of its schema. */
  format: string;
  formatSchema: string;
}

const suffix = (field?: string) => (field ? `.${field}` : "");

/** OpenAI chat completions' names (Ollama's chat API uses the same for messages and tools). */
export const CHAT_FIELDS: FieldNames = {
  message: (index, field) => `messages[${index}]${suffix(field)}`,
  toolCall: (m, c, field) => `messages[${m}].tool_calls[${c}]${suffix(field)}`,
  tool: (index, field) => `tools[${index}].function.${field}`,
  toolChoice: "tool_choice",
  format: "response_format",
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

/** Whether a generation may call tools, and how: `none` (plain text), `auto`, or `forced` (a grammar writes one call). */
export type ToolMode = { mode: "none" } | { mode: "auto" } | { mode: "forced"; tools: ToolDefinition[] };

export function toolMode(options: ChatOptions): ToolMode {
  const tools = options.tools ?? [];
  const choice = options.toolChoice ?? "auto";
  if (tools.length === 0 || choice === "none") return { mode: "none" };
  if (choice === "auto") return { mode: "auto" };
  if (choice === "required") return { mode: "forced", tools };
  return { mode: "forced", tools: tools.filter((t) => t.name === choice.name) };
}

/** Checks a structured-output format (its schema compiles to a grammar). `param` names the schema's field. */
export function checkFormat(format: GenerationOptions["format"], param: string): void {
  if (format?.type === "json_schema") checkSchema(format.schema, param);
}

/**
 * Everything about a chat request that can be wrong without a model: tool names and parameter schemas, a
 * `tool_choice` naming no tool, a schema that cannot compile, tools that may be called together with a grammar-bound
 * format, and tool messages that answer nothing. Throws BadRequest naming the field.
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
  if (options.format && toolMode(options).mode === "auto") {
    refuse(
      fields.format,
      'cannot be combined with tools the model may call (tool choice "auto"): use "none", "required" or a named function',
    );
  }
  pairToolResults(messages, fields);
}
