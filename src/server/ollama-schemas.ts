/**
 * Request bodies of the Ollama API (`/api/*`), validated with zod like the OpenAI ones: a body that does not fit is a 400
 * whose message names the field (`options.top_k: …`). Ollama's `options` are mapped to the sampler or to how the model
 * is loaded where Inferno can honour them; a known option that would change the output and cannot be honoured is
 * refused by name. An option Inferno does not know is accepted and ignored (with a debug line), as Ollama does.
 */
import { z } from "zod";
import { modelName, shortName, stopStrings } from "./strings.js";
import type { OutputFormat } from "../backends/types.js";
import { type BackendConfig, backendSchema } from "../config/schema.js";
import { keepAlive } from "./schemas.js";

/** A field Inferno cannot honour: absent, null, false or empty is fine, anything else is refused with `why`. */
const refused = (why: string) =>
  z
    .unknown()
    .refine(
      (value) =>
        value === undefined ||
        value === null ||
        value === false ||
        value === "" ||
        (Array.isArray(value) && value.length === 0),
      {
        message: why,
      },
    )
    .optional();

/**
 * Options that change the output but that Inferno's sampler does not take: accepted only at the value that switches
 * them off (what Ollama clients send when the user left them alone).
 */
const NEUTRAL_OPTIONS: Record<string, number> = {
  typical_p: 1,
  tfs_z: 1,
  mirostat: 0,
};

/**
 * Options that choose how llama.cpp loads a model. Inferno loads each model once for every client, with the
 * `[backend]` configuration: a request may repeat the configured value, or a harmless default, but not change it.
 */
const LOAD_OPTIONS: Record<string, { key: string; accepts: (value: unknown, backend: BackendConfig) => boolean }> = {
  use_mmap: { key: "backend.mmap", accepts: (v, b) => v === b.mmap },
  num_batch: { key: "backend.batch_size", accepts: (v, b) => v === b.batch_size },
  main_gpu: { key: "backend.gpu", accepts: (v) => v === 0 },
  numa: { key: "backend", accepts: (v) => v === false },
  low_vram: { key: "backend", accepts: (v) => v === false },
  f16_kv: { key: "backend", accepts: (v) => v === true },
  logits_all: { key: "backend", accepts: (v) => v === false },
  vocab_only: { key: "backend", accepts: (v) => v === false },
  use_mlock: { key: "backend", accepts: (v) => v === false },
  embedding_only: { key: "backend", accepts: (v) => v === false },
};

/**
 * Ollama's `options`. Honoured by the sampler: `temperature`, `top_p`, `top_k`, `min_p`, `repeat_penalty`,
 * `presence_penalty`, `frequency_penalty`, `repeat_last_n` (the tokens the penalties look back over; -1 or absent:
 * everything generated; 0: penalties off), `seed`, `stop`, `num_predict` (≤ 0 = until the model stops or the context is
 * full). Honoured by loading a variant of the model (a cache entry of its own, see models/load-settings.ts): `num_ctx`
 * (at most `backend.max_context_size`), `num_thread` (0 = auto) and `num_gpu` (layers on the GPU; -1 = auto). Options
 * that only refine a switched-off feature (`penalize_newline`, `mirostat_tau`, `mirostat_eta`) are accepted. An
 * unknown option is accepted and ignored, as Ollama does (the route logs it at debug level: see `unknownOptions`).
 */
export function ollamaOptionsSchema(backend: BackendConfig) {
  const neutral = Object.fromEntries(Object.keys(NEUTRAL_OPTIONS).map((name) => [name, z.number().nullish()]));
  const loading = Object.fromEntries(Object.keys(LOAD_OPTIONS).map((name) => [name, z.unknown().optional()]));
  return z
    .looseObject({
      ...neutral,
      ...loading,
      temperature: z.number().min(0).nullish(),
      top_p: z.number().min(0).max(1).nullish(),
      seed: z.number().int().nullish(),
      stop: stopStrings(),
      num_predict: z.number().int().min(-2).nullish(),
      num_ctx: z
        .number()
        .int()
        .positive()
        .refine((n) => n <= backend.max_context_size, {
          message: `is above the largest context Inferno loads (backend.max_context_size = ${backend.max_context_size}); send at most that, or raise backend.max_context_size`,
        })
        .nullish(),
      num_thread: z.number().int().nonnegative().nullish(),
      num_gpu: z.number().int().min(-1).nullish(),
      top_k: z.number().int().min(0).nullish(),
      min_p: z.number().min(0).max(1).nullish(),
      repeat_penalty: z.number().positive().nullish(),
      presence_penalty: z.number().min(-2).max(2).nullish(),
      frequency_penalty: z.number().min(-2).max(2).nullish(),
      num_keep: refused("not supported (Inferno keeps no tokens apart when the context is full)"),
      repeat_last_n: z.number().int().min(-1).nullish(),
      penalize_newline: z.boolean().nullish(),
      mirostat_tau: z.number().nullish(),
      mirostat_eta: z.number().nullish(),
    })
    .superRefine((options, ctx) => {
      const raw = options as Record<string, unknown>;
      for (const [name, neutral] of Object.entries(NEUTRAL_OPTIONS)) {
        const value = raw[name];
        if (value === undefined || value === null || value === neutral) continue;
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `${JSON.stringify(value)} is not supported; Inferno's sampler takes only ${neutral} (off)`,
        });
      }
      for (const [name, rule] of Object.entries(LOAD_OPTIONS)) {
        const value = raw[name];
        if (value === undefined || value === null || rule.accepts(value, backend)) continue;
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `${JSON.stringify(value)} cannot be set per request: Inferno loads each model once, with its configuration (${rule.key})`,
        });
      }
    });
}

