/**
 * `POST /v1/responses`: OpenAI's Responses API, stateless. The input (a string, or message, `function_call` and
 * `function_call_output` items) becomes a chat for the model's chat template; function tools, `tool_choice` and
 * `text.format` work as on chat completions. With `stream: true` the reply is the Responses event sequence:
 * `response.created`, `response.in_progress`, then per output item `response.output_item.added`, its content events
 * (`response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
 * `response.content_part.done`, or `response.function_call_arguments.delta`/`.done`), `response.output_item.done`, and
 * finally `response.completed` (or `response.incomplete` when `max_output_tokens` cut it short).
 */
import { Hono } from "hono";
import { checkChat, type FieldNames } from "../backends/common.js";
import { BadRequest } from "../errors/index.js";
import type { ChatMessage, ChatOptions, GenerationResult, OutputFormat, ToolCall } from "../backends/types.js";
import type { AppDeps, AppEnv } from "./context.js";
import { checkListLength, parseBody, truncateTo } from "./schemas.js";
import { type Dialect, dialectRoute, type Finished, type Reply, SSE_FRAMING } from "./generation.js";
import { newId, openaiGeneration, textOf, toolDefinition, unixSeconds } from "./openai.js";
import { type ResponsesInputItem, type ResponsesRequest, responsesRequestSchema } from "./responses-schemas.js";

/** An input item as it is replayed: an `item_reference` stands for the output item it names. */
type ReplayedItem = Exclude<ResponsesInputItem, { type: "item_reference" }>;

/**
 * The output items of the server's most recent responses, by id, so `item_reference` input items resolve: the AI SDK's
 * default Responses provider (`store` defaults to true in it) sends the assistant's earlier messages as references to
 * their ids. The oldest are forgotten first; nothing else is stored.
 */
export class RecentItems {
  private readonly items = new Map<string, ReplayedItem>();

  constructor(
    /** Output items kept at most. */
    readonly capacity: number,
  ) {}

  remember(output: ReadonlyArray<{ id: string } & ReplayedItem>): void {
    for (const { id, ...item } of output) {
      this.items.delete(id);
      this.items.set(id, item as ReplayedItem);
      if (this.items.size > this.capacity) this.items.delete(this.items.keys().next().value as string);
    }
  }

  /** The item a reference at `input[index]` names, or BadRequest naming the field. */
  resolve(id: string, index: number): ReplayedItem {
    const item = this.items.get(id);
    if (item) return item;
    throw new BadRequest(
      `input[${index}].id: no output item ${JSON.stringify(id)} among the last ${this.capacity} this server sent (Inferno stores no responses; send the items themselves, with the AI SDK by setting providerOptions.openai.store = false)`,
      { details: { param: `input[${index}].id` } },
    );
  }
}

/** Output items kept for `item_reference` (a few hundred conversations' worth; each item holds one answer's text). */
const RECENT_ITEMS = 4096;

