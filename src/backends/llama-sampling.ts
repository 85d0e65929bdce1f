/**
 * OpenAI's and Ollama's sampling fields on node-llama-cpp's sampler: top-k, min-p, frequency and presence penalties
 * (llama.cpp's penalties sampler subtracts `count × frequency + presence` from a generated token's logit, as OpenAI
 * defines them) and logit bias (added to the logit; -100 bans the token, except end-of-generation tokens, which
 * node-llama-cpp never bans).
 */
import { randomInt } from "node:crypto";
import type { LlamaModel, Token, TokenBias } from "node-llama-cpp";
import { BadRequest } from "../errors/index.js";
import type { GenerationOptions } from "./types.js";

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
