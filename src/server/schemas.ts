/**
 * Request bodies, validated with zod. A body that does not fit is a 400 whose message and `param` name the field
 * (`messages[0].content`), what was expected and what was found. Every field is either honoured, refused by name, or on
 * the short list of fields with no effect for a local server (`ACCEPTED_WITHOUT_EFFECT`); an unknown field is refused
 * too, so nothing that would change the output is silently dropped.
 *
 * Request bounds live here too: the list lengths and the server's cap on generated tokens, applied before a model is
 * used. The bounds the loaded context sets (a prompt that does not fit, tokens left to generate) are the backend's — it
 * knows the context (`promptTokenLimit` in backends/common.ts) — and the extension fields that ask for truncation are
 * mapped to its one option here.
 */
import { z } from "zod";
import { STRING_LIMITS, boundedString as shortText, metadata, modelName, shortName } from "./strings.js";
import { BadRequest } from "../errors/index.js";
import { KeepAliveSyntaxError, parseKeepAlive } from "./keep-alive.js";
import type { ServerConfig } from "../config/schema.js";

/** `keep_alive` as Ollama spells it (see keep-alive.ts), parsed to seconds; shared by the OpenAI and Ollama bodies. */
export const keepAlive = z.union([shortName(), z.number()]).transform((value, ctx) => {
  try {
    return parseKeepAlive(value);
  } catch (error) {
    if (!(error instanceof KeepAliveSyntaxError)) throw error;
    ctx.addIssue({ code: "custom", message: error.message });
    return z.NEVER;
  }
});

/** A field Inferno cannot honour, refused with `message` as the whole sentence: absent, null, false or one of `asked`
 * (values that ask for nothing Inferno lacks, such as `top_logprobs: 0`) is fine. */
export const refusedBecause = (message: string, ...asked: unknown[]) =>
  z
    .unknown()
    .refine((value) => value === undefined || value === null || value === false || asked.includes(value), { message })
    .optional();

/** A field Inferno cannot honour: absent, null, false or one of `asked` is fine, anything else is refused by name. */
export const unsupported = (what: string, ...asked: unknown[]) => refusedBecause(`${what} not supported`, ...asked);

const onlyOne = z
  .number()
  .int()
  .refine((n) => n === 1, { message: "only n = 1 is supported" })
  .nullish();

const stop = z.union([shortText(STRING_LIMITS.stop), z.array(shortText(STRING_LIMITS.stop)).max(4)]).nullish();

/**
 * Fields with no behaviour for a local server, accepted so that clients which always send them keep working: who the
 * end user is, tags, billing tier, OpenAI's prompt-cache hints (the prompt cache here needs none: see
 * `cache_prompt`), abuse ids and
 * output predictions (a speed hint). `store` is accepted only as false: Inferno keeps nothing. Listed in docs/api.md
 * ("Accepted without effect"); `ACCEPTED_WITHOUT_EFFECT` is that list.
 */
export const withoutEffect = {
  user: shortName().nullish(),
  metadata: metadata().nullish(),
  service_tier: shortName().nullish(),
  store: z
    .boolean()
    .refine((value) => value === false, {
      message: "true is not supported: Inferno is stateless and keeps no responses",
    })
    .nullish(),
  prompt_cache_key: shortName().nullish(),
  prompt_cache_retention: shortName().nullish(),
  prompt_cache_options: z.unknown().optional(),
  safety_identifier: shortName().nullish(),
  prediction: z.unknown().optional(),
};
export const ACCEPTED_WITHOUT_EFFECT: readonly string[] = [
  ...Object.keys(withoutEffect),
  "stream_options.include_obfuscation",
];

export const penalty = z.number().min(-2).max(2).nullish();

/**
 * An extension, vLLM's name for it: what to do with a prompt the loaded context cannot hold. Absent: a 400
 * (`context_length_exceeded`) naming the token counts. `-1`: truncate to what fits; `n > 0`: keep at most `n` tokens. A
 * completion keeps the end of its prompt, a chat drops its oldest messages (the system messages and the last message
 * stay), an embedding input keeps its beginning.
 */
export const truncatePromptTokens = z
  .number()
  .int()
  .refine((n) => n === -1 || n > 0, {
    message: "expected -1 (truncate to what the context holds) or a positive number of tokens",
  })
  .nullish();

/** The samplers every OpenAI body takes (chat, text completions, Responses). `top_k` and `min_p` are extensions. */
export const samplers = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  frequency_penalty: penalty,
  presence_penalty: penalty,
};