/** The conversation, and how its messages map back to `input[i]` for error messages. */
function conversation(body: ResponsesRequest, recent: RecentItems): { messages: ChatMessage[]; fields: FieldNames } {
  const messages: ChatMessage[] = [];
  const origin: number[] = [];
  const callOrigin = new Map<number, number[]>();
  if (body.instructions) {
    messages.push({ role: "system", content: body.instructions });
    origin.push(-1);
  }
  const items: ReplayedItem[] =
    typeof body.input === "string"
      ? [{ type: "message", role: "user", content: body.input }]
      : body.input.map((item, index) => (item.type === "item_reference" ? recent.resolve(item.id, index) : item));
  for (const [index, item] of items.entries()) {
    if (item.type === "message") {
      const content = textOf(item.content);
      messages.push(
        item.role === "assistant"
          ? { role: "assistant", content }
          : { role: item.role === "developer" ? "system" : item.role, content },
      );
      origin.push(index);
    } else if (item.type === "function_call") {
      // Calls that follow an assistant message (or each other) belong to that assistant turn.
      const call: ToolCall = { id: item.call_id, name: item.name, arguments: item.arguments };
      const last = messages.at(-1);
      const previous = items[index - 1];
      if (last?.role === "assistant" && (previous?.type === "function_call" || previous?.type === "message")) {
        last.toolCalls = [...(last.toolCalls ?? []), call];
        const origins = callOrigin.get(messages.length - 1) ?? [];
        origins.push(index);
        callOrigin.set(messages.length - 1, origins);
      } else {
        messages.push({ role: "assistant", content: null, toolCalls: [call] });
        origin.push(index);
        callOrigin.set(messages.length - 1, [index]);
      }
    } else if (item.type === "function_call_output") {
      messages.push({ role: "tool", content: textOf(item.output), toolCallId: item.call_id });
      origin.push(index);
    }
  }
  const itemPath = (index: number | undefined) =>
    index === undefined || index < 0 ? "instructions" : `input[${index}]`;
  const fields: FieldNames = {
    message: (index, field) =>
      `${itemPath(origin[index])}${field === "tool_call_id" ? ".call_id" : field ? `.${field}` : ""}`,
    toolCall: (m, c, field) => `${itemPath(callOrigin.get(m)?.[c] ?? origin[m])}${field ? ".arguments" : ""}`,
    tool: (index, field) => `tools[${index}].${field}`,
    toolChoice: "tool_choice",
    formatSchema: "text.format.schema",
  };
  return { messages, fields };
}

function outputFormat(format: NonNullable<ResponsesRequest["text"]>["format"]): OutputFormat | undefined {
  if (!format || format.type === "text") return undefined;
  if (format.type === "json_object") return { type: "json" };
  return { type: "json_schema", schema: format.schema };
}

function responseChatOptions(body: ResponsesRequest): ChatOptions {
  const options: ChatOptions = {};
  if (body.tools && body.tools.length > 0) {
    options.tools = body.tools.map(toolDefinition);
  }
  const choice = body.tool_choice;
  if (choice != null) options.toolChoice = typeof choice === "string" ? choice : { name: choice.name };
  if (body.parallel_tool_calls != null) options.parallelToolCalls = body.parallel_tool_calls;
  const format = outputFormat(body.text?.format);
  if (format) options.format = format;
  return options;
}

type Status = "in_progress" | "completed" | "incomplete";

function messageItem(id: string, text: string, status: Status) {
  return {
    type: "message" as const,
    id,
    status,
    role: "assistant" as const,
    content: status === "in_progress" ? [] : [textPart(text)],
  };
}

const textPart = (text: string) => ({ type: "output_text" as const, text, annotations: [], logprobs: [] });

function functionCallItem(call: ToolCall, status: Status, args = call.arguments) {
  return {
    type: "function_call" as const,
    id: `fc_${call.id}`,
    call_id: call.id,
    name: call.name,
    arguments: args,
    status,
  };
}

function usageOf(result: GenerationResult) {
  const { promptTokens: input, completionTokens: output, cachedPromptTokens = 0 } = result.usage;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: cachedPromptTokens },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + output,
  };
}

/** The response object, as `response.created` (no output yet) and as the final result. */
function responseObject(
  meta: { id: string; createdAt: number },
  body: ResponsesRequest,
  state: { status: Status; output: unknown[]; result?: GenerationResult },
) {
  const incomplete = state.status === "incomplete";
  return {
    id: meta.id,
    object: "response",
    created_at: meta.createdAt,
    status: state.status,
    error: null,
    incomplete_details: incomplete ? { reason: "max_output_tokens" } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: body.model,
    output: state.output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    temperature: body.temperature ?? null,
    text: { format: body.text?.format ?? { type: "text" } },
    tool_choice: body.tool_choice ?? "auto",
    tools: (body.tools ?? []).map((t) => ({ ...t, strict: t.strict ?? false })),
    top_p: body.top_p ?? null,
    truncation: body.truncation ?? "disabled",
    usage: state.result ? usageOf(state.result) : null,
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  };
}

