/**
 * The server's one error mapper: every failure a route throws becomes an HTTP status and an error JSON, here and nowhere
 * else. Two dialects of the same mapping: OpenAI's `{"error":{"message","type","code","param"}}` everywhere, and
 * Ollama's `{"error":"message"}` under `/api/`, where Ollama clients read it.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isInfernoError, messageOf } from "../errors/index.js";
import type { PathRedactor } from "./exposure.js";

export interface OpenAIErrorBody {
  error: { message: string; type: string; code: string; param: string | null };
}

export interface MappedError {
  status: ContentfulStatusCode;
  body: OpenAIErrorBody;
  /** Seconds for the `Retry-After` header (queue full, load cooldown), when the error says when to retry. */
  retryAfterSeconds: number | null;
  /** True for failures that are the server's fault, logged as errors; false for the client's mistakes. */
  internal: boolean;
}

function stringDetail(details: Record<string, unknown> | undefined, name: string): string | null {
  const value = details?.[name];
  return typeof value === "string" ? value : null;
}

function retryAfter(details: Record<string, unknown> | undefined): number | null {
  const value = details?.retry_after_seconds;
  return typeof value === "number" && Number.isFinite(value) ? Math.max(1, Math.ceil(value)) : null;
}

/**
 * Maps any thrown value to a status and OpenAI error body. Unknown errors are 500 `internal_error`. Messages name
 * models by name and no server path (`paths`, see exposure.ts).
 */
export function mapError(error: unknown, paths: PathRedactor): MappedError {
  if (isInfernoError(error)) {
    return {
      status: error.status as ContentfulStatusCode,
      body: {
        error: {
          message: paths.message(error.message, error),
          type: error.type,
          code: error.code,
          param: stringDetail(error.details, "param"),
        },
      },
      retryAfterSeconds: retryAfter(error.details),
      internal: error.status >= 500,
    };
  }
  return {
    status: 500,
    body: {
      error: {
        message: paths.message(messageOf(error), error),
        type: "server_error",
        code: "internal_error",
        param: null,
      },
    },
    retryAfterSeconds: null,
    internal: true,
  };
}

/** Which clients a path serves: the Ollama API lives under `/api/`. */
export type ErrorDialect = "openai" | "ollama";

export function errorDialectOf(path: string): ErrorDialect {
  return path === "/api" || path.startsWith("/api/") ? "ollama" : "openai";
}

/** Ollama's error body: the message alone, as its clients (the `ollama` npm client, Open WebUI) read it. */
export interface OllamaErrorBody {
  error: string;
}

export function errorBody(mapped: MappedError, dialect: ErrorDialect): OpenAIErrorBody | OllamaErrorBody {
  return dialect === "ollama" ? { error: mapped.body.error.message } : mapped.body;
}

/** Builds the HTTP response for an error in the dialect of its path, with `Retry-After` when the error carries one. */
export function errorResponse(c: Context, mapped: MappedError): Response {
  if (mapped.retryAfterSeconds !== null) c.header("Retry-After", String(mapped.retryAfterSeconds));
  return c.json(errorBody(mapped, errorDialectOf(c.req.path)), mapped.status);
}