/** Sampling settings shared by chat and text completions (llama.cpp's samplers, and how the answer is sent). */
const sampling = {
  ...samplers,
  logit_bias: z
    .record(shortName(), z.number().min(-100).max(100))
    .superRefine((biases, ctx) => {
      for (const key of Object.keys(biases)) {
        if (!/^\d+$/.test(key))
          ctx.addIssue({ code: "custom", path: [key], message: "expected token ids (non-negative integers) as keys" });
      }
    })
    .nullish(),
  seed: z.number().int().nullish(),
  stop,
  n: onlyOne,
  stream: z.boolean().nullish(),
  stream_options: z
    .strictObject({ include_usage: z.boolean().nullish(), include_obfuscation: z.boolean().nullish() })
    .nullish(),
  keep_alive: keepAlive.optional(),
  truncate_prompt_tokens: truncatePromptTokens,
  cache_prompt: z.boolean().nullish(),
  logprobs: unsupported("log probabilities are"),
  ...withoutEffect,
};

const textPart = z.strictObject({ type: z.literal("text"), text: z.string() });
/** The message for a content part of an unknown type. */
const partTypes = (types: string) => ({ error: `expected a content part of type ${types}` });
/** The message for content that is neither a string nor a list of parts. */
const contentOf = (types: string) => ({ error: `expected a string or a non-empty list of content parts (${types})` });
const textContent = z.union(
  [z.string(), z.array(z.discriminatedUnion("type", [textPart], partTypes("text"))).min(1)],
  contentOf("text"),
);

/** A content part Inferno's models cannot read: refused with a sentence that says why (not zod's "Invalid input"). */
const refusedPart = (type: string, why: string) =>
  z
    .looseObject({ type: z.literal(type) })
    .superRefine((_, ctx) => {
      ctx.addIssue({ code: "custom", message: `${type} content parts are not supported: ${why}` });
    })
    .transform(() => z.NEVER);
const NO_VISION = "the model has no vision (Inferno runs text-only models); send text instead";
/** What a user may send: text, and the parts OpenAI's multimodal models read, refused by name. */
const userContent = z.union(
  [
    z.string(),
    z
      .array(
        z.discriminatedUnion(
          "type",
          [
            textPart,
            refusedPart("image_url", NO_VISION),
            refusedPart("input_audio", "the model takes no audio (Inferno runs text-only models)"),
            refusedPart("file", "the model reads no files (Inferno runs text-only models); send their text instead"),
          ],
          partTypes("text, image_url, input_audio or file"),
        ),
      )
      .min(1),
  ],
  contentOf("text, image_url, input_audio, file"),
);
/** An assistant's refusal (a part or the `refusal` field) is what it said: it stays in the history as its text. */
const refusalPart = z
  .strictObject({ type: z.literal("refusal"), refusal: z.string() })
  .transform((part) => ({ type: "text" as const, text: part.refusal }));
const assistantContent = z.union(
  [z.string(), z.array(z.discriminatedUnion("type", [textPart, refusalPart], partTypes("text or refusal"))).min(1)],
  contentOf("text, refusal"),
);

const toolCallSchema = z.strictObject({
  id: shortName().min(1),
  type: z.literal("function"),
  function: z.strictObject({ name: shortName().min(1), arguments: z.string() }),
});

/**
 * A participant's name, on any message: LangChain's ChatOpenAI puts the function's name on tool messages, LangGraph the
 * agent's on its messages. The chat templates Inferno renders have no place for it (tool results are paired with their
 * calls by `tool_call_id`), so it is accepted without effect (`MESSAGE_FIELDS_WITHOUT_EFFECT`).
 */
const name = shortName().nullish();

/** Message fields accepted without effect, as `messages[].FIELD` (the docs list them beside ACCEPTED_WITHOUT_EFFECT). */
export const MESSAGE_FIELDS_WITHOUT_EFFECT: readonly string[] = ["name", "audio.id"];

const messageSchema = z.discriminatedUnion("role", [
  z.strictObject({ role: z.enum(["system", "developer"]), content: textContent, name }),
  z.strictObject({ role: z.literal("user"), content: userContent, name }),
  z
    .strictObject({
      role: z.literal("assistant"),
      content: assistantContent.nullish(),
      tool_calls: z.array(toolCallSchema).nullish(),
      refusal: z.string().nullish(),
      name,
      function_call: unsupported("function_call (the deprecated form of tool_calls) is"),
      // A reference to an earlier audio answer: Inferno gives none, and the text of the turn is its content.
      audio: z.strictObject({ id: shortName() }).nullish(),
    })
    .transform(({ refusal, ...message }) =>
      // A refusal given as the field (with no content) is the turn's text.
      message.content == null && refusal != null && (message.tool_calls?.length ?? 0) === 0
        ? { ...message, content: refusal }
        : message,
    )
    .refine((m) => m.content != null || (m.tool_calls?.length ?? 0) > 0, {
      message: "an assistant message needs content, a refusal or tool_calls",
    }),
  z.strictObject({ role: z.literal("tool"), content: textContent, tool_call_id: shortName().min(1), name }),
]);