/** The output items of a finished generation: the text as a message (when there is text or nothing else), then calls. */
function outputItems(messageId: string, result: GenerationResult) {
  const calls = (result.toolCalls ?? []).map((call) => functionCallItem(call, "completed"));
  const message = result.text !== "" || calls.length === 0 ? [messageItem(messageId, result.text, "completed")] : [];
  return [...message, ...calls];
}

/** Parses a Responses request: the conversation and tools checked before any model is used. */
const createResponse =
  (recent: RecentItems): Dialect =>
  (input, deps) => {
    const body = parseBody(responsesRequestSchema, input);
    const { server } = deps.runtime.config;
    checkListLength(body.input, server.max_messages, "input", "max_messages");
    const { messages, fields } = conversation(body, recent);
    const chat = responseChatOptions(body);
    checkChat(messages, chat, fields);
    const turns = [{ messages, promptParam: "input" }];
    const extra = { ...truncateTo(body.truncation === "auto"), ...chat };
    return {
      request: openaiGeneration(deps, body, "responses", turns, body.max_output_tokens, extra),
      reply: responseReply(body, recent),
    };
  };

/** The response object, or the Responses event sequence (see the top of this file); its output items remembered. */
function responseReply(body: ResponsesRequest, recent: RecentItems): Reply {
  const meta = { id: newId("resp"), createdAt: unixSeconds() };
  const messageId = newId("msg");
  const statusOf = (result: Finished): Status => (result.finishReason === "length" ? "incomplete" : "completed");
  let sequence = 0;
  let started = false;
  const part = { item_id: messageId, output_index: 0, content_index: 0 };
  return {
    framing: SSE_FRAMING,
    event(event, sendData) {
      const send = (type: string, fields: object) => sendData({ type, sequence_number: sequence++, ...fields });
      const startMessage = () => {
        if (started) return;
        started = true;
        send("response.output_item.added", { output_index: 0, item: messageItem(messageId, "", "in_progress") });
        send("response.content_part.added", { ...part, part: textPart("") });
      };
      if (event.type === "start") {
        send("response.created", { response: responseObject(meta, body, { status: "in_progress", output: [] }) });
        send("response.in_progress", { response: responseObject(meta, body, { status: "in_progress", output: [] }) });
        return;
      }
      if (event.type === "text") {
        startMessage();
        send("response.output_text.delta", { ...part, delta: event.text, logprobs: [] });
        return;
      }
      const result = event.results[0] as Finished;
      const status = statusOf(result);
      const calls = result.toolCalls ?? [];
      if (result.text !== "" || calls.length === 0) {
        startMessage();
        send("response.output_text.done", { ...part, text: result.text, logprobs: [] });
        send("response.content_part.done", { ...part, part: textPart(result.text) });
        send("response.output_item.done", {
          output_index: 0,
          item: messageItem(messageId, result.text, "completed"),
        });
      }
      const first = started ? 1 : 0;
      for (const [offset, call] of calls.entries()) {
        const outputIndex = first + offset;
        const itemId = `fc_${call.id}`;
        send("response.output_item.added", {
          output_index: outputIndex,
          item: functionCallItem(call, "in_progress", ""),
        });
        send("response.function_call_arguments.delta", {
          item_id: itemId,
          output_index: outputIndex,
          delta: call.arguments,
        });
        send("response.function_call_arguments.done", {
          item_id: itemId,
          output_index: outputIndex,
          name: call.name,
          arguments: call.arguments,
        });
        send("response.output_item.done", { output_index: outputIndex, item: functionCallItem(call, "completed") });
      }
      const output = outputItems(messageId, result);
      recent.remember(output);
      send(status === "completed" ? "response.completed" : "response.incomplete", {
        response: responseObject(meta, body, { status, output, result }),
      });
    },
    body({ results }) {
      const result = results[0] as Finished;
      const output = outputItems(messageId, result);
      recent.remember(output);
      return responseObject(meta, body, { status: statusOf(result), output, result });
    },
  };
}

export function responsesRoutes(deps: AppDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.post("/v1/responses", dialectRoute(deps, createResponse(new RecentItems(RECENT_ITEMS))));
  return routes;
}
