/**
 * Request bounds the server applies before a model is used: list lengths and the server's cap on generated tokens. The
 * bounds the loaded context sets (a prompt that does not fit, tokens left to generate) are the backend's — it knows
 * the context (`promptTokenLimit` in backends/common.ts) — and the extension fields that ask for truncation are mapped
 * to its one option here.
 */
import type { ServerConfig } from "../config/schema.js";
import { BadRequest } from "../errors/index.js";

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