const functionSchema = z.strictObject({
  name: shortName().min(1),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const toolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  z.strictObject({ type: z.literal("function"), function: z.strictObject({ name: shortName().min(1) }) }),
]);

const responseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    json_schema: z.strictObject({
      name: shortName().min(1),
      description: z.string().nullish(),
      schema: z.record(z.string(), z.unknown()).nullish(),
      strict: z.boolean().nullish(),
    }),
  }),
]);

export const chatRequestSchema = z.strictObject({
  model: modelName(),
  messages: z.array(messageSchema).min(1),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  tools: z.array(z.strictObject({ type: z.literal("function"), function: functionSchema })).nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: responseFormat.nullish(),
  top_logprobs: unsupported("log probabilities are", 0),
  audio: unsupported("audio output is"),
  modalities: z
    .array(shortName())
    .max(4)
    .refine((m) => m.every((x) => x === "text"), { message: 'only the "text" modality is supported' })
    .nullish(),
  // "none" asks for no reasoning, which is what these models do.
  reasoning_effort: refusedBecause(
    'reasoning_effort is not supported: the models Inferno runs have no reasoning budget to set; leave it out (or "none")',
    "none",
  ),
  verbosity: unsupported("verbosity is"),
  web_search_options: unsupported("web search is"),
  moderation: unsupported("moderation is"),
  functions: unsupported("functions (deprecated; use tools) are"),
  function_call: unsupported("function_call (deprecated; use tool_choice) is"),
  ...sampling,
});

export const completionRequestSchema = z.strictObject({
  model: modelName(),
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  // OpenAI's legacy completions default to 16 tokens; clients rely on that.
  max_tokens: z.number().int().positive().nullish(),
  echo: z.boolean().nullish(),
  suffix: unsupported("suffix is"),
  best_of: onlyOne,
  ...sampling,
});

export const embeddingRequestSchema = z.object({
  model: modelName(),
  input: z.union([z.string(), z.array(z.string()).min(1)]),
  encoding_format: z.enum(["float", "base64"]).optional(),
  dimensions: refusedBecause("choosing dimensions is not supported (embeddings have the model's own size)"),
  keep_alive: keepAlive.optional(),
  truncate_prompt_tokens: truncatePromptTokens,
});

export const loadRequestSchema = z.object({ keep_alive: keepAlive.optional() });

export const clearRequestSchema = z.object({
  model: modelName().optional(),
  force: z.boolean().optional(),
  stats: z.boolean().optional(),
});