/** The options Inferno knows (honours, accepts at a neutral value, or refuses by name). */
const KNOWN_OPTIONS = new Set(Object.keys(ollamaOptionsSchema(backendSchema.parse({})).shape));

/** The option names of a request that Inferno does not know: accepted and ignored, as Ollama does. */
export function unknownOptions(options: Record<string, unknown> | null | undefined): string[] {
  return Object.keys(options ?? {}).filter((name) => !KNOWN_OPTIONS.has(name));
}

export type OllamaOptions = z.output<ReturnType<typeof ollamaOptionsSchema>>;

/**
 * Ollama's `format`: `"json"` (any JSON object) or a JSON schema, both constrained by a grammar; `""` is none. The
 * schema is checked against the supported subset by the route, before any load.
 */
const outputFormat = z
  .union([z.literal(""), z.literal("json"), z.record(z.string(), z.unknown())])
  .nullish()
  .transform((format): OutputFormat | undefined => {
    if (format == null || format === "") return undefined;
    return format === "json" ? { type: "json" } : { type: "json_schema", schema: format };
  });

/** Fields shared by /api/generate and /api/chat. */
function generationFields(backend: BackendConfig) {
  return {
    model: modelName(),
    stream: z.boolean().nullish(),
    keep_alive: keepAlive.optional(),
    options: ollamaOptionsSchema(backend).nullish(),
    format: outputFormat,
    // Ollama's: true drops the oldest messages (the system messages and the last message stay) or, with raw: true, the
    // beginning of the prompt, to fit the context; absent or false, an input longer than the context is a 400.
    truncate: z.boolean().nullish(),
    think: refused("thinking is not supported: Inferno's models answer without a separate thinking part"),
    logprobs: refused("log probabilities are not supported"),
    top_logprobs: refused("log probabilities are not supported"),
  };
}

const images = refused("images are not supported: Inferno's text models take no images");

export function generateRequestSchema(backend: BackendConfig) {
  return z.strictObject({
    ...generationFields(backend),
    prompt: z.string().optional(),
    system: z.string().optional(),
    raw: z.boolean().nullish(),
    suffix: refused("suffix (fill-in-the-middle) is not supported"),
    template: refused("template is not supported: the model's own chat template is used (or none with raw: true)"),
    context: refused("context (token memory from an earlier reply) is not supported: send the history with /api/chat"),
    images,
  });
}

/** A call in an assistant message of the history; Ollama sends the arguments as an object. */
const toolCallSchema = z.strictObject({
  id: shortName().min(1).optional(),
  type: z.literal("function").optional(),
  function: z.strictObject({
    // The position in the reply's list, as Ollama (and Inferno) send it; clients send the message back as it came.
    index: z.number().int().min(0).optional(),
    name: shortName().min(1),
    arguments: z.union([z.record(z.string(), z.unknown()), z.string()]).optional(),
  }),
});

const messageSchema = z
  .strictObject({
    role: z.enum(["system", "user", "assistant", "tool"]),
    content: z.string().nullish(),
    images,
    thinking: refused("thinking in the history is not supported"),
    tool_calls: z.array(toolCallSchema).nullish(),
    /** The function a `tool` message answers (Ollama's field); `tool_call_id` names the call itself. */
    tool_name: shortName().min(1).optional(),
    tool_call_id: shortName().min(1).optional(),
  })
  .refine((m) => m.role === "assistant" || m.tool_calls == null || m.tool_calls.length === 0, {
    message: "only assistant messages carry tool_calls",
    path: ["tool_calls"],
  });

const toolSchema = z.object({
  type: z.literal("function").optional(),
  function: z.object({
    name: shortName(),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

/**
 * An Inferno extension (Ollama has none): OpenAI's `tool_choice`, so a client can require a call. Default `auto`: the
 * model decides, as with Ollama.
 */
const toolChoice = z
  .union([
    z.enum(["auto", "none", "required"]),
    z.object({ type: z.literal("function").optional(), function: z.object({ name: shortName().min(1) }) }),
  ])
  .nullish();

export function chatRequestSchema(backend: BackendConfig) {
  return z.strictObject({
    ...generationFields(backend),
    messages: z.array(messageSchema).optional(),
    tools: z.array(toolSchema).nullish(),
    tool_choice: toolChoice,
  });
}

export const showRequestSchema = z.object({
  // Older clients send `name`.
  model: modelName().optional(),
  name: modelName().optional(),
  verbose: z.boolean().nullish(),
});

export function embedRequestSchema(backend: BackendConfig) {
  return z.strictObject({
    model: modelName(),
    input: z.union([z.string(), z.array(z.string())]).optional(),
    truncate: z.boolean().nullish(),
    keep_alive: keepAlive.optional(),
    options: ollamaOptionsSchema(backend).nullish(),
    dimensions: refused("choosing dimensions is not supported (embeddings have the model's own size)"),
  });
}

export function embeddingsRequestSchema(backend: BackendConfig) {
  return z.strictObject({
    model: modelName(),
    prompt: z.string().optional(),
    keep_alive: keepAlive.optional(),
    options: ollamaOptionsSchema(backend).nullish(),
  });
}

export type GenerateRequest = z.output<ReturnType<typeof generateRequestSchema>>;
export type ChatRequest = z.output<ReturnType<typeof chatRequestSchema>>;
export type EmbedRequest = z.output<ReturnType<typeof embedRequestSchema>>;
export type EmbeddingsRequest = z.output<ReturnType<typeof embeddingsRequestSchema>>;
