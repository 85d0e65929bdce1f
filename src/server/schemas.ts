/**
 * Request bodies, validated with zod. A body that does not fit is a 400 whose message and `param` name the field
 * (`messages[0].content`), what was expected and what was found. Unknown fields are ignored, as OpenAI clients send
 * many optional ones; fields Inferno cannot honour are refused rather than silently dropped.
 */
import { z } from "zod";
import { BadRequest } from "../errors/index.js";
import { KeepAliveSyntaxError, parseKeepAlive } from "./keep-alive.js";

/** `keep_alive` as Ollama spells it (see keep-alive.ts), parsed to seconds; shared by the OpenAI and Ollama bodies. */
export const keepAlive = z.union([z.string(), z.number()]).transform((value, ctx) => {
  try {
    return parseKeepAlive(value);
  } catch (error) {
    if (!(error instanceof KeepAliveSyntaxError)) throw error;
    ctx.addIssue({ code: "custom", message: error.message });
    return z.NEVER;
  }
});

/** A field Inferno cannot honour: absent, null or false is fine, anything else is refused by name. */
const unsupported = (what: string) =>
  z
    .unknown()
    .refine((value) => value === undefined || value === null || value === false, { message: `${what} not supported` })
    .optional();

const onlyOne = z
  .number()
  .int()
  .refine((n) => n === 1, { message: "only n = 1 is supported" })
  .nullish();

const stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();

/** Sampling settings shared by chat and text completions. */
const sampling = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  stop,
  n: onlyOne,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  keep_alive: keepAlive.optional(),
  logprobs: unsupported("log probabilities are"),
};

const textPart = z.object({ type: z.literal("text"), text: z.string() });

const messageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string(), z.array(textPart).min(1)]),
});

export const chatRequestSchema = z.object({
  model: z.string().min(1),
  messages: z.array(messageSchema).min(1),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  ...sampling,
});

export const completionRequestSchema = z.object({
  model: z.string().min(1),
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  // OpenAI's legacy completions default to 16 tokens; clients rely on that.
  max_tokens: z.number().int().positive().nullish(),
  echo: z.boolean().nullish(),
  suffix: unsupported("suffix is"),
  ...sampling,
});

export const embeddingRequestSchema = z.object({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()).min(1)]),
  encoding_format: z.enum(["float", "base64"]).optional(),
  dimensions: unsupported("choosing dimensions is (embeddings have the model's own size)"),
  keep_alive: keepAlive.optional(),
});

export const loadRequestSchema = z.object({ keep_alive: keepAlive.optional() });

export const clearRequestSchema = z.object({
  model: z.string().min(1).optional(),
  force: z.boolean().optional(),
  stats: z.boolean().optional(),
});

export const warmupRequestSchema = z.object({
  models: z.array(z.string().min(1)).optional(),
  strategy: z.enum(["usage", "recent", "priority", "hybrid", "none"]).optional(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type EmbeddingRequest = z.infer<typeof embeddingRequestSchema>;

/** `messages[0].content` from zod's path. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((text, segment) => {
    if (typeof segment === "number") return `${text}[${segment}]`;
    return text === "" ? String(segment) : `${text}.${String(segment)}`;
  }, "");
}

/** Validates a parsed JSON body; throws BadRequest naming the first offending field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue ? formatPath(issue.path) : "";
  const message = issue?.message ?? "invalid request body";
  throw new BadRequest(param ? `${param}: ${message}` : `request body: ${message}`, {
    details: { param: param || null, issues: result.error.issues.map((i) => ({ param: formatPath(i.path), message: i.message })) },
  });
}