export const warmupRequestSchema = z.object({
  models: z.array(modelName()).optional(),
  strategy: z.enum(["usage", "recent", "priority", "hybrid", "none"]).optional(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
/** The sampling fields chat and text completions share (and the Responses API a subset of). */
export type SamplingFields = Partial<
  Pick<
    ChatRequest,
    | "temperature"
    | "top_p"
    | "top_k"
    | "min_p"
    | "frequency_penalty"
    | "presence_penalty"
    | "logit_bias"
    | "seed"
    | "stop"
    | "truncate_prompt_tokens"
    | "cache_prompt"
  >
>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type EmbeddingRequest = z.infer<typeof embeddingRequestSchema>;

/** `messages[0].content` from zod's path. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((text, segment) => {
    if (typeof segment === "number") return `${text}[${segment}]`;
    return text === "" ? String(segment) : `${text}.${String(segment)}`;
  }, "");
}

/** Distinct field sets a body schema keeps a narrowed schema for (beyond that, bodies are checked by the whole schema). */
const MAX_NARROWED = 64;

interface Narrowing {
  /** The fields in the schema's order, and whether each must always be checked (required, or given a default). */
  fields: Array<[key: string, always: boolean]>;
  bySignature: Map<string, z.ZodType>;
}

const narrowings = new WeakMap<z.ZodType, Narrowing | null>();

/**
 * The schema cut down to the fields `body` has (and those checked even when absent), built once per field set: a
 * request schema has some 40 fields and a body a handful, and the whole object checks every one of them. The same
 * fields' schemas, in the same order, so the result and the issues (an unknown field included) are the whole schema's.
 */
function narrowed(schema: z.ZodType, body: unknown): z.ZodType {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return schema;
  let narrowing = narrowings.get(schema);
  if (narrowing === undefined) {
    narrowing =
      schema instanceof z.ZodObject && (schema._zod.def.checks?.length ?? 0) === 0
        ? {
            fields: Object.entries(schema.shape as Record<string, z.ZodType>).map(([key, field]) => {
              const absent = field.safeParse(undefined);
              return [key, !absent.success || absent.data !== undefined];
            }),
            bySignature: new Map(),
          }
        : null;
    narrowings.set(schema, narrowing);
  }
  if (narrowing === null) return schema;
  let signature = "";
  for (const [key, always] of narrowing.fields) if (always || Object.hasOwn(body, key)) signature += `${key},`;
  let cut = narrowing.bySignature.get(signature);
  if (cut === undefined) {
    if (narrowing.bySignature.size >= MAX_NARROWED) return schema;
    const mask = Object.fromEntries(
      signature
        .split(",")
        .filter((key) => key !== "")
        .map((key) => [key, true as const]),
    );
    cut = (schema as unknown as z.ZodObject).pick(mask as Record<string, true> & Record<number, never>);
    narrowing.bySignature.set(signature, cut);
  }
  return cut;
}

/** Validates a parsed JSON body; throws BadRequest naming the first offending field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = narrowed(schema, body).safeParse(body) as z.ZodSafeParseResult<z.output<S>>;
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, MAX_ISSUES).map(describeIssue);
  const first = issues[0] ?? { param: "", message: "invalid request body" };
  throw new BadRequest(first.param ? `${first.param}: ${first.message}` : `request body: ${first.message}`, {
    details: { param: first.param || null, issues },
  });
}

/** Issues a 400 lists, and the characters of a field name it quotes: a body's own keys are a client's strings too. */
const MAX_ISSUES = 20;
const MAX_KEY_CHARS = 64;

function boundedPath(path: ReadonlyArray<PropertyKey>): string {
  return formatPath(
    path.map((segment) =>
      typeof segment === "string" && segment.length > MAX_KEY_CHARS ? `${segment.slice(0, MAX_KEY_CHARS)}…` : segment,
    ),
  );
}

/** One zod issue as `param` + message; an unknown key is named as the field itself. */
function describeIssue(issue: z.core.$ZodIssue): { param: string; message: string } {
  if (issue.code === "unrecognized_keys") {
    return {
      param: boundedPath([...issue.path, issue.keys[0] ?? ""]),
      message:
        'unknown field: Inferno refuses fields it does not know rather than ignore them (see docs/api.md, "Request fields")',
    };
  }
  return { param: boundedPath(issue.path), message: issue.message };
}

// ---------------------------------------------------------------------------------------------------------------------
// Request bounds

export type RequestLimits = Pick<
  ServerConfig,
  "max_tokens_limit" | "max_messages" | "max_prompts" | "max_embedding_inputs"
>;

/**
 * The tokens a generation may produce as far as the server is concerned: the request's number capped by
 * `server.max_tokens_limit` (its default when the request names none); 0 = no server cap (the backend still caps by
 * the context). Undefined = until the model stops or the context is full.
 */
export function boundedMaxTokens(
  requested: number | null | undefined,
  limits: Pick<RequestLimits, "max_tokens_limit">,
): number | undefined {
  const limit = limits.max_tokens_limit;
  if (requested == null) return limit > 0 ? limit : undefined;
  return limit > 0 ? Math.min(requested, limit) : requested;
}

/** Refuses a list longer than its configured bound (400 naming the field, the count and the key). */
export function checkListLength(
  list: readonly unknown[] | string | null | undefined,
  limit: number,
  param: string,
  key: keyof RequestLimits,
): void {
  if (!Array.isArray(list) || list.length <= limit) return;
  throw new BadRequest(
    `${param}: ${list.length} items, more than this server takes (server.${key} = ${limit}); send at most ${limit}`,
    {
      details: { param, count: list.length, limit },
    },
  );
}

/** Truncation as the backend takes it (`truncatePromptTokens`), from the boolean extension fields (Ollama's `truncate`, Responses' `truncation: "auto"`). */
export function truncateTo(truncate: boolean | null | undefined): { truncatePromptTokens?: number } {
  return truncate === true ? { truncatePromptTokens: -1 } : {};
}
