/**
 * The body of `POST /v1/responses` (OpenAI's Responses API), stateless: everything the request needs is in it, but for
 * `item_reference` items, resolved from the server's recent output items. Fields that need stored state
 * (`previous_response_id`, `conversation`, `store: true`) are refused
 * with 400, as is every field that would change the output and that Inferno cannot honour.
 */
import { z } from "zod";
import { keepAlive, refusedBecause, samplers, unsupported, withoutEffect } from "./schemas.js";
import { modelName, shortName } from "./strings.js";

const stateless = (what: string) =>
  unsupported(`${what} is not supported: Inferno is stateless (send the whole conversation as input);`);

/** `id` and `status` come back in items a client replays from an earlier response; they carry nothing here. */
const replayed = { id: shortName().nullish(), status: shortName().nullish() };

const inputText = z.strictObject({ type: z.literal("input_text"), text: z.string() });
const outputText = z.strictObject({
  type: z.literal("output_text"),
  text: z.string(),
  annotations: z.array(z.unknown()).nullish(),
  logprobs: z.array(z.unknown()).nullish(),
});

/** A content part Inferno's models cannot read: refused with a sentence that says why (not zod's "Invalid input"). */
const refusedPart = (type: string, why: string) =>
  z
    .looseObject({ type: z.literal(type) })
    .superRefine((_, ctx) => {
      ctx.addIssue({ code: "custom", message: `${type} content parts are not supported: ${why}` });
    })
    .transform(() => z.NEVER);
/** An assistant's refusal is what it said: it stays in the history as its text. */
const refusal = z
  .strictObject({ type: z.literal("refusal"), refusal: z.string() })
  .transform((part) => ({ type: "output_text" as const, text: part.refusal }));
const PART_TYPES = "input_text, output_text, refusal, input_image, input_file or input_audio";

const messageItem = z.strictObject({
  type: z.literal("message"),
  role: z.enum(["user", "system", "developer", "assistant"]),
  content: z.union(
    [
      z.string(),
      z
        .array(
          z.discriminatedUnion(
            "type",
            [
              inputText,
              outputText,
              refusal,
              refusedPart("input_image", "the model has no vision (Inferno runs text-only models); send text instead"),
              refusedPart("input_file", "the model reads no files (Inferno runs text-only models); send their text"),
              refusedPart("input_audio", "the model takes no audio (Inferno runs text-only models)"),
            ],
            { error: `expected a content part of type ${PART_TYPES}` },
          ),
        )
        .min(1),
    ],
    { error: `expected a string or a non-empty list of content parts (${PART_TYPES})` },
  ),
  phase: shortName().nullish(),
  ...replayed,
});

const functionCallItem = z.strictObject({
  type: z.literal("function_call"),
  call_id: shortName().min(1),
  name: shortName().min(1),
  arguments: z.string(),
  ...replayed,
});

const functionCallOutputItem = z.strictObject({
  type: z.literal("function_call_output"),
  call_id: shortName().min(1),
  output: z.union([z.string(), z.array(inputText).min(1)]),
  ...replayed,
});

/** An output item of a recent response, by its id (the AI SDK's default Responses provider sends them). */
const itemReference = z.strictObject({ type: z.literal("item_reference"), id: shortName().min(1) });

/** An input item; a message may leave out its `type`, as OpenAI allows. */
const inputItem = z.preprocess(
  (item) => (typeof item === "object" && item !== null && !("type" in item) ? { ...item, type: "message" } : item),
  z.discriminatedUnion("type", [messageItem, functionCallItem, functionCallOutputItem, itemReference]),
);

const functionTool = z.strictObject({
  type: z.literal("function"),
  name: shortName().min(1),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const textFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    name: shortName().min(1),
    description: z.string().nullish(),
    schema: z.record(z.string(), z.unknown()),
    strict: z.boolean().nullish(),
  }),
]);

export const responsesRequestSchema = z.strictObject({
  model: modelName(),
  input: z.union([z.string(), z.array(inputItem)]),
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().positive().nullish(),
  ...samplers,
  cache_prompt: z.boolean().nullish(),
  seed: z.number().int().nullish(),
  tools: z.array(functionTool).nullish(),
  tool_choice: z
    .union([
      z.enum(["none", "auto", "required"]),
      z.strictObject({ type: z.literal("function"), name: shortName().min(1) }),
    ])
    .nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.strictObject({ format: textFormat.nullish(), verbosity: unsupported("verbosity is") }).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_obfuscation: z.boolean().nullish() }).nullish(),
  keep_alive: keepAlive.optional(),
  previous_response_id: stateless("previous_response_id"),
  conversation: stateless("conversation"),
  background: unsupported("background responses are"),
  context_management: unsupported("context_management is"),
  include: z
    .array(shortName())
    .refine((list) => list.length === 0, { message: "extra output data (include) is not supported" })
    .nullish(),
  max_tool_calls: unsupported("max_tool_calls is"),
  moderation: unsupported("moderation is"),
  prompt: unsupported("stored prompts are"),
  reasoning: refusedBecause(
    "reasoning is not supported: the models Inferno runs have no reasoning budget to set; leave it out",
  ),
  top_logprobs: unsupported("log probabilities are", 0),
  // OpenAI's own switch: "auto" drops the oldest input items (not instructions, not the last item) to fit the context;
  // "disabled" (the default) refuses an input the context cannot hold with a 400.
  truncation: z.enum(["auto", "disabled"]).nullish(),
  ...withoutEffect,
});

export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;
export type ResponsesInputItem = Exclude<ResponsesRequest["input"], string>[number];
